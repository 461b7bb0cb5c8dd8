/**
 * The gate: one `fetch` for every request. It routes, checks the method, authenticates and
 * authorizes, and only then runs a protected handler or upgrades to a WebSocket (the card:
 * `server.upgrade` runs only when the token matches). Every request yields one log line.
 * Secrets and cached JWTs are checked synchronously; a password or an uncached JWT takes an
 * async path, and the upgrade then happens after the check.
 */
import type { AccessLogMode } from "../core/log.ts";
import {
  BasicCredentials,
  readCredential,
  readHeaderToken,
  SUBPROTOCOL,
  UNSUPPORTED_SCHEME,
} from "../authn/credentials.ts";
import { GateError, INSECURE_PASSWORD, MISSING_TOKEN, tooManyAttempts } from "../core/errors.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, ForwardingCheck, TransportCheck } from "./clients.ts";
import { isCredentialName, NO_PARAMS, parseQuery, valuesOf, type QueryParam } from "../core/query.ts";
import type { AuditLog } from "../guard/audit.ts";
import { parseApiKey } from "../secrets/keys.ts";
import { allowOrigin, preflightResponse, toResponse } from "./responses.ts";
import type { Logger } from "../core/log.ts";
import type { HostPolicy, OriginPolicy } from "../core/origins.ts";
import { requireScope, type Authenticator, type Principal } from "../core/principal.ts";
import { redactTarget, splitUrl } from "../core/redact.ts";
import type { HttpRoute, Route, SocketRoute } from "./routes.ts";
import type { PasswordAuthenticator } from "../authn/users.ts";
import type { GateServer, WsData } from "../ws/data.ts";
import type { TicketBook } from "../secrets/tickets.ts";

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
  /** Host allow-list (DNS rebinding); without it every Host is answered. */
  readonly hostPolicy?: HostPolicy | undefined;
  /** Origin allow-list (CSWSH, CORS); without it every Origin is accepted. */
  readonly originPolicy?: OriginPolicy | undefined;
  /** Brute-force guard; without it failures are not counted. */
  readonly guard?: Guard | undefined;
  /** Security events; without it nothing is audited. */
  readonly audit?: AuditLog | undefined;
  /** Client address with trusted proxies resolved (audit, guard). */
  readonly addressOf?: AddressResolver | undefined;
  /** Whether a password may be accepted on this request's transport; absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  /** Refuses requests whose trusted proxy sent unreadable forwarding headers; absent when no proxy is trusted. */
  readonly checkForwarding?: ForwardingCheck | undefined;
  /** Single-use WebSocket tickets (`?ticket=`); without it tickets are not accepted. */
  readonly tickets?: TicketBook | undefined;
  /**
   * Why an authenticated principal is no longer valid (revoked, expired, disabled), or undefined.
   * Re-checked when a ticket is redeemed, and for open sockets; without it sockets are never closed
   * for auth reasons.
   */
  readonly revalidate?: ((principal: Principal) => GateError | undefined) | undefined;
}

export interface Gate {
  fetch(request: Request, server: GateServer): Response | undefined | Promise<Response | undefined>;
}

const NOT_FOUND = new GateError("not_found", "Not Found");
const MISDIRECTED = new GateError("misdirected_request", "This server does not answer for that host name; add it to ALLOWED_HOSTS");
const FOREIGN_ORIGIN = new GateError("forbidden_origin", "Requests from this page's origin are not allowed; add it to ALLOWED_ORIGINS");
const UPGRADE_REQUIRED = new GateError(
  "upgrade_required",
  "This endpoint speaks WebSocket only; connect with a WebSocket client (ws://…/ws)",
  { headers: { upgrade: "websocket", connection: "Upgrade" } },
);
const UPGRADE_FAILED = new GateError(
  "invalid_request",
  "The WebSocket handshake is invalid (needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13)",
);
const BAD_TICKET = new GateError("invalid_token", "The WebSocket ticket is unknown, already used, expired or for another path; ask for a new one");
const TICKET_AND_TOKEN = new GateError("invalid_request", "Send either a ticket or a token, not both");
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

