/**
 * The brute-force guard. Failed authentications are counted per client address (IPv6 per /64) and
 * per account they aimed at (the presented key id, the username) in an `AttemptStore` (in memory, or Redis shared by several instances); past
 * the limit the subject is banned for a while, longer each time it comes back soon after a ban.
 * Bans live in the `BanStore` (SQLite or PostgreSQL), so the CLI can list and clear them and every
 * instance sees them; this module keeps an in-memory copy so the per-request check is a Map
 * lookup, and no lookup at all while nobody is banned.
 */
import type { BanRecord, BanStore } from "../store/store.ts";
import type { Clock } from "../core/clock.ts";
import { guardBucketOf } from "../core/addresses.ts";
import { BAN_SUBJECT_KINDS, type GateMetrics } from "../core/gate-metrics.ts";
import { banSubjectKind } from "./refusals.ts";

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

/** Failures remembered per subject; more than any sane limit, so counts stay exact below it. */
const MAX_REMEMBERED = 64;

/**
 * A sliding window: each subject keeps the times of its recent failures, so a burst that straddles
 * a window boundary counts in full (a fixed window let 17 guesses through in 1.5 s).
 */
export function createMemoryAttemptStore(limit = 100_000): MemoryAttemptStore {
  const failures = new Map<string, number[]>();
  return {
    countFailure(subject, now, windowMs) {
      let times = failures.get(subject);
      if (times === undefined) {
        // Bounded: a flood of distinct addresses must not grow memory without end.
        if (failures.size >= limit) failures.delete(failures.keys().next().value!);
        failures.set(subject, (times = []));
      }
      const recent = times.filter((time) => time > now - windowMs);
      recent.push(now);
      if (recent.length > MAX_REMEMBERED) recent.shift();
      failures.set(subject, recent);
      return recent.length;
    },
    forget: (subject) => void failures.delete(subject),
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
  /**
   * Seconds until the ban on this address (its /64 for IPv6) or on `account` (`key:<id>`,
   * `user:<name>`) ends, or 0 when neither is banned.
   */
  retryAfter(address: string, account?: string): number;
  /**
   * Counts a failure (unknown secret, wrong password) against the address and the account, and bans
   * past the limit. With an in-memory attempt store the ban is in force when this returns; with a
   * shared one, when the promise settles.
   */
  recordFailure(address: string, account?: string): void | Promise<void>;
  /** Reloads bans from the store (after `cli bans clear`, or another instance's ban). */
  reload(): Promise<void>;
}

export interface GuardOptions {
  readonly attempts: AttemptStore;
  readonly bans: BanStore;
  readonly limits?: GuardLimits;
  /** Addresses never counted or banned (loopback, the operator's own devices). */
  readonly exempt: (address: string) => boolean;
  readonly now: Clock;
  readonly onEvent?: (event: GuardEvent) => void;
  /** A ban could not be written to the store; it still holds in this process. */
  readonly onBanError?: (error: unknown) => void;
  /** Bans started (counted here) and in force (read at each scrape). */
  readonly metrics?: GateMetrics | undefined;
}

/**
 * The bans this process enforces: a copy of the store's, so the per-request check is a Map
 * lookup. A new ban holds here at once and is then written to the store for the other instances.
 */
class BanList {
  private banned = new Map<string, number>();

  constructor(
    private readonly options: GuardOptions,
    private readonly limits: GuardLimits,
  ) {}

  get size(): number {
    return this.banned.size;
  }

  /** Bans in force at `at` by subject kind, for the scrape (ended ones are dropped lazily, so they are skipped here). */
  countActive(at: number): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(BAN_SUBJECT_KINDS.map((kind) => [kind, 0]));
    for (const [subject, until] of this.banned) if (until > at) counts[banSubjectKind(subject)]! += 1;
    return counts;
  }

  load(records: readonly BanRecord[]): void {
    const next = new Map(records.map((record) => [record.subject, record.until]));
    for (const subject of this.banned.keys()) if (!next.has(subject)) this.options.onEvent?.({ event: "ban.ended", subject });
    this.banned = next;
  }

  /** Seconds until the subject's ban ends, or 0; an ended ban is dropped (and said so) here. */
  remaining(subject: string, at: number): number {
    const until = this.banned.get(subject);
    if (until === undefined) return 0;
    if (until > at) return Math.ceil((until - at) / 1000);
    this.banned.delete(subject);
    this.options.onEvent?.({ event: "ban.ended", subject });
    return 0;
  }

  /** In force at once for the base duration; the store then says how long it really is (repeat offenders get longer). */
  start(subject: string, at: number): Promise<void> {
    const { limits, options } = this;
    this.banned.set(subject, Math.max(this.banned.get(subject) ?? 0, at + limits.baseBanMs));
    options.metrics?.bansStarted[banSubjectKind(subject)].inc();
    return options.bans.startBan(subject, at, limits.baseBanMs, limits.maxBanMs, limits.memoryMs).then(
      (record) => {
        this.banned.set(subject, record.until);
        options.onEvent?.({ event: "ban.started", subject, until: record.until, level: record.level });
      },
      (error: unknown) => options.onBanError?.(error),
    );
  }
}

