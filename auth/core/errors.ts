/**
 * The one error family of tokengate. Every refusal carries a stable `code` taken from the wire
 * vocabulary (RFC 6750 / RFC 6749 where one exists) so clients can branch on it; `http.ts` and
 * `ws.ts` turn it into a Response or a close code, and nothing else does.
 */

/** The wire vocabulary: what clients see in `code` / `error` and branch on. */
export type WireCode =
  | "missing_token"
  | "invalid_token"
  | "invalid_request"
  | "insufficient_scope"
  | "invalid_credentials"
  | "temporarily_unavailable"
  | "invalid_grant"
  | "invalid_client"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "access_denied"
  | "authorization_pending"
  | "slow_down"
  | "expired_token"
  | "misdirected_request"
  | "forbidden_origin"
  | "too_many_requests"
  | "not_found"
  | "method_not_allowed"
  | "upgrade_required"
  | "payload_too_large"
  | "bad_gateway"
  | "gateway_timeout"
  | "conflict"
  | "internal_error";

export interface Policy {
  /** The stable code clients see. Several kinds share one (a revoked and an unknown token are both invalid_token). */
  readonly wire: WireCode;
  readonly status: number;
  /** Close code used when the same refusal happens on an open WebSocket (4000 + HTTP status, mostly). */
  readonly close: number;
  /** Whether the refusal is an authentication challenge (gets `WWW-Authenticate`). */
  readonly challenge: boolean;
  /** Value of RFC 6750's `error` attribute; absent when the request had no credentials at all (§3.1). */
  readonly bearerError?: string;
  /** Counts toward a ban: someone may be guessing. Credentials that were valid once (revoked, expired) never do. */
  readonly guess: boolean;
  /** Worth an audit line when it answers an authentication attempt (a request with no credential is not one). */
  readonly audited: boolean;
}

const refusal = (
  wire: WireCode,
  status: number,
  close: number,
  flags: Partial<Omit<Policy, "wire" | "status" | "close">> = {},
): Policy => ({
  wire,
  status,
  close,
  challenge: false,
  guess: false,
  audited: true,
  ...flags,
});

/**
 * The one table of refusals: each kind says how it is answered over HTTP and on a socket, whether
 * it counts as a guess and whether it is audited. Callers pick a kind; nothing else decides these.
 */
export const POLICIES = {
  missing_token: refusal("missing_token", 401, 4401, { challenge: true, audited: false }),
  /** A secret nobody issued (or a forged JWT): the guesser's refusal. */
  unknown_token: refusal("invalid_token", 401, 4401, { challenge: true, bearerError: "invalid_token", guess: true }),
  revoked_token: refusal("invalid_token", 401, 4403, { challenge: true, bearerError: "invalid_token" }),
  expired_token: refusal("invalid_token", 401, 4401, { challenge: true, bearerError: "invalid_token" }),
  /** Not valid here for a reason that says nothing about guessing (a spent ticket, a token for another socket). */
  invalid_token: refusal("invalid_token", 401, 4401, { challenge: true, bearerError: "invalid_token" }),
  /** A malformed credential or request: audited (it may be a probe), never counted as a guess. */
  invalid_request: refusal("invalid_request", 400, 4400, { challenge: true, bearerError: "invalid_request" }),
  insufficient_scope: refusal("insufficient_scope", 403, 4403, { challenge: true, bearerError: "insufficient_scope" }),
  /** A wrong username/password: a challenge without a Bearer error (the credential was not a token). */
  invalid_credentials: refusal("invalid_credentials", 401, 4401, { challenge: true, guess: true }),
  /** RFC 6749 §4.1.2.1 vocabulary: the password queue is full, the store is away; comes with Retry-After. */
  temporarily_unavailable: refusal("temporarily_unavailable", 503, 1013),
  // RFC 6749 §5.2: token-endpoint errors. invalid_client carries its own Basic challenge header.
  invalid_grant: refusal("invalid_grant", 400, 4400),
  /** A grant whose secret is wrong (password, refresh token, pairing code): someone may be guessing. */
  wrong_grant_secret: refusal("invalid_grant", 400, 4400, { guess: true }),
  invalid_client: refusal("invalid_client", 401, 4401),
  /** A client secret that does not match the claimed client: someone may be guessing. */
  wrong_client_secret: refusal("invalid_client", 401, 4401, { guess: true }),
  unauthorized_client: refusal("unauthorized_client", 400, 4400),
  unsupported_grant_type: refusal("unsupported_grant_type", 400, 4400, { audited: false }),
  invalid_scope: refusal("invalid_scope", 400, 4400),
  /** RFC 6749 §4.1.2.1: the server will not do this for this caller (pairing once credentials exist). */
  access_denied: refusal("access_denied", 403, 4403),
  // RFC 8628 §3.5: a device polling the token endpoint. Never audited: a device asks every few seconds.
  /** The person has not approved or denied the device yet. */
  authorization_pending: refusal("authorization_pending", 400, 4400, { audited: false }),
  /** The device polled sooner than its interval; the interval grows by 5 s. */
  slow_down: refusal("slow_down", 400, 4400, { audited: false }),
  /** The device code expired (or wrong user codes burnt it): the device starts again. */
  device_code_expired: refusal("expired_token", 400, 4400, { audited: false }),
  /** The person denied the device: RFC 8628's access_denied, 400 as every token-endpoint error (RFC 6749 §5.2). */
  device_denied: refusal("access_denied", 400, 4400, { audited: false }),
  // A Host we do not serve (DNS rebinding) or a browser Origin we do not trust (CSWSH, CORS).
  misdirected_request: refusal("misdirected_request", 421, 4421, { audited: false }),
  forbidden_origin: refusal("forbidden_origin", 403, 4403, { audited: false }),
  /** A state-changing request carried only the session cookie and no proof it came from our own page (CSRF). */
  cross_site_request: refusal("forbidden_origin", 403, 4403),
  /** The brute-force guard: comes with Retry-After. */
  too_many_requests: refusal("too_many_requests", 429, 4429),
  not_found: refusal("not_found", 404, 4404, { audited: false }),
  method_not_allowed: refusal("method_not_allowed", 405, 4405, { audited: false }),
  upgrade_required: refusal("upgrade_required", 426, 4426, { audited: false }),
  /** A request body past the route's limit (ROUTES_FILE max_body_bytes, or the gate's own 64 KiB). */
  payload_too_large: refusal("payload_too_large", 413, 1009, { audited: false }),
  /** A proxied service that cannot be reached or broke off (RFC 6455 §7.4.1 has 1014 for the socket). */
  bad_gateway: refusal("bad_gateway", 502, 1014, { audited: false }),
  /** A proxied service that did not answer within its route's timeout. */
  gateway_timeout: refusal("gateway_timeout", 504, 1014, { audited: false }),
  /** An admin action the record's state does not allow (revoking a revoked key), or one that needs an explicit confirmation. */
  conflict: refusal("conflict", 409, 4409, { audited: false }),
  internal_error: refusal("internal_error", 500, 1011, { audited: false }),
} as const satisfies Record<string, Policy>;

