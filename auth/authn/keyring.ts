/**
 * The server's view of the key store: every key in memory, reloaded when another process (the
 * CLI, another instance) commits, so a revocation takes effect without a restart. If the store
 * cannot be reached for longer than STALE_AFTER_MS, the view may be missing a revocation made
 * elsewhere: authentication then fails closed (503) until the store answers again. It authenticates presented
 * tokens (API keys and the bootstrap token), re-checks principals of open sockets, and batches
 * last-used updates so a request never waits on a disk write.
 */
import { EXPIRED_TOKEN, GateError, INVALID_TOKEN, REVOKED_TOKEN, STORE_UNAVAILABLE } from "../core/errors.ts";
import { looksLikeJwt, verifyAccessToken, type KeySet, type TokenSettings, type VerifiedAccessToken } from "../secrets/jwt.ts";
import { keyState, parseApiKey } from "../secrets/keys.ts";
import type { Principal } from "../core/principal.ts";
import { createBootstrapAuthenticator } from "./static-token.ts";
import type { KeyRecord, KeyStore, KeyUsage, RefreshStore, UserStore } from "../store/store.ts";
import { tokenMatchesDigest } from "../secrets/tokens.ts";
import type { Clock } from "../core/clock.ts";

interface Entry {
  readonly record: KeyRecord;
  readonly principal: Principal;
}

const MISS_RECHECK_MS = 10;

/** How long the in-memory view may go unconfirmed by the store before it is no longer trusted. */
export const STALE_AFTER_MS = 5_000;

/** Verified JWTs kept for reuse; bounded, and never trusted past `exp` or a revocation. */
const JWT_CACHE_LIMIT = 10_000;

export interface JwtVerification {
  /** The current key set; replaced when the signing keys are rotated. */
  readonly keys: () => KeySet;
  readonly settings: TokenSettings;
}

export interface KeyringOptions {
  readonly store: KeyStore & UserStore & RefreshStore;
  /** Accept JWT access tokens signed by these keys; without it JWTs are unknown tokens. */
  readonly jwt?: JwtVerification | undefined;
  readonly bootstrapDigest: Uint8Array;
  /** Whether the bootstrap token is shaped like a JWT (`looksLikeJwt`); absent: assumed so. */
  readonly bootstrapLooksLikeJwt?: boolean;
  readonly now: Clock;
  /** Called when a usage flush fails (the batch is kept and retried). */
  readonly onFlushError?: (error: unknown) => void;
  /** Key lifecycle changes seen on reload (made by the CLI or any other process). */
  readonly onKeyEvent?: (event: "key.created" | "key.revoked" | "key.rotated", key: KeyRecord) => void;
  /** The store stopped answering (`error`) or answers again (`undefined`); called on each transition. */
  readonly onStoreHealth?: (error: unknown) => void;
}