/**
 * Failure counts: in the configured attempt store, or, while a shared one is unreachable, in this
 * process (N instances then allow up to N times the attempts, never unlimited ones).
 */
class FailureCounter {
  private readonly fallback = createMemoryAttemptStore();
  private sharedDown = false;

  constructor(
    private readonly options: GuardOptions,
    private readonly windowMs: number,
  ) {}

  /**
   * The count now, and, with a shared store, the shared count later. The shared answer arrives after
   * the refusal has been sent, so a pipelined burst would outrun it: this process counts at once too,
   * and that count stands in for the shared one while the shared store is away.
   */
  count(subject: string, at: number): { readonly now: number; readonly later?: Promise<number> } {
    let shared: number | Promise<number>;
    try {
      shared = this.options.attempts.countFailure(subject, at, this.windowMs);
    } catch (error) {
      shared = Promise.reject(error);
    }
    if (typeof shared === "number") return { now: shared };
    const here = this.fallback.countFailure(subject, at, this.windowMs);
    const later = shared.then(
      (count) => (this.markShared(true), count),
      (error: unknown) => (this.markShared(false, error), here),
    );
    return { now: here, later };
  }

  forget(subject: string): void {
    void Promise.resolve(this.options.attempts.forget(subject)).catch(() => undefined);
    this.fallback.forget(subject);
  }

  private markShared(available: boolean, error?: unknown): void {
    if (this.sharedDown !== available) return;
    this.sharedDown = !available;
    this.options.onEvent?.(available ? { event: "attempts.available" } : { event: "attempts.unavailable", error });
  }
}

export function createGuard(options: GuardOptions): Guard {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const { now } = options;
  const bans = new BanList(options, limits);
  const counter = new FailureCounter(options, limits.windowMs);
  const { metrics } = options;
  metrics?.sample(() => {
    const active = bans.countActive(now());
    for (const kind of BAN_SUBJECT_KINDS) metrics.bansActive[kind].set(active[kind]!);
  });

  // Exactly at the limit, and not banned yet: concurrent failures counted by a shared store see
  // 10, 11, 12…, and the local count may get there first; only one of them bans.
  const judgeCount = (subject: string, at: number, count: number) => {
    // At or past the limit with no ban in force: a subject still guessing when its ban ends is banned again.
    if (count < limits.maxFailures || bans.remaining(subject, at) > 0) return undefined;
    counter.forget(subject);
    return bans.start(subject, at);
  };
  const fail = (subject: string, at: number): void | Promise<void> => {
    const { now: counted, later } = counter.count(subject, at);
    const early = judgeCount(subject, at, counted);
    if (later === undefined) return early;
    return Promise.all([early, later.then((shared) => judgeCount(subject, at, shared))]).then(() => undefined);
  };

  return {
    get active() {
      return bans.size > 0;
    },
    retryAfter(address, account) {
      if (bans.size === 0 || options.exempt(address)) return 0;
      const at = now();
      return Math.max(bans.remaining(`addr:${guardBucketOf(address)}`, at), account === undefined ? 0 : bans.remaining(account, at));
    },
    recordFailure(address, account) {
      if (options.exempt(address)) return;
      const at = now();
      const byAddress = fail(`addr:${guardBucketOf(address)}`, at);
      const byAccount = account === undefined ? undefined : fail(account, at);
      if (byAddress instanceof Promise || byAccount instanceof Promise) return Promise.all([byAddress, byAccount]).then(() => undefined);
    },
    reload: async () => bans.load(await options.bans.listBans(now())),
  };
}
