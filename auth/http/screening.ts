/**
 * What the gate refuses before any authentication work, in the order it checks: a Host it does not
 * serve (DNS rebinding), forwarding headers a trusted proxy garbled, a credential in the query where
 * none is read, a browser Origin it does not trust. Then the route's own shape: unknown path, wrong
 * method, a socket route without an upgrade.
 */
import { GateError } from "../core/errors.ts";
import type { HostPolicy, OriginPolicy } from "../core/origins.ts";
import { isCredentialName, type QueryParam } from "../core/query.ts";
import type { ForwardingCheck } from "./clients.ts";
import type { Exchange } from "./exchange.ts";
import { FORM_TOO_LARGE } from "./responses.ts";
import type { ProxiedRoute, ProxiedRoutes, Route } from "./routes.ts";

export const NOT_FOUND = new GateError("not_found", "Not Found");
const MISDIRECTED = new GateError("misdirected_request", "This server does not answer for that host name; add it to ALLOWED_HOSTS");
const FOREIGN_ORIGIN = new GateError("forbidden_origin", "Requests from this page's origin are not allowed; add it to ALLOWED_ORIGINS");
export const UPGRADE_REQUIRED = new GateError(
  "upgrade_required",
  "This endpoint speaks WebSocket only; connect with a WebSocket client (ws://…/ws)",
  {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  },
);
/** Query parameters that carry a credential on a WebSocket route (`/ws?token=`, `/ws?ticket=`). */
const SOCKET_QUERY_CREDENTIALS: ReadonlySet<string> = new Set(["token", "ticket"]);
const QUERY_CREDENTIAL = new GateError(
  "invalid_request",
  "Credentials are not accepted in the query string here; send the token in the X-Auth-Token or Authorization header",
);
const ODD_SOCKET_QUERY_CREDENTIAL = new GateError(
  "invalid_request",
  "A credential in the query string must be spelled ?token= or ?ticket= exactly, once",
);
const ODD_PROXIED_QUERY_TOKEN = new GateError("invalid_request", "A token in the query string must be spelled ?token= exactly, once");

/** `TOKEN`, `?token`, `to%6Ben`, `tok-en`: the gate's own parameter misspelt, which would otherwise reach the service. */
function isTokenMisspelt(name: string): boolean {
  return name !== "token" && name.toLowerCase().replace(/[^a-z0-9]/g, "") === "token";
}

/**
 * A credential-looking query parameter that the reader would not take (`??token=`, `?%3Ftoken=`,
 * `?TOKEN=`, or any on a route that takes no query credential) is refused rather than ignored: the
 * client meant it as a credential, and silently dropping it hides the mistake.
 */
function findMisplacedQueryCredential(params: readonly QueryParam[], route: Route | ProxiedRoute): GateError | undefined {
  // A proxied service's own parameters (`access_token`, `api_key`, `code`…) are its business; only
  // `token` is the gate's, and it is removed before forwarding.
  if (route.kind === "proxied") return params.some((param) => isTokenMisspelt(param.name)) ? ODD_PROXIED_QUERY_TOKEN : undefined;
  for (const param of params) {
    if (!isCredentialName(param.name)) continue;
    if (route.kind !== "websocket") return QUERY_CREDENTIAL;
    if (!SOCKET_QUERY_CREDENTIALS.has(param.name)) return ODD_SOCKET_QUERY_CREDENTIAL;
  }
  return undefined;
}

export interface Screens {
  /**
   * Largest body the gate's own routes take; set when the server's limit was raised for proxied
   * services (Bun then no longer refuses larger bodies itself).
   */
  readonly ownBodyLimit?: number | undefined;
  readonly hostPolicy?: HostPolicy | undefined;
  /** The routes file's services: a host one of them is matched by is served too. */
  readonly proxied?: ProxiedRoutes | undefined;
  readonly originPolicy?: OriginPolicy | undefined;
  readonly checkForwarding?: ForwardingCheck | undefined;
}

/** The first refusal that applies before routing and authentication, or `undefined`. */
export function screenRequest(screens: Screens, exchange: Exchange, route: Route | ProxiedRoute | undefined): GateError | undefined {
  const { request } = exchange;
  const host = request.headers.get("host");
  if (screens.hostPolicy !== undefined && !screens.hostPolicy.allows(host) && screens.proxied?.servesHost(host) !== true)
    return MISDIRECTED;
  const forwarding = screens.checkForwarding?.(request, exchange.server);
  if (forwarding !== undefined) return forwarding;
  if (route !== undefined && exchange.params.length > 0) {
    const misplaced = findMisplacedQueryCredential(exchange.params, route);
    if (misplaced !== undefined) return misplaced;
  }
  if (
    screens.ownBodyLimit !== undefined &&
    route !== undefined &&
    route.kind !== "proxied" &&
    declaredLength(request) > screens.ownBodyLimit
  )
    return FORM_TOO_LARGE;
  const origin = request.headers.get("origin");
  if (origin !== null && screens.originPolicy !== undefined && !screens.originPolicy.allows(origin, host) && !judgesOrigin(route))
    return FOREIGN_ORIGIN;
  return undefined;
}

const judgesOrigin = (route: Route | ProxiedRoute | undefined) =>
  route?.kind === "http" && route.scope === null && route.judgesOriginItself === true;

/** Content-Length as a number (0 when absent; NaN for a repeated `5, 5`, which passes here and meets the bounded form reader). */
function declaredLength(request: Request): number {
  const header = request.headers.get("content-length");
  return header === null ? 0 : Number(header);
}

export function methodNotAllowed(route: Route): GateError {
  const allow = route.kind === "http" ? route.methods.join(", ") : "GET";
  return new GateError("method_not_allowed", "Method Not Allowed", { headers: { allow } });
}

export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** The Origin of a CORS preflight, or `undefined` when the request is not one. */
export function preflightOrigin(request: Request): string | undefined {
  if (request.method !== "OPTIONS" || !request.headers.has("access-control-request-method")) return undefined;
  return request.headers.get("origin") ?? undefined;
}
