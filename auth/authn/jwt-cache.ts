/**
 * Verified JWT access tokens kept for reuse, so a client that sends the same token on every
 * request pays for the signature check once. Bounded, and a cached token is judged again on every
 * use: never trusted past `exp` or a revocation.
 */
import type { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import type { Revalidate } from "./revalidation.ts";

const JWT_CACHE_LIMIT = 10_000;

export interface JwtCache {
  /** The cached token's principal, or why it may no longer act; `undefined` when it was never verified here. */
  readonly judgeCached: (token: string) => Principal | GateError | undefined;
  /** Keeps a verified token, dropping the oldest when full. */
  readonly remember: (token: string, principal: Principal) => void;
}

export function createJwtCache(revalidate: Revalidate, limit = JWT_CACHE_LIMIT): JwtCache {
  const verified = new Map<string, Principal>();
  return {
    judgeCached(token) {
      const cached = verified.get(token);
      if (cached === undefined) return undefined;
      const refusal = revalidate(cached);
      // Expiry is final, so the entry goes; other refusals (a store out of reach) may pass.
      if (refusal?.kind === "expired_token") verified.delete(token);
      return refusal ?? cached;
    },
    remember(token, principal) {
      if (verified.size >= limit) {
        // A Map iterates in insertion order: the first key is the oldest.
        const oldest = verified.keys().next();
        if (oldest.done !== true) verified.delete(oldest.value);
      }
      verified.set(token, principal);
    },
  };
}
