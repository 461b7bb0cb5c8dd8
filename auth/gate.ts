/**
 * The gate: one `fetch` for every request. It routes, checks the method, authenticates and
 * authorizes, and only then runs a protected handler or upgrades to a WebSocket (the card:
 * `server.upgrade` runs only when the token matches). Every request yields one log line.
 */
import type { Server } from "bun";
import {
  BasicCredentials,
  readCredential,
  readHeaderToken,
  SUBPROTOCOL,
  UNSUPPORTED_SCHEME,
  type CredentialInputs,
} from "./credentials.ts";
import { GateError, MISSING_TOKEN } from "./errors.ts";
import { toResponse } from "./http.ts";
import type { AccessLogMode } from "./config.ts";
import type { Logger } from "./log.ts";
import { requireScope, type Authenticator, type Principal } from "./principal.ts";
import { redactTarget, splitUrl } from "./redact.ts";
import type { HttpRoute, Route, SocketRoute } from "./routes.ts";
import type { PasswordAuthenticator } from "./users.ts";
import type { WsData } from "./ws.ts";

/** Called after each successful authentication; `remote` computes the peer address on demand. */
export type UseRecorder = (principal: Principal, remote: () => string) => void;

export interface GateOptions {
  readonly authenticate: Authenticator;
  readonly recordUse?: UseRecorder | undefined;
  /** Verifies `Authorization: Basic`; without it Basic is answered like an unknown scheme. */
  readonly authenticatePassword?: PasswordAuthenticator | undefined;
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly accessLog: AccessLogMode;
}

export interface Gate {
  fetch(request: Request, server: Server<WsData>): Response | undefined | Promise<Response | undefined>;
}

const NOT_FOUND = new GateError("not_found", "Not Found");
const UPGRADE_REQUIRED = new GateError(
  "upgrade_required",
  "This endpoint speaks WebSocket only; connect with a WebSocket client (ws://…/ws)",
  { headers: { upgrade: "websocket", connection: "Upgrade" } },
);
const UPGRADE_FAILED = new GateError(
  "invalid_request",
  "The WebSocket handshake is invalid (needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13)",
);
const FOREIGN_SUBPROTOCOL = new GateError(
  "invalid_request",
  "Unsupported WebSocket subprotocol; offer 'tokengate' (optionally with tokengate.bearer.<token>) or none",
);

function methodNotAllowed(route: Route): GateError {
  const allow = route.kind === "http" ? route.methods.join(", ") : "GET";
  return new GateError("method_not_allowed", "Method Not Allowed", { headers: { allow } });
}

function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

function authorizeToken(
  token: string | BasicCredentials | GateError | undefined,
  authenticate: Authenticator,
  scope: string,
): Principal | GateError {
  if (token === undefined) return MISSING_TOKEN;
  if (token instanceof GateError) return token;
  if (token instanceof BasicCredentials) return UNSUPPORTED_SCHEME;
  const principal = authenticate(token);
  if (principal instanceof GateError) return principal;
  return requireScope(principal, scope) ?? principal;
}

function authorize(inputs: CredentialInputs, authenticate: Authenticator, scope: string): Principal | GateError {
  const credential = readCredential(inputs);
  return authorizeToken(credential === "none" ? undefined : credential instanceof GateError ? credential : credential.token, authenticate, scope);
}

let connectionCounter = 0;

function logAccessTo(
  logger: Logger,
  request: Request,
  server: Server<WsData>,
  path: string,
  query: string,
  status: number,
  started: number,
  principal: string,
): void {
  logger.access({
    method: request.method,
    target: redactTarget(path, query),
    status,
    ms: Math.round((performance.now() - started) * 100) / 100,
    principal,
    remote: server.requestIP(request)?.address ?? "-",
  });
}

