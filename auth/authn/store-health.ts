/**
 * Whether the keyring's view can still be trusted. If the store cannot be reached for longer than
 * STALE_AFTER_MS, the view may be missing a revocation made elsewhere: credentials from the store
 * are then refused (503) until it answers again.
 */

/** How long the in-memory view may go unconfirmed by the store before it is no longer trusted. */
export const STALE_AFTER_MS = 5_000;

export interface StoreHealth {
  /** Whether the view is past trusting; a boolean read, so the hot path does no arithmetic. */
  readonly isStale: () => boolean;
  /** Milliseconds since the store last answered a check (the age of the view), for the scrape. */
  readonly sinceSyncMs: () => number;
  /** The store answered a check that started at `startedAt` (performance.now()). */
  readonly confirmSync: (startedAt: number) => void;
  /** The store did not answer; reported to the owner on the transition only. */
  readonly reportFailure: (error: unknown) => void;
  /**
   * Re-judged on every poll tick (not per request), including while a check hangs on a half-open
   * connection, since the tick does not wait for it.
   */
  readonly judgeFreshness: () => void;
}

/** `onStoreHealth` hears `error` when the store stops answering and `undefined` when it answers again. */
export function createStoreHealth(onStoreHealth: ((error: unknown) => void) | undefined): StoreHealth {
  // performance.now(), not the wall clock: tests move that, and staleness must not follow it.
  let syncedAt = performance.now();
  let healthy = true;
  let distrusted = false;

  const setHealth = (error: unknown) => {
    if ((error === undefined) === healthy) return;
    healthy = error === undefined;
    onStoreHealth?.(error);
  };
  return {
    isStale: () => distrusted,
    sinceSyncMs: () => performance.now() - syncedAt,
    confirmSync(startedAt) {
      syncedAt = startedAt;
      distrusted = false;
      setHealth(undefined);
    },
    reportFailure: setHealth,
    judgeFreshness() {
      distrusted = performance.now() - syncedAt > STALE_AFTER_MS;
    },
  };
}
