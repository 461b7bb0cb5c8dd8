/**
 * What can be done to browser sessions, once, for both faces: the CLI (`sessions …`) and the admin
 * API (`/admin/api/sessions…`). Like keys.ts, each operation takes values its caller has already
 * read and checked, and answers the result or an `AdminProblem`.
 */
import { USERNAME } from "../authn/users.ts";
import { echoTyped } from "../core/redact.ts";
import { isoOrNull } from "../core/times.ts";
import { ID_LENGTH } from "../secrets/keys.ts";
import { SESSION_ID_LENGTH } from "../secrets/sessions.ts";
import type { SessionRecord, SessionStore } from "../store/store.ts";
import { AdminProblem } from "./keys.ts";

/** A session id as lists show it (the public half of the cookie, never its secret). */
export const SESSION_ID = new RegExp(`^[0-9a-f]{${SESSION_ID_LENGTH}}$`);
const KEY_ID = new RegExp(`^[0-9a-f]{${ID_LENGTH}}$`);

/** Whether `text` names someone sessions are filed under: `user:<name>` or `key:<id>`. */
export function isSessionSubject(text: string): boolean {
  if (text.startsWith("user:")) return USERNAME.test(text.slice(5));
  if (text.startsWith("key:")) return KEY_ID.test(text.slice(4));
  return false;
}

/** A subject the caller typed, as a message repeats it: a `user:` name as long as a secret is not (an API key pasted as one). */
export function typedSubject(subject: string): string {
  return subject.startsWith("user:") ? `user:${echoTyped(subject.slice(5))}` : subject;
}

/** A session as lists and answers show it: the stored secret's digest stays out, and so do the roles (the scopes say what it may do). */
export function describeSession(session: SessionRecord) {
  return {
    id: session.id,
    subject: session.subject,
    method: session.method,
    scopes: [...session.scopes],
    created_at: isoOrNull(session.createdAt),
    last_seen_at: isoOrNull(session.lastSeenAt),
    expires_at: isoOrNull(session.expiresAt),
    created_from: session.createdAddr,
  };
}

/** Sessions not ended at `now` (idle ones included, as the store keeps them), of one subject when given. */
export async function listOpenSessions(store: Pick<SessionStore, "listSessions">, now: number, subject?: string): Promise<SessionRecord[]> {
  const open = await store.listSessions(now);
  return subject === undefined ? open : open.filter((session) => session.subject === subject);
}

/** Ends one open session. One that ended already (or never was) is "not found": there is nothing open to end. */
export async function revokeSession(
  store: Pick<SessionStore, "getSession" | "revokeSession">,
  id: string,
  now: number,
): Promise<SessionRecord | AdminProblem> {
  const before = await store.getSession(id);
  const none = new AdminProblem("not_found", `No open session ${id}`);
  if (before === undefined || before.revokedAt !== null || before.expiresAt <= now) return none;
  return (await store.revokeSession(id, now)) ?? none;
}

export interface SubjectRevocation {
  readonly subject: string;
  /** How many sessions were open and are now ended. */
  readonly ended: number;
}

/** Ends every open session of a subject; none open is "not found", so a typo in the name does not pass for success. */
export async function revokeSessionsOf(
  store: Pick<SessionStore, "revokeSessionsOf">,
  subject: string,
  now: number,
): Promise<SubjectRevocation | AdminProblem> {
  const ended = await store.revokeSessionsOf(subject, now);
  return ended === 0 ? new AdminProblem("not_found", `No open session of ${typedSubject(subject)}`) : { subject, ended };
}
