/**
 * `bans list | clear`: the bans the guard set for repeated failed attempts, shared by every
 * running server through the store.
 */
import { parseArgs } from "node:util";
import { BAN_SUBJECT_EXAMPLES, clearBans, describeBan, listActiveBans } from "../admin/bans.ts";
import { AdminProblem } from "../admin/keys.ts";
import { isBanSubject } from "../guard/refusals.ts";
import { EXIT, iso, parseJsonFlag, printListing, UsageError, withStore, type Command, type CommandTable } from "./shared.ts";

const listBansCommand: Command = {
  summary: ["bans list [--json]", "addresses and key ids banned for failed attempts"],
  help: `Usage: bun run cli bans list [--json]

Lists active bans: the subject (addr:<ip> or key:<id>), since when, until when, and the level
(each ban soon after the previous one lasts twice as long, up to an hour).
`,
  run: async (args, { io, openStore, now }) => {
    const json = parseJsonFlag(args);
    const records = await withStore(openStore, (store) => listActiveBans(store, now()));
    printListing(io, {
      json,
      records,
      asJson: describeBan,
      none: "No active bans.\n",
      header: ["SUBJECT", "SINCE", "UNTIL", "LEVEL"],
      asRow: (ban) => [ban.subject, iso(ban.startedAt), iso(ban.until), String(ban.level)],
    });
    return EXIT.ok;
  },
};

const clearBansCommand: Command = {
  summary: ["bans clear [SUBJECT]", "lift all bans, or one (addr:1.2.3.4, key:<id>)"],
  help: `Usage: bun run cli bans clear [SUBJECT]

Lifts every active ban, or only SUBJECT's (as shown by bans list, e.g. addr:192.168.1.50).
Running servers follow within a second.
`,
  run: async (args, { io, openStore, now }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    if (positionals.length > 1) throw new UsageError("bans clear takes at most one subject");
    const subject = positionals[0];
    // Checked before the store is opened: a malformed subject is a usage error whatever the store's state.
    if (subject !== undefined && !isBanSubject(subject))
      throw new UsageError(`a subject looks like ${BAN_SUBJECT_EXAMPLES} (see bans list)`);
    const outcome = await withStore(openStore, (store) => clearBans(store, subject, now()));
    if (outcome instanceof AdminProblem) {
      io.err(`${outcome.message}.\n`);
      return EXIT.notFound;
    }
    io.out(`Lifted ${outcome.cleared} ban${outcome.cleared === 1 ? "" : "s"}.\n`);
    return EXIT.ok;
  },
};

/** In the order the main help lists them. */
export const banCommands: CommandTable = {
  "bans list": listBansCommand,
  "bans clear": clearBansCommand,
};
