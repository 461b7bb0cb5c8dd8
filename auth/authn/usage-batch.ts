/**
 * Last-used bookkeeping for API keys, batched so a request never waits on a disk write: a use is
 * noted in memory and written with the others on the next flush.
 */
import type { Clock } from "../core/clock.ts";
import type { Principal } from "../core/principal.ts";
import type { KeyStore, KeyUsage } from "../store/store.ts";

export interface UsageBatch {
  /** Notes a successful use; `remote` is only called once per key per flush window. */
  readonly recordUse: (principal: Principal, remote: () => string) => void;
  readonly flushUsage: () => Promise<void>;
}

export function createUsageBatch(
  store: Pick<KeyStore, "recordUsage">,
  now: Clock,
  onFlushError: ((error: unknown) => void) | undefined,
): UsageBatch {
  const pending = new Map<string, { id: string; at: number; addr: string }>();
  return {
    recordUse(principal, remote) {
      if (principal.kind !== "key") return;
      const seen = pending.get(principal.id);
      if (seen !== undefined) seen.at = now();
      else pending.set(principal.id, { id: principal.id, at: now(), addr: remote() });
    },
    async flushUsage() {
      if (pending.size === 0) return;
      const batch: KeyUsage[] = [...pending.values()];
      pending.clear();
      try {
        await store.recordUsage(batch);
      } catch (error) {
        // Kept for the next flush, unless a newer use of the same key arrived meanwhile.
        for (const usage of batch) if (!pending.has(usage.id)) pending.set(usage.id, { ...usage });
        onFlushError?.(error);
      }
    },
  };
}
