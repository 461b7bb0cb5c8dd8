/**
 * `sessions list | revoke`: browser sign-ins (the `tgs_…` cookies) in the store every server
 * shares. Revoking one signs that browser out within a poll interval and closes its sockets
 * (4403); the CLI works without a running server.
 */
import { parseArgs } from "node:util";
import { AdminProblem } from "../admin/keys.ts";
import { describeSession, listOpenSessions, revokeSession, revokeSessionsOf, SESSION_ID, typedSubject } from "../admin/sessions.ts";
import { USERNAME } from "../authn/users.ts";
import { ID_LENGTH } from "../secrets/keys.ts";
import { SESSION_ID_LENGTH } from "../secrets/sessions.ts";
import { EXIT, iso, printListing, UsageError, withStore, type Command, type CommandTable } from "./shared.ts";

const KEY_ID = new RegExp(`^[0-9a-f]{${ID_LENGTH}}$`);

/** `--user NAME` or `--key ID` → the subject the store files sessions under. */
function subjectOf(values: { user?: string | undefined; key?: string | undefined }): string | undefined {
  if (values.user !== undefined && values.key !== undefined) throw new UsageError("give --user or --key, not both");
  if (values.user !== undefined) {
    if (!USERNAME.test(values.user)) throw new UsageError("--user takes a username (letters, digits, . _ @ -)");
    return `user:${values.user}`;
  }
  if (values.key !== undefined) {
    if (!KEY_ID.test(values.key)) throw new UsageError("--key takes a key id: 12 hex digits, as keys list shows");
    return `key:${values.key}`;
  }
  return undefined;
}

const listSessionsCommand: Command = {
  summary: ["sessions list [--user NAME | --key ID] [--json]", "browser sign-ins that are still open"],
  help: `Usage: bun run cli sessions list [--user NAME | --key ID] [--json]

Lists open browser sessions (signed in on the login page): the session id, who (user:<name> or
key:<id>), how (password, passkey, key), when it opened and from where, when it was last used
(written at most once a minute) and when it ends at the latest. Never shows a cookie.
`,
  run: async (args, { io, openStore, now }) => {
    const { values } = parseArgs({ args, options: { user: { type: "string" }, key: { type: "string" }, json: { type: "boolean" } } });
    const subject = subjectOf(values);
    const records = await withStore(openStore, (store) => listOpenSessions(store, now(), subject));
    printListing(io, {
      json: values.json === true,
      records,
      asJson: describeSession,
      none: "No open sessions.\n",
      header: ["ID", "WHO", "HOW", "OPENED", "FROM", "LAST USED", "ENDS"],
      asRow: (session) => [
        session.id,
        session.subject,
        session.method,
        iso(session.createdAt),
        session.createdAddr,
        iso(session.lastSeenAt),
        iso(session.expiresAt),
      ],
    });
    return EXIT.ok;
  },
};

const revokeSessionCommand: Command = {
  summary: ["sessions revoke ID | --user NAME | --key ID", "sign a browser out (or every browser of a person or key)"],
  help: `Usage: bun run cli sessions revoke ID
       bun run cli sessions revoke --user NAME
       bun run cli sessions revoke --key ID

Ends one session (its id from sessions list), or every open session of a user or of sessions
opened with a key. Running servers follow within a second: the browser is signed out and its
WebSockets close with 4403. Exit code 3 when nothing was open.
`,
  run: async (args, { io, openStore, now }) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { user: { type: "string" }, key: { type: "string" } },
    });
    const subject = subjectOf(values);
    if ((subject === undefined) === (positionals.length === 0) || positionals.length > 1) {
      throw new UsageError("give one session id, or --user NAME, or --key ID");
    }
    if (subject !== undefined) {
      const outcome = await withStore(openStore, (store) => revokeSessionsOf(store, subject, now()));
      // Nothing open is still said on stdout, with its own exit code, as scripts have always read it.
      const ended = outcome instanceof AdminProblem ? 0 : outcome.ended;
      // Nothing ended: the subject may be a secret pasted as a name, not repeated (typedSubject).
      io.out(`Ended ${ended} session${ended === 1 ? "" : "s"} of ${ended === 0 ? typedSubject(subject) : subject}.\n`);
      return ended === 0 ? EXIT.notFound : EXIT.ok;
    }
    const id = positionals[0]!;
    if (!SESSION_ID.test(id)) throw new UsageError(`a session id is ${SESSION_ID_LENGTH} hex digits, as sessions list shows`);
    const ended = await withStore(openStore, (store) => revokeSession(store, id, now()));
    if (ended instanceof AdminProblem) {
      io.err(`${ended.message}.\n`);
      return EXIT.notFound;
    }
    io.out(`Ended session ${id} of ${ended.subject}.\n`);
    return EXIT.ok;
  },
};

/** In the order the main help lists them. */
export const sessionCommands: CommandTable = {
  "sessions list": listSessionsCommand,
  "sessions revoke": revokeSessionCommand,
};
