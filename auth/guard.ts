/**
 * The brute-force guard. Failed authentications are counted per client address and per
 * presented key id in an `AttemptStore` (in memory, or Redis shared by several instances); past
 * the limit the subject is banned for a while, longer each time it comes back soon after a ban.
 * Bans live in the `BanStore` (SQLite or PostgreSQL), so the CLI can list and clear them and every
 * instance sees them; this module keeps an in-memory copy so the per-request check is a Map
 * lookup, and no lookup at all while nobody is banned.
 */
import type { BanRecord, BanStore } from "./store.ts";

export interface AttemptStore {
  /** Adds a failure for `subject` and returns how many it has within the last `windowMs`. */
  countFailure(subject: string, now: number, windowMs: number): number | Promise<number>;
  forget(subject: string): void | Promise<void>;
}

/** The single-process default; a shared backend replaces it when several instances run. */
/** Synchronous: a ban starts within the failure that crosses the limit. */
export interface MemoryAttemptStore extends AttemptStore {
  countFailure(subject: string, now: number, windowMs: number): number;
  forget(subject: string): void;
}

export function createMemoryAttemptStore(limit = 100_000): MemoryAttemptStore {
  const windows = new Map<string, { start: number; count: number }>();
  return {
    countFailure(subject, now, windowMs) {
      const window = windows.get(subject);
      if (window === undefined || now - window.start >= windowMs) {
        // Bounded: a flood of distinct addresses must not grow memory without end.
        if (windows.size >= limit) windows.delete(windows.keys().next().value!);
        windows.set(subject, { start: now, count: 1 });
        return 1;
      }
      window.count += 1;
      return window.count;
    },
    forget: (subject) => void windows.delete(subject),
  };
}

export interface GuardLimits {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly baseBanMs: number;
  readonly maxBanMs: number;
  /** A ban that starts within this long after the previous one ended is a repeat. */
  readonly memoryMs: number;
}

export const DEFAULT_LIMITS: GuardLimits = {
  maxFailures: 10,
  windowMs: 60_000,
  baseBanMs: 60_000,
  maxBanMs: 3_600_000,
  memoryMs: 86_400_000,
};

export type GuardEvent =
  | { readonly event: "ban.started"; readonly subject: string; readonly until: number; readonly level: number }
  | { readonly event: "ban.ended"; readonly subject: string }
  /** The shared attempt store failed (`error` set) or answers again; counting falls back to this process meanwhile. */
  | { readonly event: "attempts.unavailable"; readonly error: unknown }
  | { readonly event: "attempts.available" };

export interface Guard {
  /** Whether anyone is banned at all: when not, callers skip the (costly) address lookup. */
  readonly active: boolean;
  /** Seconds until the ban on this address (or key id) ends, or 0 when not banned. */
  retryAfter(address: string, keyId?: string): number;
  /**
   * Counts a failure (unknown secret, wrong password) and bans past the limit. With an in-memory
   * attempt store the ban is in force when this returns; with a shared one, when the promise settles.
   */
  recordFailure(address: string, keyId?: string): void | Promise<void>;
  /** Reloads bans from the store (after `cli bans clear`, or another instance's ban). */
  reload(): Promise<void>;
}

export interface GuardOptions {
  readonly attempts: AttemptStore;
  readonly bans: BanStore;
  readonly limits?: GuardLimits;
  /** Addresses never counted or banned (loopback, the operator's own devices). */
  readonly exempt: (address: string) => boolean;
  readonly now?: () => number;
  readonly onEvent?: (event: GuardEvent) => void;
  /** A ban could not be written to the store; it still holds in this process. */
  readonly onBanError?: (error: unknown) => void;
}

export function createGuard(options: GuardOptions): Guard {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const now = options.now ?? Date.now;
  let banned = new Map<string, number>();
  // Counts kept here while the shared attempt store is unreachable: N instances then allow up to
  // N times the attempts, never unlimited ones.
  const fallback = createMemoryAttemptStore();
  let attemptsDown = false;

  const load = (records: readonly BanRecord[]) => {
    const next = new Map(records.map((record) => [record.subject, record.until]));
    for (const subject of banned.keys()) if (!next.has(subject)) options.onEvent?.({ event: "ban.ended", subject });
    banned = next;
  };

  const remaining = (subject: string, at: number): number => {
    const until = banned.get(subject);
    if (until === undefined) return 0;
    if (until <= at) {
      banned.delete(subject);
      options.onEvent?.({ event: "ban.ended", subject });
      return 0;
    }
    return Math.ceil((until - at) / 1000);
  };

  const ban = (subject: string, at: number) => {
    // In force at once for this process (the base duration); the store then says how long it
    // really is (repeat offenders get longer) and tells the other instances.
    banned.set(subject, Math.max(banned.get(subject) ?? 0, at + limits.baseBanMs));
    void Promise.resolve(options.attempts.forget(subject)).catch(() => undefined);
    fallback.forget(subject);
    return options.bans.startBan(subject, at, limits.baseBanMs, limits.maxBanMs, limits.memoryMs).then(
      (record) => {
        banned.set(subject, record.until);
        options.onEvent?.({ event: "ban.started", subject, until: record.until, level: record.level });
      },
      (error: unknown) => options.onBanError?.(error),
    );
  };

  // Exactly at the limit: concurrent failures counted by a shared store see 10, 11, 12…; only one of them bans.
  const counted = (subject: string, at: number, count: number) => (count === limits.maxFailures ? ban(subject, at) : undefined);

  const fail = (subject: string, at: number): void | Promise<void> => {
    let count: number | Promise<number>;
    try {
      count = options.attempts.countFailure(subject, at, limits.windowMs);
    } catch (error) {
      count = Promise.reject(error);
    }
    if (typeof count === "number") return counted(subject, at, count);
    return count.then(
      (shared) => {
        if (attemptsDown) {
          attemptsDown = false;
          options.onEvent?.({ event: "attempts.available" });
        }
        return counted(subject, at, shared);
      },
      (error: unknown) => {
        if (!attemptsDown) {
          attemptsDown = true;
          options.onEvent?.({ event: "attempts.unavailable", error });
        }
        return counted(subject, at, fallback.countFailure(subject, at, limits.windowMs));
      },
    );
  };

  return {
    get active() {
      return banned.size > 0;
    },
    retryAfter(address, keyId) {
      if (banned.size === 0 || options.exempt(address)) return 0;
      const at = now();
      return Math.max(remaining(`addr:${address}`, at), keyId === undefined ? 0 : remaining(`key:${keyId}`, at));
    },
    recordFailure(address, keyId) {
      if (options.exempt(address)) return;
      const at = now();
      const byAddress = fail(`addr:${address}`, at);
      const byKey = keyId === undefined ? undefined : fail(`key:${keyId}`, at);
      if (byAddress instanceof Promise || byKey instanceof Promise) return Promise.all([byAddress, byKey]).then(() => undefined);
    },
    reload: async () => load(await options.bans.listBans(now())),
  };
}