export type GateErrorKind = keyof typeof POLICIES;

/** The seed's body text for every authentication failure, kept so FastAPI-era clients keep working. */
export const SEED_DETAIL = "Invalid or missing token";

export class GateError {
  /** Which refusal this is: the key of its policy in POLICIES. */
  readonly kind: GateErrorKind;
  /** The stable wire code clients see (from the policy). */
  readonly code: WireCode;
  /**
   * Human-readable explanation. It is sent to the client (body and `error_description`), so it
   * must never contain a secret or echo client input; callers pass fixed strings only.
   */
  readonly description: string;
  /** Extra response headers (e.g. `Allow` for 405). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** For `insufficient_scope`: the scope the resource needs (RFC 6750 §3 `scope` attribute). */
  readonly scope: string | undefined;

  constructor(kind: GateErrorKind, description: string, extra: { headers?: Record<string, string>; scope?: string } = {}) {
    this.kind = kind;
    this.code = POLICIES[kind].wire;
    this.description = description;
    this.headers = extra.headers;
    this.scope = extra.scope;
  }

  get policy(): Policy {
    return POLICIES[this.kind];
  }
}

// Shared instances for the hot refusals: they are immutable, so allocating per request buys nothing.
export const MISSING_TOKEN = new GateError("missing_token", "No token was presented");
export const INVALID_TOKEN = new GateError("unknown_token", "The token is not valid");

export function tooManyAttempts(retryAfterSeconds: number): GateError {
  return new GateError("too_many_requests", "Too many failed attempts; retry later", {
    headers: { "retry-after": String(retryAfterSeconds) },
  });
}

/** Passwords over plain HTTP from another machine: refused unless the operator allowed it. */
export const INSECURE_PASSWORD = new GateError(
  "invalid_request",
  "Passwords are accepted only over HTTPS or from this machine; enable TLS (TLS_CERT_FILE, TLS_KEY_FILE) or set ALLOW_INSECURE_PASSWORDS=true",
);

/**
 * The key store (a shared PostgreSQL) has not answered for a while: a revocation made elsewhere
 * could be missing here, so credentials from the store are refused rather than trusted.
 */
export const STORE_UNAVAILABLE = new GateError("temporarily_unavailable", "The credential store cannot be reached; retry shortly", {
  headers: { "retry-after": "2" },
});

/** Known but no longer valid: distinct descriptions so a client can tell "rotate me" from "wrong". */
export const REVOKED_TOKEN = new GateError("revoked_token", "The token has been revoked");
export const EXPIRED_TOKEN = new GateError("expired_token", "The token has expired");
