/**
 * What can be done to the guard's bans, once, for both faces: the CLI (`bans …`) and the admin API
 * (`/admin/api/bans…`). Bans live in the store every instance shares; a running server reloads its
 * in-memory copy when the store's change marker moves, which clearing one does.
 */
import { isoOrNull } from "../core/times.ts";
import type { BanRecord, BanStore } from "../store/store.ts";
import { AdminProblem } from "./keys.ts";
import { typedSubject } from "./sessions.ts";

/** What a malformed subject is shown, by both faces. */
export const BAN_SUBJECT_EXAMPLES = "addr:192.168.1.50, addr:2001:db8:1:2::/64, key:3f9a0c12be45 or user:alice";

/** A ban as lists and answers show it. */
export function describeBan(ban: BanRecord) {
  return { subject: ban.subject, started_at: isoOrNull(ban.startedAt), until: isoOrNull(ban.until), level: ban.level };
}

export function listActiveBans(store: Pick<BanStore, "listBans">, now: number): Promise<BanRecord[]> {
  return store.listBans(now);
}

export interface ClearedBans {
  /** The one subject cleared, or null for every ban. */
  readonly subject: string | null;
  readonly cleared: number;
}

/**
 * Lifts every active ban, or one subject's (checked by the caller with `isBanSubject`). Clearing
 * everything when nothing is banned is fine; naming a subject that is not banned is "not found", so
 * a mistyped address does not pass for a lifted ban.
 */
export async function clearBans(
  store: Pick<BanStore, "clearBans">,
  subject: string | undefined,
  now: number,
): Promise<ClearedBans | AdminProblem> {
  const cleared = await store.clearBans(now, subject);
  if (subject !== undefined && cleared === 0) return new AdminProblem("not_found", `No active ban for ${typedSubject(subject)}`);
  return { subject: subject ?? null, cleared };
}
