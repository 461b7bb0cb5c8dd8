/**
 * Keeps the keyring's view current: polls the store's change marker (and listens, where the store
 * can push), reloads when another process committed, flushes usage on a timer, and tells the owner
 * after each reload so open sockets are judged again.
 */
import type { StoreSeries } from "../core/gate-metrics.ts";
import type { KeyStore } from "../store/store.ts";
import type { StoreHealth } from "./store-health.ts";
import type { StoreView } from "./store-view.ts";

/** The shortest gap between two out-of-turn checks caused by an unknown key id or user. */
const MISS_RECHECK_MS = 10;

export interface Poller {
  /** Reloads if the store changed, then runs the change hook; one check at a time. Resolves to whether it reloaded. */
  readonly refresh: () => Promise<boolean>;
  /** The same, sure to see a write this process has just committed. */
  readonly refreshAfterWrite: () => Promise<boolean>;
  /**
   * Whether an unknown key id or user may trigger a check now. It may be something the CLI created
   * a moment ago, and a freshly provisioned device should not wait for the next poll; throttled,
   * because unknown ids are also what a guesser sends.
   */
  readonly allowMissRecheck: () => boolean;
  readonly start: (onChange: () => void, pollMs?: number, flushMs?: number) => Promise<void>;
  readonly stop: () => Promise<void>;
}

export interface PollerOptions {
  readonly store: Pick<KeyStore, "changeMarker" | "watchChanges">;
  readonly view: StoreView;
  readonly health: StoreHealth;
  readonly flushUsage: () => Promise<void>;
  /** Each look timed, failures and reloads counted (absent: METRICS=false). */
  readonly metrics?: StoreSeries | undefined;
}

/** True at most once per MISS_RECHECK_MS. */
function createMissThrottle(): () => boolean {
  let lastMissCheck = 0;
  return () => {
    const at = performance.now();
    if (at - lastMissCheck < MISS_RECHECK_MS) return false;
    lastMissCheck = at;
    return true;
  };
}

/**
 * One look at the store: reloads the view if another process committed. `notify` runs after a
 * reload, and after a failed look once the view is stale, so open sockets are judged again.
 */
async function syncView({ store, view, health, metrics }: PollerOptions, notify: () => void): Promise<boolean> {
  const started = performance.now();
  try {
    const current = await store.changeMarker();
    const changed = current !== view.marker();
    if (changed) await view.reload(current);
    health.confirmSync(started);
    metrics?.poll.observe((performance.now() - started) / 1000);
    if (changed) {
      metrics?.reloads.inc();
      notify();
    }
    return changed;
  } catch (error) {
    metrics?.failures.inc();
    health.reportFailure(error);
    health.judgeFreshness();
    // Past the limit, the change hook lets open sockets see that their principal can no longer be vouched for.
    if (health.isStale()) notify();
    return false;
  }
}

export function createPoller(options: PollerOptions): Poller {
  const { store, health, flushUsage } = options;
  let timers: Array<ReturnType<typeof setInterval>> = [];
  let unwatch: (() => Promise<void>) | undefined;
  let notify: () => void = () => {};
  let inFlight: Promise<boolean> | undefined;

  const refresh = (): Promise<boolean> => {
    // Read `notify` when the look ends: start() or stop() may have replaced it meanwhile.
    inFlight ??= syncView(options, () => notify()).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  /** A look that starts after this call: one already under way may have read the store before a write the caller just made. */
  const refreshAfterWrite = async (): Promise<boolean> => {
    while (inFlight !== undefined) await inFlight;
    return refresh();
  };
  const stop = async () => {
    for (const timer of timers) clearInterval(timer);
    timers = [];
    notify = () => {};
    const stopWatching = unwatch;
    unwatch = undefined;
    await stopWatching?.().catch(() => undefined);
  };
  return {
    refresh,
    refreshAfterWrite,
    allowMissRecheck: createMissThrottle(),
    async start(onChange, pollMs = 100, flushMs = 5_000) {
      await stop();
      notify = onChange;
      const poll = setInterval(() => {
        health.judgeFreshness();
        void refresh();
      }, pollMs);
      const flush = setInterval(() => void flushUsage(), flushMs);
      timers = [poll, flush];
      for (const timer of timers) timer.unref();
      try {
        unwatch = await store.watchChanges(() => void refresh());
      } catch (error) {
        // Polling still finds every change; pushing only makes it sooner.
        health.reportFailure(error);
      }
    },
    stop,
  };
}
