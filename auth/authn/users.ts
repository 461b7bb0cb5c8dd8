/**
 * Users: people who sign in with a username and password (Basic auth now, the token endpoint
 * later). Roles map to scopes by configuration; authorization everywhere is by scope. Nothing
 * about a verification is cached: a stolen cache entry must never stand in for the password.
 */
import type { BasicCredentials } from "./credentials.ts";
import { GateError, STORE_UNAVAILABLE } from "../core/errors.ts";
import type { PasswordVerifier } from "../secrets/passwords.ts";
import { guardBucketOf } from "../core/addresses.ts";
import type { Principal } from "../core/principal.ts";
import { StoreError, type UserRecord, type UserStore } from "../store/store.ts";

export type RoleScopes = ReadonlyMap<string, readonly string[]>;

/** 1–64 characters a person can type, never a colon (RFC 7617 splits at the first one). */
export const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function scopesForRoles(roles: readonly string[], roleScopes: RoleScopes): string[] {
  return [...new Set(roles.flatMap((role) => roleScopes.get(role) ?? []))];
}

export function userPrincipal(user: UserRecord, roleScopes: RoleScopes): Principal {
  return {
    id: `user:${user.username}`,
    kind: "user",
    name: user.username,
    scopes: scopesForRoles(user.roles, roleScopes),
    expiresAt: null,
    roles: user.roles,
    session: null,
    tokenId: null,
  };
}

export const WRONG_PASSWORD = new GateError("invalid_credentials", "Wrong username or password");
export const PASSKEY_REQUIRED = new GateError(
  "access_denied",
  "This account signs in with a passkey only; use 'Sign in with a passkey' on the sign-in page",
);
export const PASSWORD_QUEUE_FULL = new GateError("temporarily_unavailable", "Too many password checks at once; retry in a moment", {
  headers: { "retry-after": "1" },
});

/** Verifies a password for `client` (its address: one queue place per client, see PasswordVerifier). */
export type PasswordAuthenticator = (credentials: BasicCredentials, client: string) => Promise<Principal | GateError>;

export function createPasswordAuthenticator(options: {
  readonly users: UserStore;
  readonly verifier: PasswordVerifier;
  readonly roleScopes: RoleScopes;
}): PasswordAuthenticator {
  const { users, verifier, roleScopes } = options;
  return async (credentials, client) => {
    let user: UserRecord | undefined;
    try {
      user = USERNAME.test(credentials.username) ? await users.getUser(credentials.username) : undefined;
    } catch (error) {
      if (error instanceof StoreError) return STORE_UNAVAILABLE;
      throw error;
    }
    // Unknown and disabled users verify against the dummy hash: same time, same answer.
    const usable = user !== undefined && user.disabledAt === null ? user : undefined;
    const outcome = await verifier.verify(credentials.password, usable?.passwordHash, [
      `addr:${guardBucketOf(client)}`,
      `user:${credentials.username}`,
    ]);
    if (outcome === "busy") return PASSWORD_QUEUE_FULL;
    if (outcome === "mismatch" || usable === undefined) return WRONG_PASSWORD;
    // Checked after the password, so the answer says nothing about an account to someone without it.
    if (usable.passkeyRequired) return PASSKEY_REQUIRED;
    return userPrincipal(usable, roleScopes);
  };
}
