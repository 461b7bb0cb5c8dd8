/**
 * The server's view of the key store: every key in memory, reloaded when another process (the
 * CLI) commits, so a revocation takes effect without a restart. It authenticates presented
 * tokens (API keys and the bootstrap token), re-checks principals of open sockets, and batches
 * last-used updates so a request never waits on a disk write.
 */
import { EXPIRED_TOKEN, GateError, INVALID_TOKEN, REVOKED_TOKEN } from "./errors.ts";
import { keyState, parseApiKey } from "./keys.ts";
import { createBootstrapAuthenticator, type Principal } from "./principal.ts";
import type { KeyRecord, KeyStore, KeyUsage } from "./store.ts";
import { tokenMatchesDigest } from "./tokens.ts";

interface Entry {
  readonly record: KeyRecord;
  readonly principal: Principal;
}

const MISS_RECHECK_MS = 10;

export interface KeyringOptions {
  readonly store: KeyStore;
  readonly bootstrapDigest: Uint8Array;
  /** Clock in epoch milliseconds; tests move it with setSystemTime. */
  readonly now?: () => number;
  /** Called when a usage flush fails (the batch is kept and retried). */
  readonly onFlushError?: (error: unknown) => void;
}

export interface Keyring {
  authenticate(token: string): Principal | GateError;
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
  });
}

export function createKeyring(options: KeyringOptions): Keyring {
  const { store } = options;
  const now = options.now ?? Date.now;
  const bootstrap = createBootstrapAuthenticator(options.bootstrapDigest);
  let entries = new Map<string, Entry>();
  let marker = -1;
  const pending = new Map<string, { id: string; at: number; addr: string }>();
  let timers: Array<ReturnType<typeof setInterval>> = [];
  let notify: () => void = () => {};
  let lastMissCheck = 0;

  const reload = () => {
    marker = store.changeMarker();
    entries = new Map(store.listKeys().map((record) => [record.id, { record, principal: toPrincipal(record) }]));
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
  const lookupMiss = (id: string): Entry | undefined => {
    const at = performance.now();
    if (at - lastMissCheck < MISS_RECHECK_MS) return undefined;
    lastMissCheck = at;
    return refreshAndNotify() ? entries.get(id) : undefined;
  };

  const keyring: Keyring = {
    authenticate(token) {
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
    revalidate(principal) {
      if (principal.kind !== "key") return undefined;
      const entry = entries.get(principal.id);
      return entry === undefined ? REVOKED_TOKEN : stateError(entry.record);
    },
    refresh: refreshAndNotify,
    flushUsage() {
      if (pending.size === 0) return;
      const batch: KeyUsage[] = [...pending.values()];
      try {
        store.recordUsage(batch);
        pending.clear();
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
