/**
 * The server's view of the key store: every key in memory, reloaded when another process (the
 * CLI) commits, so a revocation takes effect without a restart. It authenticates presented
 * tokens (API keys and the bootstrap token), re-checks principals of open sockets, and batches
 * last-used updates so a request never waits on a disk write.
 */
import { EXPIRED_TOKEN, GateError, INVALID_TOKEN, REVOKED_TOKEN } from "./errors.ts";
import { looksLikeJwt, verifyAccessToken, type KeySet, type TokenSettings, type VerifiedAccessToken } from "./jwt.ts";
import { keyState, parseApiKey } from "./keys.ts";
import { createBootstrapAuthenticator, type Principal } from "./principal.ts";
import type { KeyRecord, KeyStore, KeyUsage, RefreshStore, UserStore } from "./store.ts";
import { tokenMatchesDigest } from "./tokens.ts";

interface Entry {
  readonly record: KeyRecord;
  readonly principal: Principal;
}

const MISS_RECHECK_MS = 10;

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
  /** Clock in epoch milliseconds; tests move it with setSystemTime. */
  readonly now?: () => number;
  /** Called when a usage flush fails (the batch is kept and retried). */
  readonly onFlushError?: (error: unknown) => void;
  /** Key lifecycle changes seen on reload (made by the CLI or any other process). */
  readonly onKeyEvent?: (event: "key.created" | "key.revoked" | "key.rotated", key: KeyRecord) => void;
}