export function createGate(options: GateOptions): Gate {
  const { authenticate, logger, recordUse, authenticatePassword } = options;
  const offerBasic = authenticatePassword !== undefined;

  /** The slow path: a password check off the event loop, then the same scope rule as tokens. */
  async function handleWithPassword(request: Request, route: HttpRoute, credentials: BasicCredentials, onPrincipal: (id: string) => void) {
    const who = await authenticatePassword!(credentials);
    if (who instanceof GateError) return toResponse(who, true);
    const denied = requireScope(who, route.scope!);
    if (denied !== undefined) return toResponse(denied, true);
    onPrincipal(who.id);
    return route.handle(request, who);
  }
  const table = new Map<string, Route>(options.routes.map((route) => [route.path, route]));
  const accessLog: AccessLogMode = logger.enabled("info") ? options.accessLog : "off";
  const logRequests = accessLog !== "off";
  // In "refused" mode successful HTTP requests are not logged; refusals and upgrades always are.
  const logsStatus = (status: number) => accessLog === "all" || status >= 400 || status === 101;
  const logAccess = logAccessTo.bind(null, logger);

  function upgradeSocket(
    request: Request,
    server: Server<WsData>,
    route: SocketRoute,
    query: string,
  ): Principal | GateError {
    if (!isWebSocketUpgrade(request)) return UPGRADE_REQUIRED;
    const subprotocols = request.headers.get("sec-websocket-protocol");
    const who = authorize(
      {
        xAuthToken: request.headers.get("x-auth-token"),
        authorization: request.headers.get("authorization"),
        queryTokens: query === "" ? [] : new URLSearchParams(query).getAll("token"),
        subprotocols,
      },
      authenticate,
      route.scope,
    );
    if (who instanceof GateError) return who;

    // Bun echoes the first offered subprotocol unless told otherwise; that could be the entry
    // carrying the token. Answer with the plain marker, and refuse protocols we do not speak.
    let headers: Headers | undefined;
    if (subprotocols !== null) {
      const offered = subprotocols.split(",").map((name) => name.trim());
      if (!offered.includes(SUBPROTOCOL)) return FOREIGN_SUBPROTOCOL;
      headers = new Headers({ "sec-websocket-protocol": SUBPROTOCOL });
    }
    connectionCounter += 1;
    const data: WsData = {
      principal: who,
      connId: `c${connectionCounter.toString(36)}`,
      remote: server.requestIP(request)?.address ?? "-",
      path: route.path,
      greeting: route.greeting,
      openedAt: performance.now(),
    };
    const upgraded = headers === undefined ? server.upgrade(request, { data }) : server.upgrade(request, { data, headers });
    if (!upgraded) return UPGRADE_FAILED;
    recordUse?.(who, () => data.remote);
    return who;
  }

  return {
    fetch(request, server) {
      const started = logRequests ? performance.now() : 0;
      const { path, query } = splitUrl(request.url);
      const route = table.get(path);
      let principal = "-";
      let response: Response | Promise<Response> | undefined;

      if (route === undefined) {
        response = toResponse(NOT_FOUND);
      } else if (route.kind === "websocket") {
        if (request.method !== "GET") {
          response = toResponse(methodNotAllowed(route));
        } else {
          const outcome = upgradeSocket(request, server, route, query);
          if (outcome instanceof GateError) response = toResponse(outcome);
          else principal = outcome.id;
        }
      } else if (!route.methods.includes(request.method)) {
        response = toResponse(methodNotAllowed(route));
      } else if (route.scope === null) {
        response = route.handle(request, undefined);
      } else {
        const headers = request.headers;
        const credential = readHeaderToken(headers.get("x-auth-token"), headers.get("authorization"));
        if (credential instanceof BasicCredentials && offerBasic) {
          response = handleWithPassword(request, route, credential, (id) => (principal = id));
        } else {
          const who = authorizeToken(credential, authenticate, route.scope);
          if (who instanceof GateError) {
            response = toResponse(who, offerBasic);
          } else {
            principal = who.id;
            if (recordUse !== undefined && who.kind !== "bootstrap") {
              recordUse(who, () => server.requestIP(request)?.address ?? "-");
            }
            response = route.handle(request, who);
          }
        }
      }

      if (!logRequests) return response;
      if (response instanceof Promise) {
        return response.then((resolved) => {
          if (logsStatus(resolved.status)) logAccess(request, server, path, query, resolved.status, started, principal);
          return resolved;
        });
      }
      const status = response === undefined ? 101 : response.status;
      if (logsStatus(status)) logAccess(request, server, path, query, status, started, principal);
      return response;
    },
  };
}
