/**
 * `/admin/api/users…`: list, add, disable, enable, set roles, reset a password and require a
 * passkey, through the same operations as `bun run cli users …` (users.ts). A password is taken
 * in a body and never given back: no answer, audit line or validation message holds it. The last
 * enabled admin stays one (409), and an admin disables their own account only with `confirm: true`.
 */
import { z } from "zod";
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import { USERNAME, type RoleScopes } from "../authn/users.ts";
import type { Store, UserRecord } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { AdminProblem } from "./keys.ts";
import {
  addUser,
  judgeNewPassword,
  judgeRoles,
  listUserViews,
  noSuchUser,
  resetPassword,
  setPasskeyRequirement,
  setUserDisabled,
  setUserRoles,
  viewUser,
  type UserChange,
  type UserView as UserViewOf,
} from "./users.ts";

const time = z.string().nullable().describe("ISO 8601, or null for never");

export const UserView = z
  .object({
    username: z.string(),
    roles: z.array(z.string()),
    scopes: z.array(z.string()).describe("what the roles grant, by ROLE_SCOPES"),
    created_at: time,
    disabled: z.boolean(),
    disabled_at: time,
    passkey_required: z.boolean().describe("signs in with a passkey only; the password opens nothing"),
    passkeys: z.number().int().describe("how many passkeys the user has added"),
  })
  .describe("A user; the password is never stored, its hash never shown");

/** A username as the CLI takes it; the passkey and refresh-family endpoints take it too. */
export const username = z
  .string()
  .regex(USERNAME, "must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");

/** A new password: checked as the CLI checks it, and never echoed in the message. */
const password = z
  .string()
  .describe("the new password, at least 10 characters; never shown again")
  .transform((typed, context) => {
    const judged = judgeNewPassword(typed);
    if (typeof judged === "string") return judged;
    context.addIssue({ code: "custom", message: judged.message });
    return z.NEVER;
  });

/** Roles ROLE_SCOPES defines, at least one; repeats count once. Judged as the CLI judges them (judgeRoles). */
function rolesOf(roleScopes: RoleScopes) {
  const none = judgeRoles([], roleScopes) as AdminProblem;
  return z
    .array(z.string())
    .min(1, none.message)
    .describe(`roles as ROLE_SCOPES defines them: ${[...roleScopes.keys()].join(", ")}`)
    .superRefine((roles, context) => {
      // An empty list is min(1)'s to report, once.
      const judged = roles.length === 0 ? roles : judgeRoles(roles, roleScopes);
      if (judged instanceof AdminProblem) context.addIssue({ code: "custom", message: judged.message });
    });
}

export interface UserEndpointOptions {
  readonly store: Store;
  /** Role → scopes, as configured (ROLE_SCOPES): what a role grants, and who is an admin. */
  readonly roleScopes: RoleScopes;
}

const changed = z.object({ user: UserView, sessions_ended: z.number().int().describe("browser sessions this ended") });

const isSelf = (principal: Principal, name: string) => principal.kind === "user" && principal.name === name;

const SELF_DISABLE = new GateError(
  "conflict",
  "This is your own account: disabling it signs you out here too. Send confirm: true to disable it anyway",
);

/** An operation's user as an answer: read again, with their passkeys counted. */
async function answerUser(options: UserEndpointOptions, result: UserRecord | AdminProblem): Promise<{ user: UserViewOf } | AdminProblem> {
  if (result instanceof AdminProblem) return result;
  const user = await viewUser(options.store, options.roleScopes, result.username);
  return user === undefined ? noSuchUser(result.username) : { user };
}

async function answerChange(options: UserEndpointOptions, result: UserChange | AdminProblem) {
  if (result instanceof AdminProblem) return result;
  const answered = await answerUser(options, result.user);
  return answered instanceof AdminProblem ? answered : { ...answered, sessions_ended: result.sessionsEnded };
}

