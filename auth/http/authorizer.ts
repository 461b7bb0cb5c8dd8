/**
 * Who a request acts as, and whether it may: reading the header credential, verifying it (a
 * synchronous fast path for secrets and cached JWTs; a password or an uncached JWT takes a
 * promise), checking the scope, and settling refusals with the guard and the audit log.
 */
import { BasicCredentials, readHeaderToken, readSessionCookie, UNSUPPORTED_SCHEME } from "../authn/credentials.ts";
import type { OriginPolicy } from "../core/origins.ts";
import { judgeCookieRequest } from "./csrf.ts";
import { clearedSessionCookie, mayHoldSessionCookie } from "../secrets/sessions.ts";
import type { PasswordAuthenticator } from "../authn/users.ts";
import { GateError, INSECURE_PASSWORD, MISSING_TOKEN, tooManyAttempts } from "../core/errors.ts";
import { requireScope, type Authenticator, type Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal } from "../guard/refusals.ts";
import { parseApiKey } from "../secrets/keys.ts";
import { redactPath } from "../core/redact.ts";
import { peerAddress, type AddressResolver, type TransportCheck } from "./clients.ts";
import type { Exchange } from "./exchange.ts";
import { toResponse } from "./responses.ts";
import type { ProtectedRoute } from "./routes.ts";

export type Verdict = Principal | GateError;

/** Called after each successful authentication; `remote` computes the peer address on demand. */
export type UseRecorder = (principal: Principal, remote: () => string) => void;

export interface AuthorizerOptions {
  readonly authenticate: Authenticator;
  /**
   * The same check, not counted in the metrics: for a look at a credential that the counted check
   * then judges (the proxy asking whose a header is). Defaults to `authenticate`.
   */
  readonly probe?: Authenticator | undefined;
  readonly recordUse?: UseRecorder | undefined;
  /** Verifies `Authorization: Basic`; without it Basic is answered like an unknown scheme. */
  readonly authenticatePassword?: PasswordAuthenticator | undefined;
  /** Brute-force guard; without it failures are not counted. */
  readonly guard?: Guard | undefined;
  /** Security events; without it nothing is audited. */
  readonly audit?: AuditLog | undefined;
  /** Counts and times what the gate does (refusals here; requests, sockets and the proxy where they happen); absent: METRICS=false. */
  readonly metrics?: GateMetrics | undefined;
  /** Client address with trusted proxies resolved (audit, guard). */
  readonly addressOf?: AddressResolver | undefined;
  /**
   * Whether 401s offer the Basic challenge when passwords are accepted (default yes). The proxy says
   * no: a browser would then sign in to a service's web UI with a password per asset, each an
   * argon2 check, and the page's parallel requests would queue into 503s.
   */
  readonly offerBasicChallenge?: boolean | undefined;
  /** Whether a password may be accepted on this request's transport; absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  /**
   * Whether the browser reached us over TLS (then the cookie is `__Host-tgs`). Set: a request with
   * no header credential may use its sign-in cookie; absent: cookies are not read.
   */
  readonly secureTransport?: TransportCheck | undefined;
  /** Which pages may send cookie-authenticated requests that change state (CSRF). */
  readonly originPolicy?: OriginPolicy | undefined;
}

/** Where a request's credential came from, as far as CSRF cares: the cookie is ambient, the rest are not. */
export interface CookieCredential {
  readonly credential: string | GateError | undefined;
  /** Refusal when the cookie was used from a page we do not trust for a change of state. */
  readonly forged: GateError | undefined;
}

