/**
 * The gate: one `fetch` for every request, as a short sequence of steps. It screens the request
 * (Host, forwarding, query credentials, Origin), routes it, checks the method, authenticates and
 * authorizes, and only then runs a protected handler or upgrades to a WebSocket (the card:
 * `server.upgrade` runs only when the token matches). Secrets and cached JWTs are checked
 * synchronously; a password or an uncached JWT takes a promise, and the upgrade then happens after
 * the check. Each request may yield one access-log line.
 */
import type { AccessLogMode, Logger } from "../core/log.ts";
import { NO_PARAMS, parseQuery } from "../core/query.ts";
import { splitUrl } from "../core/redact.ts";
import type { GateServer } from "../ws/data.ts";
import { AnswerNotes, type Answer } from "./answer-notes.ts";
import { Authorizer, type AuthorizerOptions } from "./authorizer.ts";
import { Exchange } from "./exchange.ts";
import { allowOrigin, preflightResponse, toResponse } from "./responses.ts";
import type { HttpRoute, ProxiedRoute, PublicRoute, Route, SocketRoute } from "./routes.ts";
import { methodNotAllowed, NOT_FOUND, preflightOrigin, screenRequest, type Screens } from "./screening.ts";
import { GateError } from "../core/errors.ts";
import { SocketUpgrader, type UpgradeOptions } from "./upgrades.ts";

export type { UseRecorder } from "./authorizer.ts";

/** Screens, authentication and upgrades each declare what they need; the gate takes all of it. */
export interface GateOptions extends AuthorizerOptions, Screens, UpgradeOptions {
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly accessLog: AccessLogMode;
}

/** A service's pages may send headers of their own: an allowed origin may send what it asks for (a plain list of names). */
function proxiedPreflightHeaders(request: Request): string | undefined {
  const asked = request.headers.get("access-control-request-headers");
  return asked !== null && /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/.test(asked) ? asked : undefined;
}

/** Methods a proxied service may be asked for; TRACE would echo the request (and its credential) back. */
const PROXIED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PROXIED_METHOD_REFUSED = new GateError("method_not_allowed", "Method Not Allowed", {
  headers: { allow: PROXIED_METHODS.join(", ") },
});

export interface Gate {
  fetch(request: Request, server: GateServer): Answer;
  /**
   * The whole gate for a route the caller found itself (a program's own Bun `routes` entry): the
   * same screens, authentication, refusals and access log as a route of the table.
   */
  serveRoute(request: Request, server: GateServer, route: HttpRoute): Answer;
  /** Adds or replaces a socket route of the table (a program's own WebSocket handlers on `/ws`). */
  mount(route: SocketRoute): void;
}

export function createGate(options: GateOptions): Gate {
  const authorizer = new Authorizer(options);
  const upgrader = new SocketUpgrader(authorizer, options);
  const table = new Map<string, Route>(options.routes.map((route) => [route.path, route]));
  const notes = new AnswerNotes(options.logger, options.accessLog, options.metrics);

  const servePublic = (exchange: Exchange, route: PublicRoute): Response | Promise<Response> => {
    const { restricted } = route;
    if (restricted !== undefined && !restricted.admits(exchange.request, exchange.server))
      return authorizer.serveProtected(exchange, restricted.otherwise);
    const ban = route.guarded === true ? authorizer.findBan(exchange) : undefined;
    return ban !== undefined ? toResponse(ban) : route.handle(exchange.request, undefined, exchange.server);
  };

  const serveSocketRoute = (exchange: Exchange, route: SocketRoute): Answer => {
    if (exchange.request.method !== "GET") return toResponse(methodNotAllowed(route));
    const ban = authorizer.findBan(exchange);
    return ban !== undefined ? toResponse(ban) : upgrader.serve(exchange, route);
  };

  /** A preflight is answered here (it carries no credential, so it never reaches the service). */
  const serveProxied = (exchange: Exchange, route: ProxiedRoute): Answer => {
    const { request } = exchange;
    const preflight = preflightOrigin(request);
    if (preflight !== undefined) return preflightResponse(preflight, PROXIED_METHODS, proxiedPreflightHeaders(request));
    if (!PROXIED_METHODS.includes(request.method)) return toResponse(PROXIED_METHOD_REFUSED);
    return route.serve(exchange);
  };

  /** Routes a screened request: not found, preflight, socket, method, public, protected or proxied. */
  const dispatch = (exchange: Exchange, route: Route | ProxiedRoute | undefined): Answer => {
    const { request } = exchange;
    if (route === undefined) return toResponse(NOT_FOUND);
    if (route.kind === "proxied") return serveProxied(exchange, route);
    const preflight = preflightOrigin(request);
    if (preflight !== undefined) return preflightResponse(preflight, route.kind === "http" ? route.methods : ["GET"]);
    if (route.kind === "websocket") return serveSocketRoute(exchange, route);
    if (!route.methods.includes(request.method)) return toResponse(methodNotAllowed(route));
    return route.scope === null ? servePublic(exchange, route) : authorizer.serveProtected(exchange, route);
  };

  /** A browser page on an allowed origin (screening refused any other) gets CORS headers. */
  const addCors = (exchange: Exchange, answer: Answer): Answer => {
    const origin = exchange.request.headers.get("origin");
    if (origin === null || options.originPolicy === undefined || answer === undefined) return answer;
    return answer instanceof Promise
      ? answer.then((resolved) => (resolved === undefined ? undefined : allowOrigin(resolved, origin)))
      : allowOrigin(answer, origin);
  };

  /** The gate's own route for the exact path; else (or over the console, on a service's host) a proxied one. */
  const findRoute = (request: Request, path: string): Route | ProxiedRoute | undefined => {
    const own = table.get(path);
    if (
      options.proxied === undefined ||
      (own !== undefined && !(own.kind === "http" && own.scope === null && own.yieldsToHostRoutes === true))
    )
      return own;
    return options.proxied.find(request.headers.get("host"), path) ?? own;
  };

  /** One request through every step; `given`: a route the caller found itself, else the table's for the path. */
  const serve = (request: Request, server: GateServer, given?: HttpRoute): Answer => {
    const { path, query } = splitUrl(request.url);
    const exchange = new Exchange(request, server, path, query === "" ? NO_PARAMS : parseQuery(query), notes.arrival());
    const route = given ?? findRoute(request, path);
    const refusal = screenRequest(options, exchange, route);
    return notes.note(exchange, route, refusal !== undefined ? toResponse(refusal) : addCors(exchange, dispatch(exchange, route)));
  };

  return {
    fetch: serve,
    serveRoute: serve,
    mount: (route) => void table.set(route.path, route),
  };
}
