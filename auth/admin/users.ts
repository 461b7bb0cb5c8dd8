/**
 * What can be done to users, once, for both faces: the CLI (`users …`) and the admin API
 * (`/admin/api/users…`). Each operation takes values already read from its caller's input (a
 * password typed at a prompt or sent in a body) and answers the result or an `AdminProblem`.
 * A password goes in, is hashed, and never comes out: no result, message or audit line holds it.
 */
import { isoOrNull } from "../core/times.ts";
import { checkPassword, hashPassword, preparePassword } from "../secrets/passwords.ts";
import { scopesForRoles, type RoleScopes } from "../authn/users.ts";
import type { Store, UserRecord, UsersRule } from "../store/store.ts";
import { ADMIN_SCOPE } from "./endpoints.ts";
import { echoTyped } from "../core/redact.ts";
import { AdminProblem } from "./keys.ts";

/** A user as lists and answers show it: never the password's hash. */
export function describeUser(user: UserRecord, roleScopes: RoleScopes, passkeys: number) {
  return {
    username: user.username,
    roles: [...user.roles],
    scopes: scopesForRoles(user.roles, roleScopes),
    created_at: isoOrNull(user.createdAt),
    disabled: user.disabledAt !== null,
    disabled_at: isoOrNull(user.disabledAt),
    passkey_required: user.passkeyRequired,
    passkeys,
  };
}

export type UserView = ReturnType<typeof describeUser>;

/** Every user with how many passkeys each has added, read in two statements whatever the count. */
export async function listUserViews(store: Pick<Store, "listUsers" | "listPasskeys">, roleScopes: RoleScopes): Promise<UserView[]> {
  const [users, passkeys] = await Promise.all([store.listUsers(), store.listPasskeys()]);
  const counts = new Map<string, number>();
  for (const passkey of passkeys) counts.set(passkey.username, (counts.get(passkey.username) ?? 0) + 1);
  return users.map((user) => describeUser(user, roleScopes, counts.get(user.username) ?? 0));
}

/** One user as answers show it, read again after a change; `undefined` if it is gone meanwhile. */
export async function viewUser(
  store: Pick<Store, "getUser" | "listPasskeys">,
  roleScopes: RoleScopes,
  username: string,
): Promise<UserView | undefined> {
  const [user, passkeys] = await Promise.all([store.getUser(username), store.listPasskeys(username)]);
  return user === undefined ? undefined : describeUser(user, roleScopes, passkeys.length);
}

export const noSuchUser = (username: string) => new AdminProblem("not_found", `No user named ${echoTyped(username)}`);

/** The roles as given, repeats once, each one ROLE_SCOPES defines; or why not. */
export function judgeRoles(given: readonly string[], roleScopes: RoleScopes): string[] | AdminProblem {
  const roles = [...new Set(given)];
  const defined = [...roleScopes.keys()].join(", ");
  if (roles.length === 0) return new AdminProblem("invalid", `give at least one role (${defined})`, "roles");
  const unknown = roles.filter((role) => !roleScopes.has(role)).map(echoTyped);
  if (unknown.length > 0) return new AdminProblem("invalid", `unknown role ${unknown.join(", ")}; ROLE_SCOPES defines ${defined}`, "roles");
  return roles;
}

/** A new password prepared (NFC) and checked, or why not; the message never repeats it. */
export function judgeNewPassword(typed: string): string | AdminProblem {
  const password = preparePassword(typed);
  const problem = checkPassword(password);
  return problem === undefined ? password : new AdminProblem("invalid", problem, "password");
}

/** Whether these roles grant the admin scope (directly or through `*`), as the configured ROLE_SCOPES map them. */
export function grantsAdmin(roles: readonly string[], roleScopes: RoleScopes): boolean {
  const scopes = scopesForRoles(roles, roleScopes);
  return scopes.includes("*") || scopes.includes(ADMIN_SCOPE);
}

const isEnabledAdmin = (user: UserRecord, roleScopes: RoleScopes) => user.disabledAt === null && grantsAdmin(user.roles, roleScopes);

/**
 * An enabled admin remains: a change that takes the last one away is refused. Where no user is an
 * admin (the keys administer the gate), nothing is refused; that is not this rule's to fix.
 */
export function keepsAnAdmin(roleScopes: RoleScopes): UsersRule {
  return (users, changed) => {
    const before = users.find((user) => user.username === changed.username);
    if (before === undefined || !isEnabledAdmin(before, roleScopes) || isEnabledAdmin(changed, roleScopes)) return true;
    return users.some((user) => user.username !== changed.username && isEnabledAdmin(user, roleScopes));
  };
}

const lastAdmin = (username: string, change: string) =>
  new AdminProblem(
    "conflict",
    `${username} is the last enabled admin: ${change} would leave no user who can administer the gate. Make another user an admin first`,
  );

export interface NewUserInput {
  readonly username: string;
  readonly roles: readonly string[];
  /** As typed or sent: prepared and checked here again, so no face can store one the rules refuse. */
  readonly password: string;
}