/** A presented credential → who, or why not; a Promise only when verification is asynchronous. */
export function authorizeToken(
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

const NO_COOKIE: CookieCredential = Object.freeze({ credential: undefined, forged: undefined });

export class Authorizer {
  readonly options: AuthorizerOptions;
  readonly addressOf: AddressResolver;
  /** Whether 401s also offer the Basic challenge. */
  readonly offerBasic: boolean;

  constructor(options: AuthorizerOptions) {
    this.options = options;
    this.addressOf = options.addressOf ?? peerAddress;
    this.offerBasic = options.authenticatePassword !== undefined && options.offerBasicChallenge !== false;
  }

  /**
   * A refusal is settled by its policy: a guess is counted (and becomes 429 over the limit), and it
   * is audited. A success is audited only when successes are sampled.
   */
  judge(exchange: Exchange, verdict: Verdict, credential: unknown): Verdict {
    const { guard, audit, metrics } = this.options;
    const { request, server } = exchange;
    if (!(verdict instanceof GateError)) {
      if (audit?.samplesSuccess === true) audit.success(verdict, () => this.addressOf(request, server), redactPath(exchange.path));
      return verdict;
    }
    if (guard === undefined && audit === undefined) {
      // Nothing to count toward a ban or audit: the refusal is only counted, without the address and path work.
      metrics?.refusal(verdict.kind).inc();
      return verdict;
    }
    // Audited like a log line: a proxied service's paths are the client's to choose and may hold a key.
    const path = redactPath(exchange.path);
    return settleRefusal(
      { guard, audit, metrics },
      {
        error: verdict,
        address: this.addressOf(request, server),
        path,
        keyId: typeof credential === "string" ? parseApiKey(credential)?.id : undefined,
        username: credential instanceof BasicCredentials ? credential.username : undefined,
      },
    );
  }

  /** A banned client gets 429 before any authentication work (no address lookup while nobody is banned). */
  findBan(exchange: Exchange): GateError | undefined {
    const { guard } = this.options;
    if (guard === undefined || !guard.active) return undefined;
    const wait = guard.retryAfter(this.addressOf(exchange.request, exchange.server));
    return wait > 0 ? tooManyAttempts(wait) : undefined;
  }

  /** The header credential (else the sign-in cookie) of a protected route's request → its handler, or the refusal. */
  serveProtected(exchange: Exchange, route: ProtectedRoute): Response | Promise<Response> {
    const ban = this.findBan(exchange);
    if (ban !== undefined) return toResponse(ban);
    const { headers } = exchange.request;
    const credential = readHeaderToken(headers.get("x-auth-token"), headers.get("authorization"));
    if (credential !== undefined || this.options.secureTransport === undefined) return this.serveCredential(exchange, route, credential);
    const cookie = this.readCookie(exchange);
    if (cookie.forged !== undefined) {
      const refused = this.judge(exchange, cookie.forged, undefined);
      return toResponse(refused instanceof GateError ? refused : cookie.forged);
    }
    return this.serveCredential(exchange, route, cookie.credential, cookie.credential !== undefined);
  }

  /** The sign-in cookie of a request that carries no other credential, with the CSRF verdict. */
  readCookie(exchange: Exchange): CookieCredential {
    const { request, server } = exchange;
    const header = request.headers.get("cookie");
    // Most requests without a token carry no sign-in cookie either: they skip the transport check (a peer-address lookup).
    if (!mayHoldSessionCookie(header) || this.options.secureTransport === undefined) return NO_COOKIE;
    const secure = this.options.secureTransport(request, server);
    const credential = readSessionCookie(header, secure);
    const forged = typeof credential === "string" ? judgeCookieRequest(request, this.options.originPolicy, secure) : undefined;
    return { credential, forged };
  }

  /** A credential the caller read (the proxy reads more places than headers) → the route's handler, or the refusal. */
  serveCredential(
    exchange: Exchange,
    route: ProtectedRoute,
    credential: string | BasicCredentials | GateError | undefined,
    fromCookie = false,
  ): Response | Promise<Response> {
    const verifyPassword = this.options.authenticatePassword;
    if (credential instanceof BasicCredentials && verifyPassword !== undefined)
      return this.serveWithPassword(exchange, route, credential, verifyPassword);
    const who = authorizeToken(credential, this.options.authenticate, route.scope);
    if (who instanceof Promise)
      return who.then((verdict) => this.serveVerdict(exchange, route, this.judge(exchange, verdict, credential), fromCookie));
    // The success path skips judge() unless successes are sampled: it runs on every request.
    const settled = who instanceof GateError || this.options.audit?.samplesSuccess === true ? this.judge(exchange, who, credential) : who;
    return this.serveVerdict(exchange, route, settled, fromCookie);
  }

  /**
   * Runs a protected handler for a verified principal (or answers the refusal). A sign-in cookie the
   * gate refused with a 401 (ended, expired, unknown) is cleared with the answer, so a page learns it
   * once; a 401 of the handler's own (a wrong confirmation password) leaves the cookie alone.
   */
  serveVerdict(exchange: Exchange, route: ProtectedRoute, who: Verdict, fromCookie = false): Response | Promise<Response> {
    if (who instanceof GateError) {
      const refusal = toResponse(who, this.offerBasic);
      if (fromCookie && refusal.status === 401) {
        refusal.headers.append(
          "set-cookie",
          clearedSessionCookie(this.options.secureTransport?.(exchange.request, exchange.server) ?? false),
        );
      }
      return refusal;
    }
    exchange.actAs(who);
    const { request, server } = exchange;
    if (this.options.recordUse !== undefined && who.kind !== "bootstrap") this.options.recordUse(who, () => peerAddress(request, server));
    return route.handle(request, who, server);
  }

  /** The slow path: a password check off the event loop, then the same scope rule as tokens. */
  async serveWithPassword(
    exchange: Exchange,
    route: ProtectedRoute,
    credentials: BasicCredentials,
    verifyPassword: PasswordAuthenticator,
  ): Promise<Response> {
    const { request, server } = exchange;
    const { passwordTransport, guard } = this.options;
    if (passwordTransport !== undefined && !passwordTransport(request, server)) return toResponse(INSECURE_PASSWORD, true);
    const client = this.addressOf(request, server);
    // A locked account answers 429 before any argon2 work; its owner's keys and tokens still work.
    const locked = guard?.retryAfter(client, `user:${credentials.username}`) ?? 0;
    if (locked > 0) return toResponse(tooManyAttempts(locked), true);
    const who = this.judge(exchange, await verifyPassword(credentials, client), credentials);
    return this.serveVerdict(exchange, route, who instanceof GateError ? who : (requireScope(who, route.scope) ?? who));
  }
}
