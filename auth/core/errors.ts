/**
 * The one error family of tokengate. Every refusal carries a stable `code` taken from the wire
 * vocabulary (RFC 6750 / RFC 6749 where one exists) so clients can branch on it; `http.ts` and
 * `ws.ts` turn it into a Response or a close code, and nothing else does.
 */

export type GateErrorCode =
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
  | "misdirected_request"
  | "forbidden_origin"
  | "too_many_requests"
  | "not_found"
  | "method_not_allowed"
  | "upgrade_required"
  | "internal_error";

interface CodeSpec {
  readonly status: number;
  /** Close code used when the same refusal happens on an open WebSocket (4000 + HTTP status). */
  readonly close: number;
  /** Whether the refusal is an authentication challenge (gets `WWW-Authenticate`). */
  readonly challenge: boolean;
  /** Value of RFC 6750's `error` attribute; absent when the request had no credentials at all (§3.1). */
  readonly bearerError?: string;
}

export const codeSpecs: Readonly<Record<GateErrorCode, CodeSpec>> = {
  missing_token: { status: 401, close: 4401, challenge: true },
  invalid_token: { status: 401, close: 4401, challenge: true, bearerError: "invalid_token" },
  invalid_request: { status: 400, close: 4400, challenge: true, bearerError: "invalid_request" },
  insufficient_scope: { status: 403, close: 4403, challenge: true, bearerError: "insufficient_scope" },
  // A wrong username/password: a challenge without a Bearer error (the credential was not a token).
  invalid_credentials: { status: 401, close: 4401, challenge: true },
  // RFC 6749 §4.1.2.1 vocabulary: the password queue is full; comes with Retry-After.
  temporarily_unavailable: { status: 503, close: 1013, challenge: false },
  // RFC 6749 §5.2: token-endpoint errors. invalid_client carries its own Basic challenge header.
  invalid_grant: { status: 400, close: 4400, challenge: false },
  invalid_client: { status: 401, close: 4401, challenge: false },
  unauthorized_client: { status: 400, close: 4400, challenge: false },
  unsupported_grant_type: { status: 400, close: 4400, challenge: false },
  invalid_scope: { status: 400, close: 4400, challenge: false },
  // RFC 6749 §4.1.2.1: the server will not do this for this caller (pairing once credentials exist).
  access_denied: { status: 403, close: 4403, challenge: false },
  // A Host we do not serve (DNS rebinding) or a browser Origin we do not trust (CSWSH, CORS).
  misdirected_request: { status: 421, close: 4421, challenge: false },
  forbidden_origin: { status: 403, close: 4403, challenge: false },
  // The brute-force guard: comes with Retry-After.
  too_many_requests: { status: 429, close: 4429, challenge: false },
  not_found: { status: 404, close: 4404, challenge: false },
  method_not_allowed: { status: 405, close: 4405, challenge: false },
  upgrade_required: { status: 426, close: 4426, challenge: false },
  internal_error: { status: 500, close: 1011, challenge: false },
};

/** The seed's body text for every authentication failure, kept so FastAPI-era clients keep working. */
export const SEED_DETAIL = "Invalid or missing token";

export class GateError {
  readonly code: GateErrorCode;
  /**
   * Human-readable explanation. It is sent to the client (body and `error_description`), so it
   * must never contain a secret or echo client input; callers pass fixed strings only.
   */
  readonly description: string;
  /** Extra response headers (e.g. `Allow` for 405). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** For `insufficient_scope`: the scope the resource needs (RFC 6750 §3 `scope` attribute). */
  readonly scope: string | undefined;
  /** WebSocket close code when it differs from the code's default (revoked keys: 4403). */
  readonly close: number | undefined;

  constructor(
    code: GateErrorCode,
    description: string,
    extra: { headers?: Record<string, string>; scope?: string; close?: number } = {},
  ) {
    this.code = code;
    this.description = description;
    this.headers = extra.headers;
    this.scope = extra.scope;
    this.close = extra.close;
  }
}

// Shared instances for the hot refusals: they are immutable, so allocating per request buys nothing.
export const MISSING_TOKEN = new GateError("missing_token", "No token was presented");
export const INVALID_TOKEN = new GateError("invalid_token", "The token is not valid");
/** Refusals that mean "someone is guessing": they count toward a ban. Known-but-stale ones do not. */
export function countsAsGuess(error: GateError): boolean {
  return error === INVALID_TOKEN || error.code === "invalid_credentials";
}

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
export const REVOKED_TOKEN = new GateError("invalid_token", "The token has been revoked", { close: 4403 });
export const EXPIRED_TOKEN = new GateError("invalid_token", "The token has expired", { close: 4401 });
