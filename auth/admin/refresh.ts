/**
 * What can be done to refresh-token families, once, for both faces: the CLI (`refresh …`) and the
 * admin API (`/admin/api/refresh-families…`). A family is one password sign-in at the token
 * endpoint and every rotation of its refresh token. Revoking it ends its refresh token and, since
 * the servers' keyring reads the revoked families at every look at the store, every access token
 * minted in it (their `sid`) and the sockets opened with them, as POST /auth/revoke does. Tokens
 * and their hashes never leave the store.
 */
import { echoTyped } from "../core/redact.ts";
import { iso, isoOrNull } from "../core/times.ts";
import type { RefreshFamilyRecord, RefreshStore, UserStore } from "../store/store.ts";
import { AdminProblem } from "./keys.ts";
import { noSuchUser } from "./users.ts";

type FamilyStore = Pick<RefreshStore, "listRefreshFamilies" | "revokeFamily" | "revokeFamiliesOf"> & Pick<UserStore, "getUser">;

/** The subject a user's families are filed under. */
const userSubject = (username: string) => `user:${username}`;

/** A family as lists and answers show it: no token, no hash, no roles (the scopes say what it may do). */
export function describeFamily(family: RefreshFamilyRecord) {
  return {
    family_id: family.familyId,
    subject: family.subject,
    client_id: family.clientId,
    scopes: [...family.scopes],
    created_at: isoOrNull(family.createdAt),
    last_rotated_at: isoOrNull(family.lastRotatedAt),
    expires_at: isoOrNull(family.expiresAt),
    revoked: family.revokedAt !== null,
    revoked_at: isoOrNull(family.revokedAt),
  };
}

/** Families not expired at `now` (revoked ones included), of one user when given; an unknown user is "not found". */
export async function listFamilies(
  store: Pick<FamilyStore, "listRefreshFamilies" | "getUser">,
  now: number,
  username?: string,
): Promise<RefreshFamilyRecord[] | AdminProblem> {
  if (username === undefined) return store.listRefreshFamilies(now);
  if ((await store.getUser(username)) === undefined) return noSuchUser(username);
  return store.listRefreshFamilies(now, { subject: userSubject(username) });
}

const noSuchFamily = (familyId: string) => new AdminProblem("not_found", `No refresh-token family ${familyId} (unknown, or expired)`);

/** Revokes one family now. An unknown or expired one is "not found"; one revoked already is a conflict (its earlier end stays). */
export async function revokeFamily(
  store: Pick<FamilyStore, "listRefreshFamilies" | "revokeFamily">,
  familyId: string,
  now: number,
): Promise<RefreshFamilyRecord | AdminProblem> {
  const [before] = await store.listRefreshFamilies(now, { familyId });
  if (before === undefined) return noSuchFamily(familyId);
  if (before.revokedAt !== null) {
    return new AdminProblem("conflict", `Refresh-token family ${familyId} was already revoked at ${iso(before.revokedAt)}`);
  }
  await store.revokeFamily(familyId, now);
  const [after] = await store.listRefreshFamilies(now, { familyId });
  return after ?? noSuchFamily(familyId);
}

export interface UserFamiliesRevocation {
  readonly username: string;
  /** How many families were live and are now revoked. */
  readonly revoked: number;
}

/** Revokes every live family of a user; none live is "not found", so a typo in the name does not pass for success. */
export async function revokeFamiliesOfUser(
  store: FamilyStore,
  username: string,
  now: number,
): Promise<UserFamiliesRevocation | AdminProblem> {
  if ((await store.getUser(username)) === undefined) return noSuchUser(username);
  const subject = userSubject(username);
  const live = (await store.listRefreshFamilies(now, { subject })).filter((family) => family.revokedAt === null);
  if (live.length === 0) return new AdminProblem("not_found", `${echoTyped(username)} has no live refresh-token family`);
  await store.revokeFamiliesOf(subject, now);
  return { username, revoked: live.length };
}
