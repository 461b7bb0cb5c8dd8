/**
 * `users add | list | passwd | disable | enable`: people who sign in with a password. Passwords
 * come from a no-echo prompt or the first line of stdin, never from the command line.
 */
import { parseArgs } from "node:util";
import { preparePassword } from "../secrets/passwords.ts";
import type { UserRecord } from "../store/store.ts";
import { scopesForRoles, USERNAME, type RoleScopes } from "../authn/users.ts";
import { echoTyped } from "../core/redact.ts";
import { AdminProblem } from "../admin/keys.ts";
import { addUser, describeUser, judgeNewPassword, judgeRoles, resetPassword, setUserDisabled } from "../admin/users.ts";
import {
  EXIT,
  iso,
  parseJsonFlag,
  printListing,
  UsageError,
  withStore,
  type CliContext,
  type Command,
  type CommandTable,
  type Handler,
} from "./shared.ts";

function parseUsername(text: string | undefined): string {
  if (text === undefined) throw new UsageError("give the username");
  if (!USERNAME.test(text))
    throw new UsageError("a username is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");
  return text;
}

/** The roles of `users add`, each one ROLE_SCOPES defines; repeats count once. */
function parseRoles(given: readonly string[] | undefined, roleScopes: RoleScopes): string[] {
  if (given === undefined || given.length === 0) throw new UsageError(`give at least one --role (${[...roleScopes.keys()].join(", ")})`);
  const roles = judgeRoles(given, roleScopes);
  if (roles instanceof AdminProblem) throw new UsageError(roles.message);
  return roles;
}

const NO_PASSWORD =
  "no password given: type it at the prompt, or give it as the first line of standard input, e.g. printf '%s\\n' \"$PW\" | bun run cli users …";

/** The new password, prepared and checked; at a terminal it is typed twice, since nobody sees it. */
async function readNewPassword(context: CliContext): Promise<string> {
  const typed = await context.readPassword("New password: ");
  if (typed === undefined || typed === "") throw new UsageError(NO_PASSWORD);
  const password = judgeNewPassword(typed);
  if (password instanceof AdminProblem) throw new UsageError(`the password ${password.message}`);
  if (context.typedPasswords) {
    const again = await context.readPassword("Repeat password: ");
    if (again === undefined || preparePassword(again) !== password) throw new UsageError("the two passwords differ; nothing was changed");
  }
  return password;
}

/** The fields `users list --json` has always shown, as the admin API describes them. */
function userJson(user: UserRecord, roleScopes: RoleScopes) {
  const { username, roles, scopes, created_at, disabled } = describeUser(user, roleScopes, 0);
  return { username, roles, scopes, created_at, disabled };
}

function userRow(user: UserRecord, roleScopes: RoleScopes): string[] {
  return [
    user.username,
    user.roles.join(","),
    scopesForRoles(user.roles, roleScopes).join(","),
    iso(user.createdAt),
    user.disabledAt === null ? "active" : "disabled",
  ];
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** An operation's problem as the CLI says it: the sentence on stderr, and its exit code. */
function reportProblem(io: CliContext["io"], problem: AdminProblem): number {
  if (problem.kind === "invalid") throw new UsageError(problem.message);
  if (problem.kind === "not_found") {
    io.err(`${problem.message}. See: bun run cli users list\n`);
    return EXIT.notFound;
  }
  io.err(`${problem.message}.\n`);
  return EXIT.conflict;
}

/** `users disable` and `users enable`: the same change, one way or the other; the last enabled admin stays. */
function setDisabled(disabled: boolean): Handler {
  return (args, { io, openStore, now, roleScopes }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    const username = parseUsername(positionals[0]);
    return withStore(openStore, async (store) => {
      const outcome = await setUserDisabled(store, roleScopes, username, disabled, now());
      if (outcome instanceof AdminProblem) return reportProblem(io, outcome);
      io.out(`User ${username} ${disabled ? "disabled; their browser sessions have ended" : "enabled"}.\n`);
      return EXIT.ok;
    });
  };
}

const addUserCommand: Command = {
  summary: ["users add NAME --role ROLE [--role ROLE]", "add a user (password from prompt or stdin)"],
  help: `Usage: bun run cli users add NAME --role ROLE [--role ROLE] [--create-store]

Adds a user who can sign in with a password (Basic auth, when BASIC_AUTH=true). The password is
read from a prompt without echo (asked twice), or from the first line of standard input when it is
not a terminal (e.g. printf '%s\\n' "$PW" | bun run cli users add alice --role viewer). Never from the
command line. Roles are those of ROLE_SCOPES (default: admin=*, viewer=data:read,ws:connect).
  --create-store     create the store if it does not exist yet (normally the server's first start does)
`,
  run: async (args, context) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { role: { type: "string", multiple: true }, "create-store": { type: "boolean", default: false } },
    });
    const username = parseUsername(positionals[0]);
    const roles = parseRoles(values.role, context.roleScopes);
    // The store is opened before the prompt: a missing store is reported before anyone types a password.
    const added = await withStore(
      () => context.openStore({ create: values["create-store"] }),
      async (store) => addUser(store, context.roleScopes, { username, roles, password: await readNewPassword(context) }, context.now()),
    );
    if (added instanceof AdminProblem && added.kind === "conflict") {
      context.io.err(`A user named ${username} exists already; use users passwd to change the password.\n`);
      return EXIT.conflict;
    }
    if (added instanceof AdminProblem) return reportProblem(context.io, added);
    context.io.out(`Added user ${username} (roles: ${roles.join(" ")}; scopes: ${scopesForRoles(roles, context.roleScopes).join(" ")}).\n`);
    return EXIT.ok;
  },
};