export interface Keyring {
  authenticate(token: string): Principal | GateError | Promise<Principal | GateError>;
  /** Notes a successful use; `remote` is only called once per key per flush window. */
  recordUse(principal: Principal, remote: () => string): void;
  /** Why an already-authenticated principal is no longer valid, or `undefined` if it still is. */
  revalidate(principal: Principal): GateError | undefined;
  /** Reloads if another process changed the store (and runs the change hook); returns whether it did. */
  refresh(): boolean;
  flushUsage(): void;
  /** Polls for changes and flushes usage on timers; `onChange` runs after each reload. */
  start(onChange: () => void, pollMs?: number, flushMs?: number): void;
  stop(): void;
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

export function createKeyring(options: KeyringOptions): Keyring {
  const { store } = options;
  const now = options.now ?? Date.now;
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
  let notify: () => void = () => {};
  let lastMissCheck = 0;

  let loaded = false;
  const reload = () => {
    marker = store.changeMarker();
    const previous = entries;
    entries = new Map(store.listKeys().map((record) => [record.id, { record, principal: toPrincipal(record) }]));
    if (loaded && options.onKeyEvent !== undefined) {
      for (const { record } of entries.values()) {
        const before = previous.get(record.id)?.record;
        if (before === undefined) options.onKeyEvent("key.created", record);
        else if (before.replacedBy === null && record.replacedBy !== null) options.onKeyEvent("key.rotated", record);
        else if (before.revokedAt === null && record.revokedAt !== null) options.onKeyEvent("key.revoked", record);
      }
    }
    loaded = true;
    users = new Map(store.listUsers().map((user) => [user.username, user.disabledAt]));
    // Access tokens live at most a day (ACCESS_TOKEN_TTL_SECONDS ≤ 86400): older revocations no longer matter.
    revokedSessions = new Set(store.revokedFamilies(now() - 86_400_000));
    revokedTokenIds = new Set(store.revokedAccessTokens(now()));
  };
  reload();

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

  /** Reloads if the store changed, then runs the change hook (socket revalidation). */
  const refreshAndNotify = () => {
    if (store.changeMarker() === marker) return false;
    reload();
    notify();
    return true;
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
  const lookupMiss = (id: string): Entry | undefined =>
    recheckAllowed() && refreshAndNotify() ? entries.get(id) : undefined;

  /** Whether a principal (of any origin) may still act: not expired, key not revoked, user not disabled. */
  const revalidate = (principal: Principal): GateError | undefined => {
    if (principal.expiresAt !== null && principal.expiresAt <= now()) return EXPIRED_TOKEN;
    if (principal.tokenId !== null && revokedTokenIds.has(principal.tokenId)) return REVOKED_TOKEN;
    if (principal.session !== null && revokedSessions.has(principal.session)) return REVOKED_TOKEN;
    if (principal.kind === "key") {
      const entry = entries.get(principal.id);
      return entry === undefined ? REVOKED_TOKEN : stateError(entry.record);
    }
    if (principal.kind === "user") {
      let disabledAt = users.get(principal.name);
      // A user added a moment ago may not be loaded yet: look again before calling it revoked.
      if (disabledAt === undefined && recheckAllowed() && refreshAndNotify()) disabledAt = users.get(principal.name);
      return disabledAt === undefined || disabledAt !== null ? REVOKED_TOKEN : undefined;
    }
    return undefined;
  };

  const verifyJwt = async (token: string, jwt: JwtVerification): Promise<Principal | GateError> => {
    const claims = await verifyAccessToken(token, jwt.keys(), jwt.settings, now());
    if (claims instanceof GateError) return claims;
    const principal = jwtPrincipal(claims);
    if (principal === undefined) return INVALID_TOKEN;
    if (verifiedJwts.size >= JWT_CACHE_LIMIT) verifiedJwts.delete(verifiedJwts.keys().next().value!);
    verifiedJwts.set(token, principal);
    return revalidate(principal) ?? principal;
  };

  const keyring: Keyring = {
    authenticate(token) {
      if (options.jwt !== undefined && looksLikeJwt(token)) {
        // AUTH_TOKEN may contain dots: a static secret shaped like a JWT must still match.
        const fixed = bootstrap(token);
        if (fixed !== INVALID_TOKEN) return fixed;
        const cached = verifiedJwts.get(token);
        if (cached === undefined) return verifyJwt(token, options.jwt);
        const refusal = revalidate(cached);
        if (refusal === EXPIRED_TOKEN) verifiedJwts.delete(token);
        return refusal ?? cached;
      }
      const parsed = parseApiKey(token);
      const entry = parsed === undefined ? undefined : (entries.get(parsed.id) ?? lookupMiss(parsed.id));
      // Anything that is not a known key id is compared with the bootstrap secret, so an
      // AUTH_TOKEN that happens to look like a key still works.
      if (entry === undefined) return bootstrap(token);
      if (!tokenMatchesDigest(parsed!.secret, entry.record.secretHash)) return INVALID_TOKEN;
      return stateError(entry.record) ?? entry.principal;
    },
    recordUse(principal, remote) {
      if (principal.kind !== "key") return;
      const seen = pending.get(principal.id);
      if (seen !== undefined) seen.at = now();
      else pending.set(principal.id, { id: principal.id, at: now(), addr: remote() });
    },
    revalidate,
    refresh: refreshAndNotify,
    flushUsage() {
      if (pending.size === 0) return;
      const batch: KeyUsage[] = [...pending.values()];
      try {
        store.recordUsage(batch);
        pending.clear();
        // Our own write moved the marker; adopt it unless another process committed too (the
        // data_version half only moves for others), so a usage flush never costs a full reload.
        const after = store.changeMarker();
        if (after.split(":")[0] === marker.split(":")[0]) marker = after;
      } catch (error) {
        options.onFlushError?.(error);
      }
    },
    start(onChange, pollMs = 100, flushMs = 5_000) {
      keyring.stop();
      notify = onChange;
      const poll = setInterval(refreshAndNotify, pollMs);
      const flush = setInterval(() => keyring.flushUsage(), flushMs);
      timers = [poll, flush];
      for (const timer of timers) timer.unref();
    },
    stop() {
      for (const timer of timers) clearInterval(timer);
      timers = [];
      notify = () => {};
    },
  };
  return keyring;
}
