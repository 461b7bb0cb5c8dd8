/**
 * `/admin/api/refresh-families…`: list the refresh-token families (the password grant's sign-ins
 * and their rotations), revoke one, or revoke all of a user, through the same operations as `bun
 * run cli refresh …` (refresh.ts). Revoking ends the family's refresh token and its access tokens
 * on the very next request (their sockets close with 4403). No answer holds a token or its hash.
 * An admin ends the sign-in whose access token they are using only with `confirm: true`.
 */
import { z } from "zod";
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import { isFamilyId } from "../secrets/refresh.ts";
import type { RefreshStore, UserStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { AdminProblem } from "./keys.ts";
import { describeFamily, listFamilies, revokeFamiliesOfUser, revokeFamily } from "./refresh.ts";
import { username } from "./user-endpoints.ts";

const time = z.string().nullable().describe("ISO 8601, or null for never");

export const FamilyView = z
  .object({
    family_id: z.string().describe("the sign-in's id: the sid claim of its access tokens"),
    subject: z.string().describe("who signed in: user:<name>"),
    client_id: z.string().describe("the client the sign-in named (tokengate when it named none)"),
    scopes: z.array(z.string()).describe("what its newest token may do (a refresh may narrow them)"),
    created_at: time.describe("when the sign-in issued the first refresh token"),
    last_rotated_at: time.describe("when a refresh last issued a new token, or null if none has"),
    expires_at: time.describe("when its newest refresh token expires"),
    revoked: z.boolean(),
    revoked_at: time,
  })
  .describe("A refresh-token family: one sign-in at /auth/token and its rotations; never a token or its hash");

const familyId = z.string().refine(isFamilyId, "must be a family id: a UUID, as the list shows");
const families = z.object({ families: z.array(FamilyView) });

const SELF_REVOKE = new GateError(
  "conflict",
  "This is the sign-in whose access token you are using: revoking it signs you out here. Send confirm: true to revoke it anyway",
);
const SELF_REVOKE_ALL = new GateError(
  "conflict",
  "These are your own sign-ins, the one whose access token you are using among them. Send confirm: true to revoke them anyway",
);

/** Whether the caller acts with an access token of this user's (so a family of theirs may be the one in use). */
const usesOwnAccessToken = (principal: Principal, name: string) =>
  principal.kind === "user" && principal.name === name && principal.tokenId !== null;

export interface RefreshEndpointOptions {
  readonly store: RefreshStore & UserStore;
}

function listEndpoints(options: RefreshEndpointOptions) {
  const { store } = options;
  const list = endpoint({
    method: "GET",
    path: "/refresh-families",
    summary: "Every refresh-token family not expired yet (revoked ones included): who, which client, scopes, started, last refresh, end",
    answer: families,
    status: 200,
    run: async ({ now }) => {
      const listed = await listFamilies(store, now);
      return listed instanceof AdminProblem ? listed : { families: listed.map(describeFamily) };
    },
  });
  const listOfUser = endpoint({
    method: "POST",
    path: "/refresh-families",
    summary: "One user's refresh-token families not expired yet (a read: nothing changes)",
    body: z.object({ username }),
    answer: families,
    status: 200,
    run: async ({ input, now }) => {
      const listed = await listFamilies(store, now, input.username);
      return listed instanceof AdminProblem ? listed : { families: listed.map(describeFamily) };
    },
  });
  return [list, listOfUser];
}

function revokeEndpoints(options: RefreshEndpointOptions) {
  const { store } = options;
  const revoke = endpoint({
    method: "POST",
    path: "/refresh-families/revoke",
    summary: "Revoke one family now: its refresh token and access tokens stop working, their sockets close with 4403",
    body: z.object({ family_id: familyId, confirm: z.boolean().optional().describe("needed to revoke the sign-in you are using") }),
    answer: z.object({ family: FamilyView }),
    status: 200,
    audit: { action: "refresh.revoke", detail: (output) => ({ family_id: output.family.family_id, subject: output.family.subject }) },
    async run({ input, principal, now }) {
      if (principal.session === input.family_id && input.confirm !== true) return SELF_REVOKE;
      const revoked = await revokeFamily(store, input.family_id, now);
      return revoked instanceof AdminProblem ? revoked : { family: describeFamily(revoked) };
    },
  });
  const revokeAll = endpoint({
    method: "POST",
    path: "/refresh-families/revoke-all",
    summary: "Revoke every live family of a user: every app they signed in to must sign in again",
    body: z.object({
      username,
      confirm: z.boolean().optional().describe("needed to revoke your own while using one of their access tokens"),
    }),
    answer: z.object({
      username: z.string(),
      revoked: z.number().int().describe("how many families were live and are now revoked"),
    }),
    status: 200,
    audit: { action: "refresh.revoke-all", detail: (output) => ({ username: output.username, revoked: output.revoked }) },
    async run({ input, principal, now }) {
      if (usesOwnAccessToken(principal, input.username) && input.confirm !== true) return SELF_REVOKE_ALL;
      return revokeFamiliesOfUser(store, input.username, now);
    },
  });
  return [revoke, revokeAll];
}

/** Every `/admin/api/refresh-families…` endpoint, in the order the OpenAPI document lists them. */
export function createRefreshEndpoints(options: RefreshEndpointOptions): AdminEndpoint[] {
  return [...listEndpoints(options), ...revokeEndpoints(options)] as AdminEndpoint[];
}