function listAndAdd(options: UserEndpointOptions) {
  const { store, roleScopes } = options;
  const list = endpoint({
    method: "GET",
    path: "/users",
    summary: "Every user with their roles, the scopes those grant, whether disabled, and their passkeys",
    answer: z.object({ users: z.array(UserView) }),
    status: 200,
    run: async () => ({ users: await listUserViews(store, roleScopes) }),
  });
  const add = endpoint({
    method: "POST",
    path: "/users",
    summary: "Add a user who signs in with a password (hashed with argon2id, never shown again)",
    body: z.object({ username, roles: rolesOf(roleScopes), password }),
    answer: z.object({ user: UserView }),
    status: 201,
    audit: { action: "users.add", detail: (output) => ({ username: output.user.username, roles: output.user.roles.join(" ") }) },
    run: async ({ input, now }) => answerUser(options, await addUser(store, roleScopes, input, now)),
  });
  return [list, add];
}

function disableAndEnable(options: UserEndpointOptions) {
  const { store, roleScopes } = options;
  const disable = endpoint({
    method: "POST",
    path: "/users/disable",
    summary: "Stop a user's sign-in: their sessions end and their sockets close with 4403 within a second",
    body: z.object({ username, confirm: z.boolean().optional().describe("needed to disable your own account") }),
    answer: z.object({ user: UserView }),
    status: 200,
    audit: { action: "users.disable", detail: (output) => ({ username: output.user.username }) },
    async run({ input, principal, now }) {
      if (isSelf(principal, input.username) && input.confirm !== true) return SELF_DISABLE;
      return answerUser(options, await setUserDisabled(store, roleScopes, input.username, true, now));
    },
  });
  const enable = endpoint({
    method: "POST",
    path: "/users/enable",
    summary: "Allow a disabled user to sign in again (their ended sessions stay ended)",
    body: z.object({ username }),
    answer: z.object({ user: UserView }),
    status: 200,
    audit: { action: "users.enable", detail: (output) => ({ username: output.user.username }) },
    run: async ({ input, now }) => answerUser(options, await setUserDisabled(store, roleScopes, input.username, false, now)),
  });
  return [disable, enable];
}

function changes(options: UserEndpointOptions) {
  const { store, roleScopes } = options;
  const answer = (result: UserChange | AdminProblem) => answerChange(options, result);
  const roles = endpoint({
    method: "POST",
    path: "/users/roles",
    summary: "Replace a user's roles; if they now grant less, the user's sessions and refresh tokens end",
    body: z.object({ username, roles: rolesOf(roleScopes) }),
    answer: changed,
    status: 200,
    audit: {
      action: "users.roles",
      detail: (output) => ({ username: output.user.username, roles: output.user.roles.join(" "), sessions_ended: output.sessions_ended }),
    },
    run: async ({ input, now }) => answer(await setUserRoles(store, roleScopes, input, now)),
  });
  const passwd = endpoint({
    method: "POST",
    path: "/users/password",
    summary: "Set a new password; the user's browser sessions end unless keep_sessions",
    body: z.object({ username, password, keep_sessions: z.boolean().optional().describe("leave the user signed in where they are") }),
    answer: changed,
    status: 200,
    audit: { action: "users.password", detail: (output) => ({ username: output.user.username, sessions_ended: output.sessions_ended }) },
    run: async ({ input, now }) =>
      answer(
        await resetPassword(store, { username: input.username, password: input.password, keepSessions: input.keep_sessions === true }, now),
      ),
  });
  const passkey = endpoint({
    method: "POST",
    path: "/users/require-passkey",
    summary: "Make a user sign in with a passkey only (they need one first), or allow the password again",
    body: z.object({ username, required: z.boolean().describe("true: a passkey only; false: the password signs in again") }),
    answer: changed,
    status: 200,
    audit: {
      action: "users.require-passkey",
      detail: (output) => ({
        username: output.user.username,
        required: output.user.passkey_required,
        sessions_ended: output.sessions_ended,
      }),
    },
    run: async ({ input, now }) => answer(await setPasskeyRequirement(store, input.username, input.required, now)),
  });
  return [roles, passwd, passkey];
}

/** Every `/admin/api/users…` endpoint, in the order the OpenAPI document lists them. */
export function createUserEndpoints(options: UserEndpointOptions): AdminEndpoint[] {
  return [...listAndAdd(options), ...disableAndEnable(options), ...changes(options)] as AdminEndpoint[];
}
