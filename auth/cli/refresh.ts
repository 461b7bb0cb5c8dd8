/**
 * `refresh list | revoke | revoke-all`: refresh-token families (the password grant's sign-ins and
 * their rotations) in the store every server shares, through the same operations as the admin
 * API's `/admin/api/refresh-families…` (admin/refresh.ts). Revoking one ends its refresh token and
 * its access tokens within a poll interval; the CLI works without a running server. Nothing it
 * prints holds a token or its hash.
 */
import { parseArgs } from "node:util";
import { AdminProblem } from "../admin/keys.ts";
import { describeFamily, listFamilies, revokeFamiliesOfUser, revokeFamily } from "../admin/refresh.ts";
import { USERNAME } from "../authn/users.ts";
import { isFamilyId } from "../secrets/refresh.ts";
import type { RefreshFamilyRecord } from "../store/store.ts";
import { EXIT, iso, printListing, UsageError, withStore, type CliIo, type Command, type CommandTable } from "./shared.ts";

function parseUsername(text: string | undefined, what: string): string {
  if (text === undefined) throw new UsageError("give the username");
  if (!USERNAME.test(text)) throw new UsageError(`${what} takes a username (letters, digits, . _ @ -)`);
  return text;
}

const familyRow = (family: RefreshFamilyRecord) => [
  family.familyId,
  family.subject,
  family.clientId,
  family.scopes.join(" "),
  iso(family.createdAt),
  family.lastRotatedAt === null ? "-" : iso(family.lastRotatedAt),
  iso(family.expiresAt),
  family.revokedAt === null ? "active" : "revoked",
];

/** A problem as the CLI says it: on stderr, with the exit code of its kind. */
function reportProblem(io: CliIo, problem: AdminProblem, hint: string): number {
  io.err(`${problem.message}.${hint === "" ? "" : ` ${hint}`}\n`);
  return problem.kind === "conflict" ? EXIT.conflict : EXIT.notFound;
}

const listFamiliesCommand: Command = {
  summary: ["refresh list [--user NAME] [--json]", "refresh-token families (sign-ins at /auth/token)"],
  help: `Usage: bun run cli refresh list [--user NAME] [--json]

Lists refresh-token families that have not expired: one per password sign-in at /auth/token,
kept through every refresh. For each: the family id (the sid claim of its access tokens), who,
the client it named, the scopes of its newest token, when it started, when it was last refreshed,
when its newest refresh token expires, and whether it is active or revoked. Never shows a token.
  --user NAME   only NAME's families (exit code 3 for no such user)
`,
  run: async (args, { io, openStore, now }) => {
    const { values } = parseArgs({ args, options: { user: { type: "string" }, json: { type: "boolean", default: false } } });
    const username = values.user === undefined ? undefined : parseUsername(values.user, "--user");
    const listed = await withStore(openStore, (store) => listFamilies(store, now(), username));
    if (listed instanceof AdminProblem) return reportProblem(io, listed, "See: bun run cli users list");
    printListing(io, {
      json: values.json,
      records: listed,
      asJson: describeFamily,
      none: "No refresh-token families. A password sign-in at /auth/token starts one.\n",
      header: ["FAMILY", "WHO", "CLIENT", "SCOPES", "STARTED", "REFRESHED", "EXPIRES", "STATE"],
      asRow: familyRow,
    });
    return EXIT.ok;
  },
};

const revokeFamilyCommand: Command = {
  summary: ["refresh revoke FAMILY", "end one sign-in: its refresh token and access tokens"],
  help: `Usage: bun run cli refresh revoke FAMILY

Revokes one refresh-token family (its id from refresh list). Its refresh token no longer refreshes,
and running servers refuse its access tokens within a second (their WebSockets close with 4403).
Exit code 3 for an unknown or expired family, 4 for one revoked already.
`,
  run: async (args, { io, openStore, now }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    if (positionals.length !== 1) throw new UsageError("give one family id");
    const familyId = positionals[0]!;
    if (!isFamilyId(familyId)) throw new UsageError("a family id is a UUID, as refresh list shows");
    const revoked = await withStore(openStore, (store) => revokeFamily(store, familyId, now()));
    if (revoked instanceof AdminProblem) return reportProblem(io, revoked, "See: bun run cli refresh list");
    io.out(`Revoked refresh-token family ${familyId} of ${revoked.subject}.\n`);
    return EXIT.ok;
  },
};

const revokeAllCommand: Command = {
  summary: ["refresh revoke-all NAME", "end every sign-in of a user at /auth/token"],
  help: `Usage: bun run cli refresh revoke-all NAME

Revokes every live refresh-token family of the user NAME: every app they signed in to must sign
in again, and running servers refuse those sign-ins' access tokens within a second. Their browser
sessions are not touched (sessions revoke --user NAME ends those). Exit code 3 for no such user,
or when none was live.
`,
  run: async (args, { io, openStore, now }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    if (positionals.length !== 1) throw new UsageError("give one username");
    const username = parseUsername(positionals[0], "refresh revoke-all");
    const outcome = await withStore(openStore, (store) => revokeFamiliesOfUser(store, username, now()));
    if (outcome instanceof AdminProblem) return reportProblem(io, outcome, "");
    io.out(`Revoked ${outcome.revoked} refresh-token famil${outcome.revoked === 1 ? "y" : "ies"} of ${username}.\n`);
    return EXIT.ok;
  },
};

/** In the order the main help lists them. */
export const refreshCommands: CommandTable = {
  "refresh list": listFamiliesCommand,
  "refresh revoke": revokeFamilyCommand,
  "refresh revoke-all": revokeAllCommand,
};
