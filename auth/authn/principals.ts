/**
 * The principals the keyring hands out, built once per key record or verified JWT (never per
 * request), and the subject string an issued token names them by.
 */
import type { Principal } from "../core/principal.ts";
import type { VerifiedAccessToken } from "../secrets/jwt.ts";
import type { KeyRecord, SessionRecord } from "../store/store.ts";

/** An API key's principal: frozen, because every request with that key shares the one object. */
export function keyPrincipal(record: KeyRecord): Principal {
  return Object.freeze({
    id: record.id,
    kind: "key",
    name: record.name,
    scopes: Object.freeze([...record.scopes]),
    expiresAt: record.expiresAt,
    roles: Object.freeze([]),
    session: null,
    tokenId: null,
  });
}

/** The subject of an issued token: `user:<name>` or `key:<id>`. */
export function subjectOf(principal: Principal): string {
  return principal.kind === "user" ? principal.id : `key:${principal.id}`;
}

/** A JWT's principal: its own scopes and expiry, the identity of its subject; `undefined` for a subject of no known kind. */
export function jwtPrincipal(claims: VerifiedAccessToken): Principal | undefined {
  const expiresAt = claims.exp * 1000;
  const token = { expiresAt, scopes: claims.scope, session: claims.sid, tokenId: claims.jti };
  if (claims.sub.startsWith("user:")) {
    return Object.freeze({ id: claims.sub, kind: "user", name: claims.sub.slice(5), roles: claims.roles, ...token });
  }
  if (claims.sub.startsWith("key:")) {
    return Object.freeze({ id: claims.sub.slice(4), kind: "key", name: claims.sub.slice(4), roles: [], ...token });
  }
  return undefined;
}

/**
 * A key's session may do what the session was opened with and what the key may do now: scopes
 * narrowed on the key since narrow its sessions too (`*` on either side defers to the other).
 */
function narrowToKey(sessionScopes: readonly string[], keyScopes: readonly string[] | undefined): readonly string[] {
  if (keyScopes === undefined || keyScopes.includes("*")) return sessionScopes;
  if (sessionScopes.includes("*")) return keyScopes;
  return sessionScopes.filter((scope) => keyScopes.includes(scope));
}

/**
 * A browser session's principal: who signed in, with the scopes of sign-in (a key's narrowed to the
 * key's own now); it ends at the session's absolute end, and `session` names it so revocation
 * reaches its sockets.
 */
export function sessionPrincipal(
  record: SessionRecord,
  keyOf: (id: string) => { readonly name: string; readonly scopes: readonly string[] } | undefined,
): Principal | undefined {
  const key = record.subject.startsWith("key:") ? keyOf(record.subject.slice(4)) : undefined;
  const common = {
    scopes: Object.freeze([...narrowToKey(record.scopes, key?.scopes)]),
    expiresAt: record.expiresAt,
    roles: Object.freeze([...record.roles]),
    session: record.id,
    tokenId: null,
  };
  if (record.subject.startsWith("user:")) {
    return Object.freeze({ id: record.subject, kind: "user", name: record.subject.slice(5), ...common });
  }
  if (record.subject.startsWith("key:")) {
    const id = record.subject.slice(4);
    return Object.freeze({ id, kind: "key", name: key?.name ?? id, ...common });
  }
  return undefined;
}
