/**
 * From a presented token to a principal or a refusal: API keys, the bootstrap token and JWT access
 * tokens. The hot path (a known key, the bootstrap token, a cached JWT) answers synchronously and
 * allocates nothing; only a token not seen before may wait for the store or a signature check.
 */
import type { Clock } from "../core/clock.ts";
import { GateError, INVALID_TOKEN, STORE_UNAVAILABLE } from "../core/errors.ts";
import { BOOTSTRAP_PRINCIPAL, type Principal } from "../core/principal.ts";
import { looksLikeJwt, verifyAccessToken, type KeySet, type TokenSettings } from "../secrets/jwt.ts";
import { parseApiKey, type ParsedApiKey } from "../secrets/keys.ts";
import { parseSessionToken, SESSION_PREFIX } from "../secrets/sessions.ts";
import { createSessionJudge, type SessionJudgeParts } from "./session-judge.ts";
import { createSecretMatcher, tokenMatchesDigest } from "../secrets/tokens.ts";
import type { JwtCache } from "./jwt-cache.ts";
import type { Poller } from "./poller.ts";
import { jwtPrincipal } from "./principals.ts";
import { keyStateError, type Revalidate } from "./revalidation.ts";
import type { StoreHealth } from "./store-health.ts";
import type { KeyEntry, StoreView } from "./store-view.ts";

export interface JwtVerification {
  /** The current key set; replaced when the signing keys are rotated. */
  readonly keys: () => KeySet;
  readonly settings: TokenSettings;
}

export type Authenticate = (token: string) => Principal | GateError | Promise<Principal | GateError>;

export interface AuthenticatorParts {
  readonly view: StoreView;
  readonly health: StoreHealth;
  readonly poller: Pick<Poller, "refresh" | "allowMissRecheck">;
  readonly jwtCache: JwtCache;
  readonly revalidate: Revalidate;
  /** Accept JWT access tokens signed by these keys; without it JWTs are unknown tokens. */
  readonly jwt: JwtVerification | undefined;
  readonly bootstrapDigest: Uint8Array;
  /** Whether the bootstrap token is shaped like a JWT; absent: assumed so. */
  readonly bootstrapLooksLikeJwt: boolean | undefined;
  readonly now: Clock;
  readonly sessions: Pick<SessionJudgeParts, "activity" | "idleMs" | "store">;
}

export function createTokenAuthenticator(parts: AuthenticatorParts): Authenticate {
  const { view, health, poller, jwtCache, revalidate, jwt, now } = parts;
  const matchesBootstrap = createSecretMatcher(parts.bootstrapDigest);
  // AUTH_TOKEN may contain dots: a static secret shaped like a JWT must still match. When it is
  // not so shaped no JWT can equal it, and hashing the long token is skipped.
  const bootstrapMayLookLikeJwt = parts.bootstrapLooksLikeJwt !== false;

  const authenticateSession = createSessionJudge({ view, health, poller, revalidate, now, ...parts.sessions });

  const judgeKey = (entry: KeyEntry, secret: string): Principal | GateError => {
    if (!tokenMatchesDigest(secret, entry.record.secretHash)) return INVALID_TOKEN;
    return keyStateError(entry.record, now) ?? (health.isStale() ? STORE_UNAVAILABLE : entry.principal);
  };

  /** An unknown key id: looked up again after a (throttled) check of the store. */
  const judgeMissedKey = async (key: ParsedApiKey): Promise<Principal | GateError> => {
    const found = poller.allowMissRecheck() && (await poller.refresh()) ? view.findKey(key.id) : undefined;
    return found === undefined ? INVALID_TOKEN : judgeKey(found, key.secret);
  };

  const verifyJwt = async (token: string, verification: JwtVerification): Promise<Principal | GateError> => {
    const claims = await verifyAccessToken(token, verification.keys(), verification.settings, now());
    if (claims instanceof GateError) return claims;
    const principal = jwtPrincipal(claims);
    if (principal === undefined) return INVALID_TOKEN;
    // A user added a moment ago (on another instance, say) may not be loaded yet: look again first.
    if (principal.kind === "user" && view.userDisabledAt(principal.name) === undefined && poller.allowMissRecheck()) await poller.refresh();
    jwtCache.remember(token, principal);
    return revalidate(principal) ?? principal;
  };

  /** A dotted token: the bootstrap token, a cached JWT or a new one; `undefined` when it is none of them. */
  const authenticateDotted = (
    token: string,
    verification: JwtVerification,
  ): Principal | GateError | Promise<Principal | GateError> | undefined => {
    if (bootstrapMayLookLikeJwt && matchesBootstrap(token)) return BOOTSTRAP_PRINCIPAL;
    // A cached token was verified, so its shape was checked then; only new ones need the regex.
    const cached = jwtCache.judgeCached(token);
    if (cached !== undefined) return cached;
    return looksLikeJwt(token) ? verifyJwt(token, verification) : undefined;
  };

  return (token) => {
    if (token.startsWith(SESSION_PREFIX)) {
      const session = parseSessionToken(token);
      if (session !== undefined) return authenticateSession(session);
    }
    if (jwt !== undefined && token.includes(".")) {
      const outcome = authenticateDotted(token, jwt);
      if (outcome !== undefined) return outcome;
    }
    const parsed = parseApiKey(token);
    if (parsed !== undefined) {
      const entry = view.findKey(parsed.id);
      if (entry !== undefined) return judgeKey(entry, parsed.secret);
    }
    // Anything that is not a known key id is compared with the bootstrap secret, so an
    // AUTH_TOKEN that happens to look like a key still works.
    if (matchesBootstrap(token)) return BOOTSTRAP_PRINCIPAL;
    if (parsed === undefined) return INVALID_TOKEN;
    if (health.isStale()) return STORE_UNAVAILABLE;
    return judgeMissedKey(parsed);
  };
}
