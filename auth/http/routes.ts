/**
 * The route table: which paths exist, which methods they take, which scope they need, and what
 * a protected handler returns once the gate has let a request through. Handlers never see a
 * request that failed authentication; they receive the verified principal instead.
 */
import { jsonResponse } from "./responses.ts";
import { ANY_SCOPE, type Principal } from "../core/principal.ts";
import type { TicketBook } from "../secrets/tickets.ts";
import type { AppSocketHandlers, GateServer } from "../ws/data.ts";
import type { Exchange } from "./exchange.ts";

interface HttpRouteBase {
  readonly kind: "http";
  readonly path: string;
  readonly methods: readonly string[];
}

/** A route anyone may call (health, the console page), or one that checks credentials itself (the token endpoint). */
export interface PublicRoute extends HttpRouteBase {
  readonly scope: null;
  /** Checks credentials itself: banned clients get 429 before it runs. */
  readonly guarded?: boolean;
  /** The console's page and assets: on a host the routes file gives to a service, the service answers instead. */
  readonly yieldsToHostRoutes?: boolean;
  /**
   * The request's Origin belongs to another request (forward auth: the one the proxy holds, on the
   * service's host), so the gate's Origin screen does not apply; the route judges it itself.
   */
  readonly judgesOriginItself?: boolean;
  /**
   * Set: only the clients `admits` names are served as they are (the metrics scrape from loopback or
   * METRICS_ALLOW); any other goes through the gate as for `otherwise`, a protected route.
   */
  readonly restricted?: RestrictedAccess | undefined;
  handle(request: Request, principal: undefined, server: GateServer): Response | Promise<Response>;
}

export interface RestrictedAccess {
  admits(request: Request, server: GateServer): boolean;
  /** The same answer behind a credential with this route's scope. */
  readonly otherwise: ProtectedRoute;
}

/** A route the gate protects: its handler runs only for a verified principal that holds `scope`. */
export interface ProtectedRoute extends HttpRouteBase {
  readonly scope: string;
  handle(request: Request, principal: Principal, server: GateServer): Response | Promise<Response>;
}

export type HttpRoute = PublicRoute | ProtectedRoute;

export interface SocketRoute {
  readonly kind: "websocket";
  readonly path: string;
  readonly scope: string;
  /** First message sent after the upgrade (not on a program's own route). */
  readonly greeting: string;
  /** A program's own handlers (the library), in place of the echo. */
  readonly app?: AppSocketHandlers | undefined;
  /** A program's own fields for the socket's data, made at the upgrade (they never replace the gate's). */
  readonly appData?: ((request: Request, principal: Principal) => object) | undefined;
}

export type Route = HttpRoute | SocketRoute;

/**
 * A user's own service (ROUTES_FILE), matched by host and path prefix rather than by exact path.
 * It authenticates and forwards the request itself (the proxy layer), after the gate's screens.
 */
export interface ProxiedRoute {
  readonly kind: "proxied";
  /** The route's name in the routes file: what logs and error bodies call it. */
  readonly name: string;
  serve(exchange: Exchange): Response | undefined | Promise<Response | undefined>;
}

/** The routes file's routes as the gate looks them up (the table may change while running). */
export interface ProxiedRoutes {
  find(host: string | null, path: string): ProxiedRoute | undefined;
  /** A route is matched by this Host: the operator named it, so it is served without an ALLOWED_HOSTS entry. */
  servesHost(host: string | null): boolean;
}

/** The seed's bodies, byte for byte, so FastAPI-era clients keep working unchanged. */
export const SECURE_DATA_BODY = JSON.stringify({ message: "✅ Access granted", data: "Here is your secret data!" });
export const WS_GREETING = "✅ WebSocket connected with valid token";
const HEALTH_BODY = JSON.stringify({ status: "ok" });

export const SCOPES = { dataRead: "data:read", wsConnect: "ws:connect" } as const;

/** `POST /auth/ws-ticket`: a single-use, 30-second ticket for opening `socketPath` with `?ticket=`. */
export function createTicketRoute(tickets: TicketBook, socketPath: string, scope: string): ProtectedRoute {
  return {
    kind: "http",
    path: "/auth/ws-ticket",
    methods: ["POST"],
    scope,
    handle: (_request, principal) => {
      const { ticket, expiresIn } = tickets.issue(principal, socketPath);
      return jsonResponse(200, JSON.stringify({ ticket, expires_in: expiresIn, path: socketPath }));
    },
  };
}

/** What a caller may learn about itself: ids, names, scopes, expiry; never a secret. */
export function describePrincipal(principal: Principal) {
  return {
    id: principal.id,
    kind: principal.kind,
    name: principal.name,
    scopes: principal.scopes,
    // A stored expiry no Date can hold (written by hand into the database) must not become a 500.
    expires_at:
      principal.expiresAt === null || !Number.isFinite(new Date(principal.expiresAt).getTime())
        ? null
        : new Date(principal.expiresAt).toISOString(),
  };
}

export function createSeedRoutes(): Route[] {
  return [
    {
      kind: "http",
      path: "/secure-data",
      methods: ["GET", "HEAD"],
      scope: SCOPES.dataRead,
      handle: () => jsonResponse(200, SECURE_DATA_BODY),
    },
    {
      kind: "http",
      path: "/healthz",
      methods: ["GET", "HEAD"],
      scope: null,
      handle: () => jsonResponse(200, HEALTH_BODY),
    },
    {
      kind: "http",
      path: "/auth/whoami",
      methods: ["GET", "HEAD"],
      scope: ANY_SCOPE,
      handle: (_request, principal) => jsonResponse(200, JSON.stringify(describePrincipal(principal))),
    },
    { kind: "websocket", path: "/ws", scope: SCOPES.wsConnect, greeting: WS_GREETING },
  ];
}