const listUsersCommand: Command = {
  summary: ["users list [--json]", "list users, roles and scopes"],
  help: `Usage: bun run cli users list [--json]

Lists users with their roles, the scopes those roles grant, and whether they are disabled.
`,
  run: async (args, { io, openStore, roleScopes }) => {
    const json = parseJsonFlag(args);
    const records: UserRecord[] = await withStore(openStore, (store) => store.listUsers());
    printListing(io, {
      json,
      records,
      asJson: (user) => userJson(user, roleScopes),
      none: "No users yet. Add one with: bun run cli users add NAME --role admin\n",
      header: ["USERNAME", "ROLES", "SCOPES", "CREATED", "STATE"],
      asRow: (user) => userRow(user, roleScopes),
    });
    return EXIT.ok;
  },
};

const changePasswordCommand: Command = {
  summary: ["users passwd NAME [--keep-sessions]", "set a new password (prompt or stdin); signs the user out"],
  help: `Usage: bun run cli users passwd NAME [--keep-sessions]

Sets a new password, read from a prompt without echo (asked twice) or from the first line of
standard input. Every browser session of the user ends (a password is changed because the old one
may be known), and so do their refresh tokens, unless --keep-sessions.
`,
  run: async (args, context) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { "keep-sessions": { type: "boolean", default: false } },
    });
    const username = parseUsername(positionals[0]);
    return withStore(context.openStore, async (store) => {
      if ((await store.getUser(username)) === undefined) {
        context.io.err(`No user named ${echoTyped(username)}. See: bun run cli users list\n`);
        return EXIT.notFound;
      }
      const password = await readNewPassword(context);
      const changed = await resetPassword(store, { username, password, keepSessions: values["keep-sessions"] }, context.now());
      if (changed instanceof AdminProblem) return reportProblem(context.io, changed);
      const ended = changed.sessionsEnded;
      context.io.out(`Password of ${username} changed.${ended > 0 ? ` Ended ${plural(ended, "browser session")}.` : ""}\n`);
      return EXIT.ok;
    });
  },
};

const disableUserCommand: Command = {
  // One line of the main help for both directions.
  summary: ["users disable NAME | users enable NAME", "stop or allow a user's sign-in"],
  help: `Usage: bun run cli users disable NAME

Stops the user from signing in and ends their browser sessions; takes effect on the next
request, and their open WebSockets close (4403).
`,
  run: setDisabled(true),
};

const enableUserCommand: Command = {
  help: `Usage: bun run cli users enable NAME

Allows a disabled user to sign in again.
`,
  run: setDisabled(false),
};

/** In the order the main help lists them. */
export const userCommands: CommandTable = {
  "users add": addUserCommand,
  "users list": listUsersCommand,
  "users passwd": changePasswordCommand,
  "users disable": disableUserCommand,
  "users enable": enableUserCommand,
};