export interface Keyring {
  authenticate(token: string): Principal | GateError | Promise<Principal | GateError>;
  /** Notes a successful use; `remote` is only called once per key per flush window. */
  recordUse(principal: Principal, remote: () => string): void;
  /** Why an already-authenticated principal is no longer valid, or `undefined` if it still is. */
  revalidate(principal: Principal): GateError | undefined;
  /** Reloads if another process changed the store (and runs the change hook); resolves to whether it did. */
  refresh(): Promise<boolean>;
  flushUsage(): Promise<void>;
  /**
   * Polls for changes (and listens, where the store can push them) and flushes usage on timers;
   * `onChange` runs after each reload.
   */
  start(onChange: () => void, pollMs?: number, flushMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function toPrincipal(record: KeyRecord): Principal {
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

/** A JWT's principal: its own scopes and expiry, the identity of its subject. */
function jwtPrincipal(claims: VerifiedAccessToken): Principal | undefined {
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

export async function createKeyring(options: KeyringOptions): Promise<Keyring> {
  const { store } = options;
  const { now } = options;
  const bootstrap = createBootstrapAuthenticator(options.bootstrapDigest);
  let entries = new Map<string, Entry>();
  /** Username → disabled time (null when active); absent means no such user. */
  let users = new Map<string, number | null>();
  let revokedSessions = new Set<string>();
  let revokedTokenIds = new Set<string>();
  const verifiedJwts = new Map<string, Principal>();
  let marker = "";
  const pending = new Map<string, { id: string; at: number; addr: string }>();
  let timers: Array<ReturnType<typeof setInterval>> = [];
  let unwatch: (() => Promise<void>) | undefined;
  let notify: () => void = () => {};
  let lastMissCheck = 0;
  /** performance.now() of the last time the store confirmed our view (not the wall clock: tests move that). */
  let syncedAt = performance.now();
  let healthy = true;

  let loaded = false;
  const reload = async (nextMarker: string) => {
    const [keys, userList, families, tokenIds] = await Promise.all([
      store.listKeys(),
      store.listUsers(),
      // Access tokens live at most a day (ACCESS_TOKEN_TTL_SECONDS ≤ 86400): older revocations no longer matter.
      store.revokedFamilies(now() - 86_400_000),
      store.revokedAccessTokens(now()),
    ]);
    marker = nextMarker;
    const previous = entries;
    entries = new Map(keys.map((record) => [record.id, { record, principal: toPrincipal(record) }]));
    if (loaded && options.onKeyEvent !== undefined) {
      for (const { record } of entries.values()) {
        const before = previous.get(record.id)?.record;
        if (before === undefined) options.onKeyEvent("key.created", record);
        else if (before.replacedBy === null && record.replacedBy !== null) options.onKeyEvent("key.rotated", record);
        else if (before.revokedAt === null && record.revokedAt !== null) options.onKeyEvent("key.revoked", record);
      }
    }
    loaded = true;
    users = new Map(userList.map((user) => [user.username, user.disabledAt]));
    revokedSessions = new Set(families);
    revokedTokenIds = new Set(tokenIds);
  };
  await reload(await store.changeMarker());

  const stateError = (record: KeyRecord): GateError | undefined => {
    switch (keyState(record, now())) {
      case "revoked":
        return REVOKED_TOKEN;
      case "expired":
        return EXPIRED_TOKEN;
      case "active":
        return undefined;
    }
  };

  const setHealth = (error: unknown) => {
    if ((error === undefined) === healthy) return;
    healthy = error === undefined;
    options.onStoreHealth?.(error);
  };
  /**
   * Re-judged on every poll tick (not per request: the hot path reads a boolean), including while
   * a check hangs on a half-open connection, since the tick does not wait for it.
   */
  let distrusted = false;
  const stale = () => distrusted;
  const judgeFreshness = () => {
    distrusted = performance.now() - syncedAt > STALE_AFTER_MS;
  };

  const judgeKey = (entry: Entry, secret: string): Principal | GateError => {
    if (!tokenMatchesDigest(secret, entry.record.secretHash)) return INVALID_TOKEN;
    return stateError(entry.record) ?? (stale() ? STORE_UNAVAILABLE : entry.principal);
  };

  /** Reloads if the store changed, then runs the change hook (socket revalidation). One at a time. */
  let inFlight: Promise<boolean> | undefined;
  const check = async (): Promise<boolean> => {
    const started = performance.now();
    try {
      const current = await store.changeMarker();
      const changed = current !== marker;
      if (changed) await reload(current);
      syncedAt = started;
      distrusted = false;
      setHealth(undefined);
      if (changed) notify();
      return changed;
    } catch (error) {
      setHealth(error);
      judgeFreshness();
      // Past the limit, the change hook lets open sockets see that their principal can no longer be vouched for.
      if (stale()) notify();
      return false;
    }
  };
  const refreshAndNotify = (): Promise<boolean> => {
    inFlight ??= check().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  /**
   * An unknown key id may be a key the CLI created a moment ago: look again at once instead of
   * making a freshly provisioned device wait for the next poll. Throttled, because unknown ids
   * are also what a guesser sends.
   */
  const recheckAllowed = () => {
    const at = performance.now();
    if (at - lastMissCheck < MISS_RECHECK_MS) return false;
    lastMissCheck = at;
    return true;
  };
  const lookupMiss = async (id: string): Promise<Entry | undefined> =>
    recheckAllowed() && (await refreshAndNotify()) ? entries.get(id) : undefined;

  /** Whether a principal (of any origin) may still act: not expired, key not revoked, user not disabled. */
  const revalidate = (principal: Principal): GateError | undefined => {
    if (principal.expiresAt !== null && principal.expiresAt <= now()) return EXPIRED_TOKEN;
    // The bootstrap token is configuration, not store data: it keeps working while the store is away.
    if (principal.kind !== "bootstrap" && stale()) return STORE_UNAVAILABLE;
    if (principal.tokenId !== null && revokedTokenIds.has(principal.tokenId)) return REVOKED_TOKEN;
    if (principal.session !== null && revokedSessions.has(principal.session)) return REVOKED_TOKEN;
    if (principal.kind === "key") {
      const entry = entries.get(principal.id);
      return entry === undefined ? REVOKED_TOKEN : stateError(entry.record);
    }
    if (principal.kind === "user") {
      const disabledAt = users.get(principal.name);
      return disabledAt === undefined || disabledAt !== null ? REVOKED_TOKEN : undefined;
    }
    return undefined;
  };

  const verifyJwt = async (token: string, jwt: JwtVerification): Promise<Principal | GateError> => {
    const claims = await verifyAccessToken(token, jwt.keys(), jwt.settings, now());
    if (claims instanceof GateError) return claims;
    const principal = jwtPrincipal(claims);
    if (principal === undefined) return INVALID_TOKEN;
    // A user added a moment ago (on another instance, say) may not be loaded yet: look again first.
    if (principal.kind === "user" && !users.has(principal.name) && recheckAllowed()) await refreshAndNotify();
    if (verifiedJwts.size >= JWT_CACHE_LIMIT) verifiedJwts.delete(verifiedJwts.keys().next().value!);
    verifiedJwts.set(token, principal);
    return revalidate(principal) ?? principal;
  };

  const keyring: Keyring = {
    authenticate(token) {
      if (options.jwt !== undefined && token.includes(".")) {
        // AUTH_TOKEN may contain dots: a static secret shaped like a JWT must still match. When
        // it is not so shaped no JWT can equal it, and hashing the long token is skipped.
        if (options.bootstrapLooksLikeJwt !== false) {
          const fixed = bootstrap(token);
          if (fixed !== INVALID_TOKEN) return fixed;
        }
        // A cached token was verified, so its shape was checked then; only new ones need the regex.
        const cached = verifiedJwts.get(token);
        if (cached !== undefined) {
          const refusal = revalidate(cached);
          if (refusal === EXPIRED_TOKEN) verifiedJwts.delete(token);
          return refusal ?? cached;
        }
        if (looksLikeJwt(token)) return verifyJwt(token, options.jwt);
      }
      const parsed = parseApiKey(token);
      const entry = parsed === undefined ? undefined : entries.get(parsed.id);
      if (entry === undefined) {
        // Anything that is not a known key id is compared with the bootstrap secret, so an
        // AUTH_TOKEN that happens to look like a key still works.
        const fixed = bootstrap(token);
        if (fixed !== INVALID_TOKEN || parsed === undefined) return fixed;
        if (stale()) return STORE_UNAVAILABLE;
        return lookupMiss(parsed.id).then((found) => (found === undefined ? INVALID_TOKEN : judgeKey(found, parsed.secret)));
      }
      return judgeKey(entry, parsed!.secret);
    },
    recordUse(principal, remote) {
      if (principal.kind !== "key") return;
      const seen = pending.get(principal.id);
      if (seen !== undefined) seen.at = now();
      else pending.set(principal.id, { id: principal.id, at: now(), addr: remote() });
    },
    revalidate,
    refresh: refreshAndNotify,
    async flushUsage() {
      if (pending.size === 0) return;
      const batch: KeyUsage[] = [...pending.values()];
      pending.clear();
      try {
        await store.recordUsage(batch);
      } catch (error) {
        // Kept for the next flush, unless a newer use of the same key arrived meanwhile.
        for (const usage of batch) if (!pending.has(usage.id)) pending.set(usage.id, { ...usage });
        options.onFlushError?.(error);
      }
    },
    async start(onChange, pollMs = 100, flushMs = 5_000) {
      await keyring.stop();
      notify = onChange;
      const poll = setInterval(() => {
        judgeFreshness();
        void refreshAndNotify();
      }, pollMs);
      const flush = setInterval(() => void keyring.flushUsage(), flushMs);
      timers = [poll, flush];
      for (const timer of timers) timer.unref();
      try {
        unwatch = await store.watchChanges(() => void refreshAndNotify());
      } catch (error) {
        // Polling still finds every change; pushing only makes it sooner.
        setHealth(error);
      }
    },
    async stop() {
      for (const timer of timers) clearInterval(timer);
      timers = [];
      notify = () => {};
      const stopWatching = unwatch;
      unwatch = undefined;
      await stopWatching?.().catch(() => undefined);
    },
  };
  return keyring;
}