/**
 * A credential-looking query parameter that the reader would not take (`??token=`, `?%3Ftoken=`,
 * `?TOKEN=`, or any on a route that takes no query credential) is refused rather than ignored: the
 * client meant it as a credential, and silently dropping it hides the mistake.
 */
function misplacedQueryCredential(params: readonly QueryParam[], route: Route): GateError | undefined {
  for (const param of params) {
    if (!isCredentialName(param.name)) continue;
    if (route.kind !== "websocket") return QUERY_CREDENTIAL;
    if (!SOCKET_QUERY_CREDENTIALS.has(param.name)) return ODD_SOCKET_QUERY_CREDENTIAL;
  }
  return undefined;
}

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

type Verdict = Principal | GateError;

/** A presented credential → who, or why not; a Promise only when verification is asynchronous. */
function authorizeToken(
  token: string | BasicCredentials | GateError | undefined,
  authenticate: Authenticator,
  scope: string,
): Verdict | Promise<Verdict> {
  if (token === undefined) return MISSING_TOKEN;
  if (token instanceof GateError) return token;
  if (token instanceof BasicCredentials) return UNSUPPORTED_SCHEME;
  const principal = authenticate(token);
  if (principal instanceof Promise) return principal.then((who) => (who instanceof GateError ? who : (requireScope(who, scope) ?? who)));
  if (principal instanceof GateError) return principal;
  return requireScope(principal, scope) ?? principal;
}

let connectionCounter = 0;

function logAccessTo(
  logger: Logger,
  request: Request,
  server: GateServer,
  path: string,
  params: readonly QueryParam[],
  status: number,
  started: number,
  principal: string,
  remote: string | undefined,
): void {
  logger.access({
    method: request.method,
    target: redactTarget(path, params),
    status,
    ms: Math.round((performance.now() - started) * 100) / 100,
    principal,
    remote: remote ?? server.requestIP(request)?.address ?? "-",
  });
}

