/**
 * When each browser session was last used. Every use is noted in memory (the idle timeout reads
 * it); the store hears of a session's use at most once a minute, in batches with the key usage,
 * so a busy page never writes per request and another instance still sees the session alive.
 */
import type { Clock } from "../core/clock.ts";
import type { SessionRecord, SessionStore } from "../store/store.ts";

/** How stale the stored last use may get: the idle timeout is days, a minute of slack is nothing. */
export const SESSION_TOUCH_INTERVAL_MS = 60_000;

export interface SessionActivity {
  /** Notes a use now. */
  noteUse(id: string): void;
  /** The latest use known here or stored. */
  lastUse(record: SessionRecord): number;
  /** Adopts a later use another instance stored. */
  adopt(id: string, at: number): void;
  /** Writes the uses that are due (at most one per session per interval); once an hour, forgets long-ended sessions. */
  flush(): Promise<void>;
}

/** Ended sessions are kept this long (an old cookie is then told "ended", not "unknown"), then forgotten. */
export const ENDED_SESSION_KEPT_MS = 30 * 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;

export function createSessionActivity(store: Pick<SessionStore, "touchSessions" | "pruneSessions">, now: Clock): SessionActivity {
  const used = new Map<string, number>();
  const written = new Map<string, number>();
  let prunedAt = Number.NEGATIVE_INFINITY;
  return {
    noteUse(id) {
      used.set(id, now());
    },
    lastUse(record) {
      return Math.max(record.lastSeenAt, used.get(record.id) ?? 0, written.get(record.id) ?? 0);
    },
    adopt(id, at) {
      if ((used.get(id) ?? 0) < at) used.set(id, at);
    },
    async flush() {
      const at = now();
      if (at - prunedAt >= PRUNE_EVERY_MS) {
        prunedAt = at;
        await store.pruneSessions(at - ENDED_SESSION_KEPT_MS);
      }
      const due: Array<{ id: string; at: number }> = [];
      for (const [id, usedAt] of used) {
        const last = written.get(id);
        // The first use at once (other instances then see the session alive), later ones a minute apart.
        if (last === undefined || (usedAt > last && at - last >= SESSION_TOUCH_INTERVAL_MS)) due.push({ id, at: usedAt });
        // Quiet for a whole interval and already stored: the stored stamp holds what memory held.
        else if (usedAt === last && at - usedAt >= SESSION_TOUCH_INTERVAL_MS) used.delete(id);
      }
      if (due.length === 0) return;
      await store.touchSessions(due);
      for (const use of due) written.set(use.id, use.at);
      // Sessions that ended long ago leave `written` once it outgrows the live ones.
      if (written.size > 2 * used.size + 1024) for (const id of written.keys()) if (!used.has(id)) written.delete(id);
    },
  };
}