/** Adds a user with an argon2id hash of the password; a taken username is a conflict. */
export async function addUser(
  store: Pick<Store, "insertUser" | "getUser">,
  roleScopes: RoleScopes,
  input: NewUserInput,
  now: number,
): Promise<UserRecord | AdminProblem> {
  const roles = judgeRoles(input.roles, roleScopes);
  if (roles instanceof AdminProblem) return roles;
  const password = judgeNewPassword(input.password);
  if (password instanceof AdminProblem) return password;
  const passwordHash = await hashPassword(password);
  if (!(await store.insertUser({ username: input.username, passwordHash, roles, createdAt: now }))) {
    return new AdminProblem("conflict", `A user named ${input.username} exists already`);
  }
  return (await store.getUser(input.username)) ?? noSuchUser(input.username);
}

/** Disables (ending the user's sessions, in SQL) or enables a user; the last enabled admin stays. */
export async function setUserDisabled(
  store: Pick<Store, "setDisabled" | "getUser">,
  roleScopes: RoleScopes,
  username: string,
  disabled: boolean,
  now: number,
): Promise<UserRecord | AdminProblem> {
  const outcome = await store.setDisabled(username, disabled ? now : null, now, keepsAnAdmin(roleScopes));
  if (outcome === "refused") return lastAdmin(username, "disabling them");
  if (!outcome) return noSuchUser(username);
  return (await store.getUser(username)) ?? noSuchUser(username);
}

/** What a change that may sign the user out did. */
export interface UserChange {
  readonly user: UserRecord;
  /** Browser sessions it ended. */
  readonly sessionsEnded: number;
}

/**
 * Replaces a user's roles; the last enabled admin keeps an admin role. A session keeps the scopes
 * it opened with, so when the new roles grant less, the user's sessions and refresh tokens end:
 * they sign in again with what they may do now.
 */
export async function setUserRoles(
  store: Pick<Store, "getUser" | "setRoles" | "revokeSessionsOf" | "revokeFamiliesOf">,
  roleScopes: RoleScopes,
  input: { readonly username: string; readonly roles: readonly string[] },
  now: number,
): Promise<UserChange | AdminProblem> {
  const roles = judgeRoles(input.roles, roleScopes);
  if (roles instanceof AdminProblem) return roles;
  const before = await store.getUser(input.username);
  if (before === undefined) return noSuchUser(input.username);
  const outcome = await store.setRoles(input.username, roles, now, keepsAnAdmin(roleScopes));
  if (outcome === "refused") return lastAdmin(input.username, "taking the admin role away");
  if (!outcome) return noSuchUser(input.username);
  const granted = new Set(scopesForRoles(roles, roleScopes));
  const lost = !granted.has("*") && scopesForRoles(before.roles, roleScopes).some((scope) => !granted.has(scope));
  const sessionsEnded = lost ? await endSignIns(store, input.username, now) : 0;
  return { user: (await store.getUser(input.username)) ?? before, sessionsEnded };
}

/** Ends a user's browser sessions and refresh tokens (and so the access tokens of their families). */
async function endSignIns(store: Pick<Store, "revokeSessionsOf" | "revokeFamiliesOf">, username: string, now: number): Promise<number> {
  const ended = await store.revokeSessionsOf(`user:${username}`, now);
  await store.revokeFamiliesOf(`user:${username}`, now);
  return ended;
}

/**
 * Sets a new password. Every browser session of the user ends unless `keepSessions`: a password
 * is changed because the old one may be known.
 */
export async function resetPassword(
  store: Pick<Store, "getUser" | "setPassword" | "revokeSessionsOf" | "revokeFamiliesOf">,
  input: { readonly username: string; readonly password: string; readonly keepSessions: boolean },
  now: number,
): Promise<UserChange | AdminProblem> {
  const password = judgeNewPassword(input.password);
  if (password instanceof AdminProblem) return password;
  if ((await store.getUser(input.username)) === undefined) return noSuchUser(input.username);
  if (!(await store.setPassword(input.username, await hashPassword(password), now))) return noSuchUser(input.username);
  // A password is reset because the old one may be known: what it opened (sessions, refresh tokens) ends too.
  const sessionsEnded = input.keepSessions ? 0 : await store.revokeSessionsOf(`user:${input.username}`, now);
  if (!input.keepSessions) await store.revokeFamiliesOf(`user:${input.username}`, now);
  const user = await store.getUser(input.username);
  return user === undefined ? noSuchUser(input.username) : { user, sessionsEnded };
}

/**
 * Requires a passkey (or stops). Never on for a user without a passkey, who could then not sign in
 * at all. Turned on, the user's sessions and refresh tokens end: from now on only a passkey signs
 * them in (a password opens nothing).
 */
export async function setPasskeyRequirement(
  store: Pick<Store, "getUser" | "listPasskeys" | "setPasskeyRequired" | "revokeSessionsOf" | "revokeFamiliesOf">,
  username: string,
  required: boolean,
  now: number,
): Promise<UserChange | AdminProblem> {
  if ((await store.getUser(username)) === undefined) return noSuchUser(username);
  if (required && (await store.listPasskeys(username)).length === 0) {
    return new AdminProblem(
      "conflict",
      `${username} has no passkey yet and could no longer sign in to the browser. Have them sign in and add one ("Add a passkey" on the console page) first`,
    );
  }
  if (!(await store.setPasskeyRequired(username, required, now))) return noSuchUser(username);
  const sessionsEnded = required ? await endSignIns(store, username, now) : 0;
  const user = await store.getUser(username);
  return user === undefined ? noSuchUser(username) : { user, sessionsEnded };
}
