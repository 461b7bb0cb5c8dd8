/**
 * `/admin/api/sessions…`: list open browser sessions, end one, or end all of a person or key, through
 * the same operations as `bun run cli sessions …` (sessions.ts). Ending a session closes its sockets
 * with 4403 at once. An admin cannot end the session they are using, or all of their own, without
 * `confirm: true`: signing yourself out of the console by a slip is worth one more click.
 */
import { z } from "zod";
import { subjectOf } from "../authn/principals.ts";
import { GateError } from "../core/errors.ts";
import { isoOrNull } from "../core/times.ts";
import type { SessionStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { AdminProblem } from "./keys.ts";
import { describeSession, isSessionSubject, listOpenSessions, revokeSession, revokeSessionsOf, SESSION_ID } from "./sessions.ts";

const time = z.string().nullable().describe("ISO 8601");

export const SessionView = z
  .object({
    id: z.string(),
    subject: z.string().describe("who signed in: user:<name> or key:<id>"),
    method: z.enum(["password", "passkey", "key"]),
    scopes: z.array(z.string()),
    created_at: time,
    last_seen_at: time.describe("the last use written down (at most once a minute); the idle timeout runs from it"),
    expires_at: time.describe("the absolute end, fixed at sign-in"),
    created_from: z.string().describe("the client address that signed in"),
  })
  .describe("A browser sign-in; its cookie is never stored, so never shown here");

/** A session as a list shows it to someone signed in: theirs marked. */
export const ListedSessionView = SessionView.extend({ current: z.boolean().describe("the session this request came with") });

const sessionId = z.string().regex(SESSION_ID, "must be a session id: 16 hex characters, as the list shows");
const subject = z
  .string()
  .refine(isSessionSubject, "must be user:<name> or key:<id> (12 hex characters)")
  .describe("whose sessions: user:<name> or key:<id>");
const confirm = z.boolean().optional();

const SELF_REVOKE = new GateError(
  "conflict",
  "This is the session you are signed in with: ending it signs you out here. Send confirm: true to end it anyway",
);
const SELF_REVOKE_ALL = new GateError(
  "conflict",
  "These are your own sessions: ending them signs you out of every browser, this one too if you use one. Send confirm: true to end them anyway",
);

export interface SessionEndpointOptions {
  readonly store: SessionStore;
}

export function createSessionEndpoints(options: SessionEndpointOptions): AdminEndpoint[] {
  const { store } = options;
  const list = endpoint({
    method: "GET",
    path: "/sessions",
    summary: "Every open browser session: who, how, from where, last use and end; never a cookie",
    answer: z.object({ sessions: z.array(ListedSessionView) }),
    status: 200,
    run: async ({ principal, now }) => ({
      sessions: (await listOpenSessions(store, now)).map((session) => ({
        ...describeSession(session),
        current: session.id === principal.session,
      })),
    }),
  });
  const revoke = endpoint({
    method: "POST",
    path: "/sessions/revoke",
    summary: "End one session now: the browser is signed out and its sockets close with 4403",
    body: z.object({ id: sessionId, confirm: confirm.describe("needed to end the session you are using") }),
    answer: z.object({ session: SessionView, ended_at: time }),
    status: 200,
    audit: { action: "sessions.revoke", detail: (output) => ({ session_id: output.session.id, subject: output.session.subject }) },
    async run({ input, principal, now }) {
      if (principal.session === input.id && input.confirm !== true) return SELF_REVOKE;
      const ended = await revokeSession(store, input.id, now);
      return ended instanceof AdminProblem ? ended : { session: describeSession(ended), ended_at: isoOrNull(ended.revokedAt) };
    },
  });
  const revokeAll = endpoint({
    method: "POST",
    path: "/sessions/revoke-all",
    summary: "End every open session of a user or of a key",
    body: z.object({ subject, confirm: confirm.describe("needed to end your own sessions") }),
    answer: z.object({ subject: z.string(), ended: z.number().int().describe("how many sessions were open and are now ended") }),
    status: 200,
    audit: { action: "sessions.revoke-all", detail: (output) => ({ subject: output.subject, ended: output.ended }) },
    async run({ input, principal, now }) {
      if (subjectOf(principal) === input.subject && input.confirm !== true) return SELF_REVOKE_ALL;
      return revokeSessionsOf(store, input.subject, now);
    },
  });
  return [list, revoke, revokeAll] as AdminEndpoint[];
}