export function createGate(options: GateOptions): Gate {
  const { authenticate, logger, recordUse, authenticatePassword, hostPolicy, originPolicy, guard, audit } = options;
  const addressOf: AddressResolver = options.addressOf ?? ((request, server) => server.requestIP(request)?.address ?? "-");

  /**
   * A refusal that looks like guessing is counted; if that (or an earlier ban on the presented
   * key id) puts the client over the limit, the answer becomes 429. Stale-but-genuine
   * credentials (revoked, expired) are never counted: they are the operator's own devices.
   */
  function judge(request: Request, server: GateServer, path: string, verdict: Verdict, token: unknown): Verdict {
    if (!(verdict instanceof GateError)) {
      if (audit?.samplesSuccess === true) audit.success(verdict, () => addressOf(request, server), path);
      return verdict;
    }
    if (guard === undefined && audit === undefined) return verdict;
    return settleRefusal(
      { guard, audit },
      {
        error: verdict,
        address: addressOf(request, server),
        path,
        keyId: typeof token === "string" ? parseApiKey(token)?.id : undefined,
        username: token instanceof BasicCredentials ? token.username : undefined,
      },
    );
  }

  /** A banned client gets 429 before any authentication work (no address lookup while nobody is banned). */
  function banned(request: Request, server: GateServer): GateError | undefined {
    if (guard === undefined || !guard.active) return undefined;
    const wait = guard.retryAfter(addressOf(request, server));
    return wait > 0 ? tooManyAttempts(wait) : undefined;
  }
  const offerBasic = authenticatePassword !== undefined;
  const table = new Map<string, Route>(options.routes.map((route) => [route.path, route]));
  const accessLog: AccessLogMode = logger.enabled("info") ? options.accessLog : "off";
  const logRequests = accessLog !== "off";
  // In "refused" mode successful HTTP requests are not logged; refusals and upgrades always are.
  const logsStatus = (status: number) => accessLog === "all" || status >= 400 || status === 101;
  const logAccess = logAccessTo.bind(null, logger);

  /** Runs a protected handler for a verified principal (or answers the refusal). */
  function serveHttp(request: Request, server: GateServer, route: HttpRoute, who: Verdict): Response | Promise<Response> {
    if (who instanceof GateError) return toResponse(who, offerBasic);
    if (recordUse !== undefined && who.kind !== "bootstrap") recordUse(who, () => server.requestIP(request)?.address ?? "-");
    return route.handle(request, who, server);
  }

  /** The slow path: a password check off the event loop, then the same scope rule as tokens. */
  async function serveWithPassword(request: Request, server: GateServer, route: HttpRoute, credentials: BasicCredentials, seen: (id: string) => void) {
    if (options.passwordTransport !== undefined && !options.passwordTransport(request, server)) return toResponse(INSECURE_PASSWORD, true);
    const client = addressOf(request, server);
    // A locked account answers 429 before any argon2 work; its owner's keys and tokens still work.
    const locked = guard?.retryAfter(client, `user:${credentials.username}`) ?? 0;
    if (locked > 0) return toResponse(tooManyAttempts(locked), true);
    const who = judge(request, server, route.path, await authenticatePassword!(credentials, client), credentials);
    const verdict = who instanceof GateError ? who : (requireScope(who, route.scope!) ?? who);
    if (!(verdict instanceof GateError)) seen(verdict.id);
    return serveHttp(request, server, route, verdict);
  }

  function upgrade(
    request: Request,
    server: GateServer,
    route: SocketRoute,
    subprotocols: string | null,
    who: Verdict,
    seen: (id: string, remote?: string) => void,
  ): GateError | Principal {
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
      warned: false,
      scope: route.scope,
      connId: `c${connectionCounter.toString(36)}`,
      remote: server.requestIP(request)?.address ?? "-",
      client: addressOf(request, server),
      path: route.path,
      greeting: route.greeting,
      openedAt: performance.now(),
    };
    const upgraded = headers === undefined ? server.upgrade(request, { data }) : server.upgrade(request, { data, headers });
    if (!upgraded) return UPGRADE_FAILED;
    recordUse?.(who, () => data.remote);
    // After the upgrade Bun no longer knows the request's peer: hand the address to the access log.
    seen(who.id, data.remote);
    return who;
  }

  /** A ticket's principal, re-checked: a key revoked since the ticket was minted must not open a socket. */
  function redeemTicket(request: Request, ticket: string, route: SocketRoute, params: readonly QueryParam[]): Verdict {
    const mixed = valuesOf(params, "ticket").length > 1 || valuesOf(params, "token").length > 0 || request.headers.has("authorization") || request.headers.has("x-auth-token");
    if (mixed) return TICKET_AND_TOKEN;
    const principal = options.tickets?.redeem(ticket, route.path);
    if (principal === undefined) return BAD_TICKET;
    return options.revalidate?.(principal) ?? requireScope(principal, route.scope) ?? principal;
  }

  function serveSocket(request: Request, server: GateServer, route: SocketRoute, params: readonly QueryParam[], seen: (id: string, remote?: string) => void) {
    if (!isWebSocketUpgrade(request)) return toResponse(UPGRADE_REQUIRED);
    const subprotocols = request.headers.get("sec-websocket-protocol");
    const ticket = params.length === 0 ? undefined : valuesOf(params, "ticket")[0];
    if (ticket !== undefined && options.tickets !== undefined) {
      const verdict = redeemTicket(request, ticket, route, params);
      const outcome = upgrade(request, server, route, subprotocols, judge(request, server, route.path, verdict, undefined), seen);
      return outcome instanceof GateError ? toResponse(outcome) : undefined;
    }
    const credential = readCredential({
      xAuthToken: request.headers.get("x-auth-token"),
      authorization: request.headers.get("authorization"),
      queryTokens: params.length === 0 ? [] : valuesOf(params, "token"),
      subprotocols,
    });
    const token = credential === "none" ? undefined : credential instanceof GateError ? credential : credential.token;
    const settle = (who: Verdict): Response | undefined => {
      const outcome = upgrade(request, server, route, subprotocols, judge(request, server, route.path, who, token), seen);
      return outcome instanceof GateError ? toResponse(outcome) : undefined;
    };
    const who = authorizeToken(token, authenticate, route.scope);
    return who instanceof Promise ? who.then(settle) : settle(who);
  }

  return {
    fetch(request, server) {
      const started = logRequests ? performance.now() : 0;
      const { path, query } = splitUrl(request.url);
      // Parsed once: the credential reader and the log redactor read the same parameters.
      const params = query === "" ? NO_PARAMS : parseQuery(query);
      const route = table.get(path);
      let principal = "-";
      let remote: string | undefined;
      const seen = (id: string, address?: string) => {
        principal = id;
        remote = address;
      };
      let response: Response | undefined | Promise<Response | undefined>;
      const host = request.headers.get("host");
      const origin = request.headers.get("origin");
      // A browser page on an allowed origin gets CORS headers; any other page is refused outright.
      let corsOrigin: string | undefined;

      const forwarding = options.checkForwarding?.(request, server);
      const misplaced = route === undefined || params.length === 0 ? undefined : misplacedQueryCredential(params, route);
      if (hostPolicy !== undefined && !hostPolicy.allows(host)) {
        response = toResponse(MISDIRECTED);
      } else if (forwarding !== undefined) {
        response = toResponse(forwarding);
      } else if (misplaced !== undefined) {
        response = toResponse(misplaced);
      } else if (origin !== null && originPolicy !== undefined && !originPolicy.allows(origin, host)) {
        response = toResponse(FOREIGN_ORIGIN);
      } else {
        if (origin !== null) corsOrigin = origin;
        if (route === undefined) {
          response = toResponse(NOT_FOUND);
        } else if (request.method === "OPTIONS" && origin !== null && request.headers.has("access-control-request-method")) {
          response = preflightResponse(origin, route.kind === "http" ? route.methods : ["GET"]);
        } else if (route.kind === "websocket") {
          const ban = request.method === "GET" ? banned(request, server) : undefined;
          response =
            request.method !== "GET"
              ? toResponse(methodNotAllowed(route))
              : ban !== undefined
                ? toResponse(ban)
                : serveSocket(request, server, route, params, seen);
        } else if (!route.methods.includes(request.method)) {
          response = toResponse(methodNotAllowed(route));
        } else {
          const ban = route.scope !== null || route.guarded === true ? banned(request, server) : undefined;
          if (ban !== undefined) {
            response = toResponse(ban);
          } else if (route.scope === null) {
            response = route.handle(request, undefined, server);
          } else {
            const headers = request.headers;
            const credential = readHeaderToken(headers.get("x-auth-token"), headers.get("authorization"));
            if (credential instanceof BasicCredentials && offerBasic) {
              response = serveWithPassword(request, server, route, credential, seen);
            } else {
              const who = authorizeToken(credential, authenticate, route.scope);
              if (who instanceof Promise) {
                response = who.then((verdict) => {
                  if (!(verdict instanceof GateError)) seen(verdict.id);
                  return serveHttp(request, server, route, judge(request, server, path, verdict, credential));
                });
              } else {
                if (!(who instanceof GateError)) principal = who.id;
                // The success path skips judge() unless successes are sampled: it runs on every request.
                response = serveHttp(request, server, route, who instanceof GateError || audit?.samplesSuccess === true ? judge(request, server, path, who, credential) : who);
              }
            }
          }
        }
      }

      if (corsOrigin !== undefined && originPolicy !== undefined && response !== undefined) {
        const allowed = corsOrigin;
        response = response instanceof Promise
          ? response.then((resolved) => (resolved === undefined ? undefined : allowOrigin(resolved, allowed)))
          : allowOrigin(response, allowed);
      }

      if (!logRequests) return response;
      if (response instanceof Promise) {
        return response.then((resolved) => {
          const status = resolved === undefined ? 101 : resolved.status;
          if (logsStatus(status)) logAccess(request, server, path, params, status, started, principal, remote);
          return resolved;
        });
      }
      const status = response === undefined ? 101 : response.status;
      if (logsStatus(status)) logAccess(request, server, path, params, status, started, principal, remote);
      return response;
    },
  };
}
