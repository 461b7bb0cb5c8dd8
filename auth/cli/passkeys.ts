/**
 * `users require-passkey | users passkeys`: an administrator's view of users' passkeys, through the
 * same operations as the admin API's `/admin/api/users/passkeys…` (admin/passkeys.ts). A user
 * adds passkeys on the console page (signed in); here they are listed, removed (a lost phone),
 * and required: a user who must use a passkey can no longer open a browser session with a password.
 */
import { parseArgs } from "node:util";
import type { PasskeyRecord, Store } from "../store/store.ts";
import { USERNAME } from "../authn/users.ts";
import { echoTyped } from "../core/redact.ts";
import { AdminProblem } from "../admin/keys.ts";
import { describePasskey, listUserPasskeys, PASSKEY_ID, removeUserPasskey } from "../admin/passkeys.ts";
import { setPasskeyRequirement } from "../admin/users.ts";
import { EXIT, iso, printListing, UsageError, withStore, type CliContext, type Command, type CommandTable } from "./shared.ts";

function parseUsername(text: string | undefined): string {
  if (text === undefined) throw new UsageError("give the username");
  if (!USERNAME.test(text))
    throw new UsageError("a username is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");
  return text;
}

function parsePasskeyId(text: string | undefined): string {
  if (text === undefined) throw new UsageError("give the passkey's id (the ID column of: bun run cli users passkeys NAME)");
  if (!PASSKEY_ID.test(text)) throw new UsageError("a passkey id is base64url (letters, digits, '-' and '_')");
  return text;
}

/** The API's view in the fields and order --json has always printed: the transports too, no username. */
function passkeyJson(passkey: PasskeyRecord) {
  const view = describePasskey(passkey);
  return { id: view.id, name: view.name, transports: passkey.transports, created_at: view.created_at, last_used_at: view.last_used_at };
}

const passkeyRow = (passkey: PasskeyRecord) => [passkey.id, passkey.name, iso(passkey.createdAt), iso(passkey.lastUsedAt)];

const noUser = (context: CliContext, username: string) => {
  context.io.err(`No user named ${echoTyped(username)}. See: bun run cli users list\n`);
  return EXIT.notFound;
};

/** `users require-passkey NAME [--off]`: never on for a user without a passkey, who could then not sign in at all. */
async function requirePasskey(store: Store, context: CliContext, username: string, off: boolean): Promise<number> {
  const outcome = await setPasskeyRequirement(store, username, !off, context.now());
  if (outcome instanceof AdminProblem && outcome.kind === "not_found") return noUser(context, username);
  if (outcome instanceof AdminProblem) {
    context.io.err(
      `${username} has no passkey yet and could no longer sign in to the browser. Have them sign in and add one ` +
        `("Add a passkey" on the console page), then run this again.\n`,
    );
    return EXIT.conflict;
  }
  if (off) {
    context.io.out(`${username} may sign in with a password again.\n`);
    return EXIT.ok;
  }
  const ended = outcome.sessionsEnded;
  context.io.out(
    `${username} must now sign in with a passkey.${ended > 0 ? ` Ended ${ended} browser session${ended === 1 ? "" : "s"}.` : ""}\n`,
  );
  return EXIT.ok;
}

const requirePasskeyCommand: Command = {
  summary: ["users require-passkey NAME [--off]", "make a user sign in with a passkey (or stop)"],
  help: `Usage: bun run cli users require-passkey NAME [--off]

From now on NAME signs in with a passkey only: the password no longer opens a browser session,
passes Basic auth or gets a token (grant_type=password); it only confirms changes to the user's
passkeys. The user's open sessions and refresh tokens end. The user must have added a passkey first (signed in, "Add a passkey" on the console page);
see them with: bun run cli users passkeys NAME
  --off     allow password sign-in again
`,
  run: async (args, context) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { off: { type: "boolean", default: false } } });
    if (positionals.length > 1) throw new UsageError("give one username");
    const username = parseUsername(positionals[0]);
    return withStore(context.openStore, (store) => requirePasskey(store, context, username, values.off));
  },
};

async function listPasskeys(store: Store, context: CliContext, username: string, json: boolean): Promise<number> {
  const listed = await listUserPasskeys(store, username);
  if (listed instanceof AdminProblem) return noUser(context, username);
  const { user, passkeys } = listed;
  printListing(context.io, {
    json,
    records: passkeys,
    asJson: passkeyJson,
    none: `${username} has no passkeys. They add one signed in, with "Add a passkey" on the console page.\n`,
    header: ["ID", "NAME", "CREATED", "LAST USED"],
    asRow: passkeyRow,
  });
  if (!json && user.passkeyRequired) context.io.out(`${username} must sign in with a passkey.\n`);
  return EXIT.ok;
}

async function removePasskey(store: Store, context: CliContext, username: string, id: string): Promise<number> {
  const removal = await removeUserPasskey(store, username, id);
  if (removal instanceof AdminProblem && removal.kind === "conflict") {
    context.io.err(
      `${username} must sign in with a passkey and this is their last one: removing it would leave them no way to sign in ` +
        `to the browser. Run bun run cli users require-passkey ${username} --off first, or have them add another passkey ` +
        `("Add a passkey" on the console page).\n`,
    );
    return EXIT.conflict;
  }
  if (removal instanceof AdminProblem) {
    // Not found is an unknown user or a passkey not theirs: each is pointed to its own list.
    if ((await store.getUser(username)) === undefined) return noUser(context, username);
    context.io.err(`${username} has no passkey ${echoTyped(id)}. See: bun run cli users passkeys ${username}\n`);
    return EXIT.notFound;
  }
  context.io.out(`Removed passkey ${id} of ${username}; it no longer signs in.\n`);
  return EXIT.ok;
}

const passkeysCommand: Command = {
  summary: ["users passkeys NAME [--json] | users passkeys remove NAME ID", "list or remove a user's passkeys"],
  help: `Usage: bun run cli users passkeys NAME [--json]
       bun run cli users passkeys remove NAME ID

Lists the passkeys NAME has added (id, name, when added and last used), or removes one of them,
e.g. when the device that held it is lost. A removed passkey no longer signs in; browser sessions
already open stay until they end or are signed out (sessions revoke --user NAME ends them).
The last passkey of a user who must sign in with one stays (exit code 4): run
users require-passkey NAME --off first.
An id may start with "-": put -- before it, as in users passkeys remove NAME -- -Xy3…
`,
  run: async (args, context) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean", default: false } } });
    // `users passkeys remove` alone lists the passkeys of a user named "remove".
    if (positionals[0] === "remove" && positionals.length > 1) {
      if (positionals.length !== 3) throw new UsageError("give the username and the passkey's id: users passkeys remove NAME ID");
      const username = parseUsername(positionals[1]);
      const id = parsePasskeyId(positionals[2]);
      return withStore(context.openStore, (store) => removePasskey(store, context, username, id));
    }
    if (positionals.length !== 1) throw new UsageError("give one username");
    const username = parseUsername(positionals[0]);
    return withStore(context.openStore, (store) => listPasskeys(store, context, username, values.json));
  },
};

/** In the order the main help lists them, after the other users commands. */
export const passkeyCommands: CommandTable = {
  "users require-passkey": requirePasskeyCommand,
  "users passkeys": passkeysCommand,
};
