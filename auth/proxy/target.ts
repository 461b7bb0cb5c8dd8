/**
 * Where a proxied request goes: the route's upstream, the request's path (without the route's
 * prefix when `strip_prefix` is set) and its query without the gate's `?token=`. Pure.
 */
import type { ServiceRoute } from "../config/routes-file.ts";
import { parseQuery } from "../core/query.ts";

export interface Upstream {
  /** `http://127.0.0.1:3000` */
  readonly origin: string;
  /** The upstream URL's own path without its trailing slash (`""` for none). */
  readonly basePath: string;
  /** The same server for WebSockets: `ws://` or `wss://`. */
  readonly socketOrigin: string;
}

export function parseUpstream(route: ServiceRoute): Upstream {
  const url = new URL(route.upstream);
  return {
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ""),
    socketOrigin: `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}`,
  };
}

/**
 * The query without any parameter whose decoded name is `token` (the gate's credential, however
 * percent-encoded); every other parameter is kept byte for byte, in order.
 */
export function withoutTokenParam(query: string): string {
  if (query === "" || !/t|%/i.test(query)) return query;
  return query
    .split("&")
    .filter((pair) => pair === "" || parseQuery(pair)[0]?.name !== "token")
    .join("&");
}

/** The path the service sees. */
export function upstreamPath(route: ServiceRoute, upstream: Upstream, path: string): string {
  const prefix = route.match.path_prefix;
  let rest = path;
  if (route.strip_prefix && prefix !== undefined && path.startsWith(prefix)) {
    rest = path.slice(prefix.length);
    if (!rest.startsWith("/")) rest = `/${rest}`;
  }
  return `${upstream.basePath}${rest}`;
}

/** The full target URL at the service (`origin` or `socketOrigin` in front). */
export function upstreamTarget(origin: string, route: ServiceRoute, upstream: Upstream, path: string, query: string): string {
  const kept = withoutTokenParam(query);
  return `${origin}${upstreamPath(route, upstream, path)}${kept === "" ? "" : `?${kept}`}`;
}

/**
 * A redirect to the service's own address (`http://127.0.0.1:3000/login`) made into one through the
 * gate (`/grafana/login`), as nginx's `proxy_redirect default` does: the client could not follow the
 * first, and it would tell it where the service runs. Any other Location is left as sent.
 */
export function gateLocation(location: string, route: ServiceRoute, upstream: Upstream): string {
  const serviceBase = `${upstream.origin}${upstream.basePath}`;
  if (!location.startsWith(serviceBase)) return location;
  const rest = location.slice(serviceBase.length);
  if (rest !== "" && !/^[/?#]/.test(rest)) return location;
  const prefix = route.strip_prefix && route.match.path_prefix !== undefined ? route.match.path_prefix.replace(/\/+$/, "") : "";
  // `//evil.example` would be another site to a browser: one slash, whatever the service sent.
  const path = `${prefix}${rest}`.replace(/^[/\\]+/, "/");
  return path.startsWith("/") ? path : `/${path}`;
}
