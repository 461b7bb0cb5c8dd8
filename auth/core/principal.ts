/**
 * Who a request acts as, once its token has been verified, and what it may do. Pure.
 */
import { GateError } from "./errors.ts";

/** Who a request acts as once its credential is verified: a key, a user or the bootstrap token, and what it may do. */
export interface Principal {
  /** Stable public identifier, safe to log (never derived from the secret). */
  readonly id: string;
  readonly kind: "bootstrap" | "key" | "user";
  readonly name: string;
  /** Granted scopes; `*` grants every scope. */
  readonly scopes: readonly string[];
  /** Epoch milliseconds after which the credential no longer works, if it expires. */
  readonly expiresAt: number | null;
  /** User roles (empty for keys and the bootstrap token); carried into issued JWTs. */
  readonly roles: readonly string[];
  /**
   * For JWTs: the refresh-token family (sign-in session) they came from, if any; for a browser
   * session cookie: the session's id. Revoking either ends the principal.
   */
  readonly session: string | null;
  /** For JWTs: the token's `jti`, so a single access token can be revoked. */
  readonly tokenId: string | null;
}

/** Scope value of routes that any authenticated principal may use (e.g. /auth/whoami). */
export const ANY_SCOPE = "";

/** The scope of the admin API, and of anything that makes a key (a device's, through device login). */
export const ADMIN_SCOPE = "admin";

/**
 * Verifies a well-formed presented token: the principal it belongs to, or why it is refused.
 * Synchronous for secrets and cached JWTs; a Promise only when a JWT needs a signature check.
 */
export type Authenticator = (token: string) => Principal | GateError | Promise<Principal | GateError>;

export function hasScope(principal: Principal, scope: string): boolean {
  return scope === ANY_SCOPE || principal.scopes.includes("*") || principal.scopes.includes(scope);
}

export function requireScope(principal: Principal, scope: string): GateError | undefined {
  if (hasScope(principal, scope)) return undefined;
  return new GateError("insufficient_scope", `This resource needs the ${scope} scope`, { scope });
}

export const BOOTSTRAP_PRINCIPAL: Principal = Object.freeze({
  id: "bootstrap",
  kind: "bootstrap",
  name: "bootstrap token",
  scopes: Object.freeze(["*"]),
  expiresAt: null,
  roles: Object.freeze([]),
  session: null,
  tokenId: null,
});
