/**
 * `/auth/account/…`: what anyone signed in may see and do about their own sign-ins, so a person
 * without the admin scope can end a browser session they left open on another device. Declared
 * like the admin endpoints (validation, audit, the keyring refreshed after a change) but mounted
 * under the gate's own prefix with no scope beyond being signed in; never on a service's host.
 */
import { z } from "zod";
import { subjectOf } from "../authn/principals.ts";
import { ANY_SCOPE } from "../core/principal.ts";
import type { SessionStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint, type EndpointMount } from "./endpoints.ts";
import { AdminProblem } from "./keys.ts";
import { ListedSessionView } from "./session-endpoints.ts";
import { describeSession, listOpenSessions, revokeSession, SESSION_ID } from "./sessions.ts";

export const ACCOUNT_MOUNT: EndpointMount = { prefix: "/auth/account", scope: ANY_SCOPE };

export function createAccountEndpoints(store: SessionStore): AdminEndpoint[] {
  const list = endpoint({
    method: "GET",
    path: "/sessions",
    summary: "Your own open browser sessions, this one marked current",
    answer: z.object({ sessions: z.array(ListedSessionView) }),
    status: 200,
    run: async ({ principal, now }) => ({
      sessions: (await listOpenSessions(store, now, subjectOf(principal))).map((session) => ({
        ...describeSession(session),
        current: session.id === principal.session,
      })),
    }),
  });
  const revoke = endpoint({
    method: "POST",
    path: "/sessions/revoke",
    summary: "End one of your own sessions (Sign out ends the current one)",
    body: z.object({ id: z.string().regex(SESSION_ID, "must be a session id: 16 hex characters, as the list shows") }),
    answer: z.object({ ended: z.string() }),
    status: 200,
    audit: { action: "account.sessions.revoke", detail: (output) => ({ session_id: output.ended }) },
    async run({ input, principal, now }) {
      const owned = (await store.getSession(input.id))?.subject === subjectOf(principal);
      // Someone else's session is answered exactly like one that does not exist: ids are not probed this way.
      if (!owned) return new AdminProblem("not_found", `No open session ${input.id} of yours`);
      const ended = await revokeSession(store, input.id, now);
      return ended instanceof AdminProblem ? ended : { ended: ended.id };
    },
  });
  return [list, revoke] as AdminEndpoint[];
}
