/**
 * `/admin/api/users/passkeys…`: list users' passkeys and remove one (a lost phone), through the
 * same operations as `bun run cli users passkeys …` (passkeys.ts). A removed passkey no longer
 * signs in; sessions already open stay (sessions/revoke-all ends them). The last passkey of a user
 * who must sign in with one stays (409). No answer holds a public key or a signature counter. A
 * removal is audited as `admin.action` and as `passkey.removed`, the event of a user's own removal.
 */
import { z } from "zod";
import type { AuditLog } from "../guard/audit.ts";
import type { PasskeyStore, UserStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { AdminProblem } from "./keys.ts";
import { describePasskey, listAllPasskeys, listUserPasskeys, PASSKEY_ID, removeUserPasskey } from "./passkeys.ts";
import { username } from "./user-endpoints.ts";

const time = z.string().nullable().describe("ISO 8601, or null for never");

export const PasskeyView = z
  .object({
    id: z.string().describe("the credential id, base64url"),
    username: z.string(),
    name: z.string().describe("the name given when it was added"),
    created_at: time,
    last_used_at: time,
  })
  .describe("A user's passkey; its public key and counter are never shown here");

const passkeyId = z.string().regex(PASSKEY_ID, "must be a passkey id (base64url), as the list shows");

export interface PasskeyEndpointOptions {
  readonly store: PasskeyStore & UserStore;
  readonly audit: AuditLog;
}

export function createPasskeyEndpoints(options: PasskeyEndpointOptions): AdminEndpoint[] {
  const { store, audit } = options;
  const listAll = endpoint({
    method: "GET",
    path: "/users/passkeys",
    summary: "Every user's passkeys: id, name, when added and last used",
    answer: z.object({ passkeys: z.array(PasskeyView) }),
    status: 200,
    run: async () => ({ passkeys: (await listAllPasskeys(store)).map(describePasskey) }),
  });
  const listOfUser = endpoint({
    method: "POST",
    path: "/users/passkeys",
    summary: "One user's passkeys, and whether they must sign in with one (a read: nothing changes)",
    body: z.object({ username }),
    answer: z.object({ username: z.string(), passkey_required: z.boolean(), passkeys: z.array(PasskeyView) }),
    status: 200,
    async run({ input }) {
      const listed = await listUserPasskeys(store, input.username);
      if (listed instanceof AdminProblem) return listed;
      return {
        username: listed.user.username,
        passkey_required: listed.user.passkeyRequired,
        passkeys: listed.passkeys.map(describePasskey),
      };
    },
  });
  const remove = endpoint({
    method: "POST",
    path: "/users/passkeys/remove",
    summary: "Remove one of a user's passkeys; a user who must use passkeys keeps their last one (409)",
    body: z.object({ username, id: passkeyId }),
    answer: z.object({ passkey: PasskeyView, remaining: z.number().int().describe("how many passkeys the user has left") }),
    status: 200,
    audit: {
      action: "users.passkeys.remove",
      detail: (output) => ({ username: output.passkey.username, passkey_id: output.passkey.id, remaining: output.remaining }),
    },
    async run({ input, principal }) {
      const removal = await removeUserPasskey(store, input.username, input.id);
      if (removal instanceof AdminProblem) return removal;
      // The event a user's own removal records too, so one filter (passkey.) shows every removal, whoever made it.
      audit.record("passkey.removed", { user: removal.removed.username, passkey: removal.removed.id, by: principal.id });
      return { passkey: describePasskey(removal.removed), remaining: removal.remaining };
    },
  });
  return [listAll, listOfUser, remove] as AdminEndpoint[];
}
