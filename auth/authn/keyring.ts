/**
 * The server's view of the key store: every key in memory, reloaded when another process (the
 * CLI, another instance) commits, so a revocation takes effect without a restart. If the store
 * cannot be reached for longer than STALE_AFTER_MS, the view may be missing a revocation made
 * elsewhere: authentication then fails closed (503) until the store answers again. It authenticates presented
 * tokens (API keys and the bootstrap token), re-checks principals of open sockets, and batches
 * last-used updates so a request never waits on a disk write.
 *
 * This file assembles the parts: the view of the records (store-view.ts), its freshness
 * (store-health.ts), the poller that keeps it current (poller.ts), the usage batch, the JWT cache
 * and the authenticator that reads them all on the hot path.
 */
import type { Clock } from "../core/clock.ts";
import { GateError } from "../core/errors.ts";
import type { GateMetrics, VerificationSeries } from "../core/gate-metrics.ts";
import type { Principal } from "../core/principal.ts";
import type { KeyRecord, KeyStore, RefreshStore, SessionStore, UserStore } from "../store/store.ts";
import { createSessionActivity } from "./session-activity.ts";
import { createJwtCache } from "./jwt-cache.ts";
import { createPoller } from "./poller.ts";
import { createRevalidator } from "./revalidation.ts";
import { createStoreHealth } from "./store-health.ts";
import { openStoreView, type KeyEvent, type StoreView } from "./store-view.ts";
import { createTokenAuthenticator, type Authenticate, type JwtVerification } from "./token-authenticator.ts";
import { createUsageBatch } from "./usage-batch.ts";

export { STALE_AFTER_MS } from "./store-health.ts";
export { subjectOf } from "./principals.ts";
export type { JwtVerification } from "./token-authenticator.ts";

export interface KeyringOptions {
  readonly store: KeyStore & UserStore & RefreshStore & SessionStore;
  /** A browser session unused this long ends (SESSION_IDLE_TIMEOUT; default 7 days). */
  readonly sessionIdleMs?: number;
  /** Accept JWT access tokens signed by these keys; without it JWTs are unknown tokens. */
  readonly jwt?: JwtVerification | undefined;
  readonly bootstrapDigest: Uint8Array;
  /** Whether the bootstrap token is shaped like a JWT (`looksLikeJwt`); absent: assumed so. */
  readonly bootstrapLooksLikeJwt?: boolean;
  readonly now: Clock;
  /** Called when a usage flush fails (the batch is kept and retried). */
  readonly onFlushError?: (error: unknown) => void;
  /** Key lifecycle changes seen on reload (made by the CLI or any other process). */
  readonly onKeyEvent?: (event: KeyEvent, key: KeyRecord) => void;
  /** The store stopped answering (`error`) or answers again (`undefined`); called on each transition. */
  readonly onStoreHealth?: (error: unknown) => void;
  /** Token checks counted (timed when they wait), each look at the store timed; the view's age and staleness read at each scrape. */
  readonly metrics?: GateMetrics | undefined;
}

export interface Keyring {
  authenticate(token: string): Principal | GateError | Promise<Principal | GateError>;
  /** `authenticate`, not counted: a look at a token that a counted check then judges. */
  probe(token: string): Principal | GateError | Promise<Principal | GateError>;
  /** Notes a successful use; `remote` is only called once per key per flush window. */
  recordUse(principal: Principal, remote: () => string): void;
  /** Why an already-authenticated principal is no longer valid (for an open socket: for its `scope`), or `undefined` if it still is. */
  revalidate(principal: Principal, scope?: string): GateError | undefined;
  /** When the principal's key was revoked or its user disabled, as stored (Clock ms), or `undefined` when it was not or nothing says. */
  revokedAt(principal: Principal): number | undefined;
  /** Reloads if another process changed the store (and runs the change hook); resolves to whether it did. */
  refresh(): Promise<boolean>;
  /** The same, sure to see a write this process has just committed (a sign-out, an admin's change). */
  refreshAfterWrite(): Promise<boolean>;
  flushUsage(): Promise<void>;
  /**
   * Polls for changes (and listens, where the store can push them) and flushes usage on timers;
   * `onChange` runs after each reload.
   */
  start(onChange: () => void, pollMs?: number, flushMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Every token check counted by outcome, and timed when it waits: the keyring's authenticator is the
 * one every presented token passes through (HTTP, sockets, in-band, the proxy, forward auth, the
 * token endpoint). One answered from memory is not timed: two clock reads would cost a good part of
 * the check itself, on every request (gate-metrics.ts). The clock starts when the check goes
 * asynchronous; what ran before that is the same in-memory work.
 */
function countVerifications(authenticate: Authenticate, series: VerificationSeries): Authenticate {
  const outcomeOf = (verdict: Principal | GateError) =>
    !(verdict instanceof GateError) ? series.valid : verdict.kind === "temporarily_unavailable" ? series.unavailable : series.invalid;
  return (token) => {
    const verdict = authenticate(token);
    if (!(verdict instanceof Promise)) {
      outcomeOf(verdict).checks.inc();
      return verdict;
    }
    const started = performance.now();
    return verdict.then((settled) => {
      const outcome = outcomeOf(settled);
      outcome.checks.inc();
      outcome.duration.observe((performance.now() - started) / 1000);
      return settled;
    });
  };
}

/** The stored time a principal stopped being valid: its key's revocation, its user's disabling. */
function findRevocationTime(view: StoreView, principal: Principal): number | undefined {
  if (principal.kind === "key") return view.findKey(principal.id)?.record.revokedAt ?? undefined;
  if (principal.kind === "user") return view.userDisabledAt(principal.name) ?? undefined;
  return undefined;
}

export async function createKeyring(options: KeyringOptions): Promise<Keyring> {
  const { store, now } = options;
  const view = await openStoreView(store, now, options.onKeyEvent);
  const health = createStoreHealth(options.onStoreHealth);
  const usage = createUsageBatch(store, now, options.onFlushError);
  const activity = createSessionActivity(store, now);
  const flushUsage = async () => {
    await usage.flushUsage();
    await activity.flush().catch((error: unknown) => options.onFlushError?.(error));
  };
  const { metrics } = options;
  const poller = createPoller({ store, view, health, flushUsage, metrics: metrics?.store });
  metrics?.sample(() => {
    metrics.store.syncAge.set(health.sinceSyncMs() / 1000);
    metrics.store.stale.set(health.isStale() ? 1 : 0);
  });
  const revalidate = createRevalidator(view, health, now);
  const verify = createTokenAuthenticator({
    view,
    health,
    poller,
    jwtCache: createJwtCache(revalidate),
    revalidate,
    jwt: options.jwt,
    bootstrapDigest: options.bootstrapDigest,
    bootstrapLooksLikeJwt: options.bootstrapLooksLikeJwt,
    now,
    sessions: { activity, idleMs: options.sessionIdleMs ?? 7 * 86_400_000, store },
  });
  return {
    authenticate: metrics === undefined ? verify : countVerifications(verify, metrics.tokenChecks),
    probe: verify,
    recordUse: usage.recordUse,
    revalidate,
    revokedAt: (principal) => findRevocationTime(view, principal),
    refresh: poller.refresh,
    refreshAfterWrite: poller.refreshAfterWrite,
    flushUsage,
    start: poller.start,
    stop: poller.stop,
  };
}
