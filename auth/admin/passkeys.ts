/**
 * What an administrator can do to users' passkeys, once, for both faces: the CLI (`users passkeys
 * …`) and the admin API (`/admin/api/users/passkeys…`). A user adds passkeys on the console page
 * (signed in); here they are listed and removed (a lost phone). Views hold a passkey's id, name and
 * times, never its public key or signature counter.
 *
 * One rule with the user's own removal (POST /auth/passkeys/remove): a user who must sign in with a
 * passkey keeps their last one, or they could no longer sign in to the browser at all. The store
 * holds the rule (removePasskeyUnlessLastRequired), judged in the removal's own transaction.
 */
import { echoTyped } from "../core/redact.ts";
import { isoOrNull } from "../core/times.ts";
import type { PasskeyRecord, PasskeyStore, UserRecord, UserStore } from "../store/store.ts";
import { AdminProblem } from "./keys.ts";
import { noSuchUser } from "./users.ts";

/** A credential id as lists show it: base64url, as WebAuthn gives it. */
export const PASSKEY_ID = /^[A-Za-z0-9_-]{1,1400}$/;

type UserPasskeyStore = Pick<PasskeyStore, "listPasskeys" | "removePasskeyUnlessLastRequired"> & Pick<UserStore, "getUser">;

/** A passkey as lists and answers show it: never the public key or the counter. */
export function describePasskey(passkey: PasskeyRecord) {
  return {
    id: passkey.id,
    username: passkey.username,
    name: passkey.name,
    created_at: isoOrNull(passkey.createdAt),
    last_used_at: isoOrNull(passkey.lastUsedAt),
  };
}

/** Every user's passkeys, by username then age. */
export function listAllPasskeys(store: Pick<PasskeyStore, "listPasskeys">): Promise<PasskeyRecord[]> {
  return store.listPasskeys();
}

export interface UserPasskeys {
  readonly user: UserRecord;
  readonly passkeys: readonly PasskeyRecord[];
}

/** One user's passkeys, oldest first; an unknown user is "not found". */
export async function listUserPasskeys(
  store: Pick<UserPasskeyStore, "getUser" | "listPasskeys">,
  username: string,
): Promise<UserPasskeys | AdminProblem> {
  const [user, passkeys] = await Promise.all([store.getUser(username), store.listPasskeys(username)]);
  return user === undefined ? noSuchUser(username) : { user, passkeys };
}

export interface PasskeyRemoval {
  readonly removed: PasskeyRecord;
  /** How many passkeys the user has left. */
  readonly remaining: number;
}

const lastRequired = (username: string) =>
  new AdminProblem(
    "conflict",
    `${username} must sign in with a passkey and this is their last one: removing it would leave them no way to sign in. ` +
      "Allow the password again first (require-passkey off), or have them add another passkey",
  );

const noSuchPasskey = (username: string, id: string) => new AdminProblem("not_found", `${username} has no passkey ${echoTyped(id)}`);

/**
 * Removes one of a user's passkeys, e.g. when the device that held it is lost. It no longer signs
 * in; browser sessions already open stay until they end or are revoked. The store judges the
 * last-passkey rule in the removal's own transaction; the listing here only names what is removed.
 */
export async function removeUserPasskey(store: UserPasskeyStore, username: string, id: string): Promise<PasskeyRemoval | AdminProblem> {
  const listed = await listUserPasskeys(store, username);
  if (listed instanceof AdminProblem) return listed;
  const removed = listed.passkeys.find((passkey) => passkey.id === id);
  if (removed === undefined) return noSuchPasskey(username, id);
  const outcome = await store.removePasskeyUnlessLastRequired(id, username);
  if (outcome === "last_required") return lastRequired(username);
  // Missing now though listed above: a removal made meanwhile got there first.
  if (outcome === "missing") return noSuchPasskey(username, id);
  // Counted after the removal, not from the listing: a concurrent change may have moved it.
  return { removed, remaining: (await store.listPasskeys(username)).length };
}
