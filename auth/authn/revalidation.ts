/**
 * Whether a principal may still act, judged against the keyring's view: used when a credential is
 * presented, for cached JWTs and for the principals of open sockets alike.
 */
import type { Clock } from "../core/clock.ts";
import { EXPIRED_TOKEN, REVOKED_TOKEN, STORE_UNAVAILABLE, type GateError } from "../core/errors.ts";
import { hasScope, requireScope, type Principal } from "../core/principal.ts";
import { keyState } from "../secrets/keys.ts";
import type { KeyRecord } from "../store/store.ts";
import type { StoreHealth } from "./store-health.ts";
import type { StoreView } from "./store-view.ts";

/** `scope`: what the principal's open socket needs; an API key whose scopes were narrowed since must let it go. */
export type Revalidate = (principal: Principal, scope?: string) => GateError | undefined;

/** Why a stored key may not be used now, or `undefined` while it is active. */
export function keyStateError(record: KeyRecord, now: Clock): GateError | undefined {
  switch (keyState(record, now())) {
    case "revoked":
      return REVOKED_TOKEN;
    case "expired":
      return EXPIRED_TOKEN;
    case "active":
      return undefined;
  }
}

/** Whether a principal (of any origin) may still act: not expired, key not revoked, user not disabled. */
export function createRevalidator(view: StoreView, health: StoreHealth, now: Clock): Revalidate {
  return (principal, scope) => {
    // A key itself is judged by its stored record below (an expiry extended since counts); a token by its own end.
    const rawKey = principal.kind === "key" && principal.tokenId === null && principal.session === null;
    if (!rawKey && principal.expiresAt !== null && principal.expiresAt <= now()) return EXPIRED_TOKEN;
    // The bootstrap token is configuration, not store data: it keeps working while the store is away.
    if (principal.kind !== "bootstrap" && health.isStale()) return STORE_UNAVAILABLE;
    if (principal.tokenId !== null && view.isTokenRevoked(principal.tokenId)) return REVOKED_TOKEN;
    if (principal.session !== null && view.isSessionRevoked(principal.session)) return REVOKED_TOKEN;
    // A browser session's scopes follow its key's (principals.ts): an open socket needs its scope still.
    if (principal.session !== null && scope !== undefined) {
      const live = view.findSession(principal.session)?.principal;
      if (live !== undefined && !hasScope(live, scope)) return requireScope(live, scope);
    }
    if (principal.kind === "key") {
      const entry = view.findKey(principal.id);
      if (entry === undefined) return REVOKED_TOKEN;
      const state = keyStateError(entry.record, now);
      if (state !== undefined) return state;
      // An access token minted from the key may not outlive a narrowing of the key's scopes.
      if (principal.tokenId !== null)
        return principal.scopes.every((granted) => hasScope(entry.principal, granted)) ? undefined : REVOKED_TOKEN;
      // A key itself has the scopes stored now; a browser session's are narrowed to them in principals.ts.
      return scope === undefined || principal.session !== null ? undefined : requireScope(entry.principal, scope);
    }
    if (principal.kind === "user") {
      const disabledAt = view.userDisabledAt(principal.name);
      return disabledAt === undefined || disabledAt !== null ? REVOKED_TOKEN : undefined;
    }
    return undefined;
  };
}
