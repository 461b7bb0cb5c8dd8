/**
 * `tokengate …` (or `bun run cli …` from a checkout): manage API keys in the same database the server uses. The running server sees
 * every change within a poll interval, without a restart. Exit codes are for scripts:
 * 0 ok, 1 failure, 2 usage error, 3 no such key, 4 key not in a state that allows the action.
 *
 * This module is the dispatcher: it finds the command in the groups' tables (keys.ts, users.ts, …),
 * answers --help from the command's own help, and turns a usage error into exit code 2.
 */
import { backupCommands } from "./backup.ts";
import { banCommands } from "./bans.ts";
import { doctorCommands } from "./doctor-command.ts";
import { keyCommands } from "./keys.ts";
import { loginCommands } from "./login.ts";
import { pairCommands } from "./pair.ts";
import { passkeyCommands } from "./passkeys.ts";
import { refreshCommands } from "./refresh.ts";
import { sessionCommands } from "./sessions.ts";
import { signingKeyCommands } from "./signing-keys.ts";
import { tokenCommands } from "./token.ts";
import { userCommands } from "./users.ts";
import { EXIT, UsageError, type CliContext, type CliIo, type Command } from "./shared.ts";

// cli.ts (the composition root) imports the store options from here, beside runCli.
export type { StoreOptions } from "./shared.ts";

/** Help and hints are written with this name and shown with `CliContext.program` in its place. */
const PROGRAM = "bun run cli";

/**
 * Every command by name, in the order the main help lists them. A Map rather than an object, so a
 * word such as `constructor` is an unknown command rather than something inherited.
 */
export const COMMANDS: ReadonlyMap<string, Command> = new Map(
  [
    keyCommands,
    tokenCommands,
    userCommands,
    passkeyCommands,
    sessionCommands,
    refreshCommands,
    banCommands,
    signingKeyCommands,
    backupCommands,
    pairCommands,
    loginCommands,
    doctorCommands,
  ].flatMap((group) => Object.entries(group)),
);

/** The main help: one line per command summary, the descriptions lined up in one column. */
function formatMainHelp(commands: Iterable<Command>): string {
  const summaries = [...commands].flatMap((command) => (command.summary === undefined ? [] : [command.summary]));
  // Four spaces after the longest usage: the column the descriptions have always stood in.
  const width = Math.max(...summaries.map(([usage]) => usage.length)) + 4;
  const lines = summaries.map(([usage, does]) => `  ${usage.padEnd(width)}${does}\n`).join("");
  return `Usage: bun run cli <command> [options]

Commands:
${lines}
Every command takes --help. The store is STORE_URL (a PostgreSQL URL), or else DATA_DIR/tokengate.db (DATA_DIR defaults to ./data).
The server creates that store on its first start; commands refuse a SQLite store that does not exist
(keys create and users add make one on purpose with --create-store; restore and import make one to load into).
Exit codes: 0 ok, 1 failure, 2 usage error, 3 no such key, 4 key revoked or expired.
Output cut short by a closed pipe (e.g. | head) ends the command quietly with exit code 141.
`;
}

const MAIN_HELP = formatMainHelp(COMMANDS.values());

interface Invocation {
  /** One word (`pair`, `doctor`) or two (`keys create`); what the user typed when it names no command. */
  readonly name: string;
  readonly command: Command | undefined;
  /** The arguments after the command's name. */
  readonly args: string[];
  readonly wantsHelp: boolean;
}

/** Finds the command in argv; options may stand anywhere, even before the command's words. */
function parseInvocation(argv: readonly string[]): Invocation {
  const words = argv.filter((arg) => !arg.startsWith("-"));
  const first = words[0] ?? "";
  const name = COMMANDS.has(first) ? first : words.length >= 2 ? `${first} ${words[1]}` : first;
  const lastWord = words[name.includes(" ") ? 1 : 0];
  return {
    name,
    command: COMMANDS.get(name),
    args: lastWord === undefined ? [] : argv.slice(argv.indexOf(lastWord) + 1),
    wantsHelp: argv.includes("--help") || argv.includes("-h"),
  };
}

/** No command by that name: the main help, on stdout when asked for, on stderr after the complaint otherwise. */
function answerWithoutCommand(name: string, wantsHelp: boolean, io: CliIo): number {
  if (wantsHelp || name === "" || name === "help") {
    io.out(MAIN_HELP);
    return wantsHelp || name === "help" ? EXIT.ok : EXIT.usage;
  }
  io.err(`Unknown command: ${name}\n\n${MAIN_HELP}`);
  return EXIT.usage;
}

/** parseArgs refuses an unknown option or a stray argument with a TypeError of its own code. */
function isUsageError(error: unknown): error is Error {
  return error instanceof UsageError || (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"));
}

async function runCommand(name: string, command: Command, args: string[], context: CliContext): Promise<number> {
  try {
    return await command.run(args, context);
  } catch (error) {
    if (isUsageError(error)) {
      context.io.err(`${name}: ${error.message}\n\n${command.help}`);
      return EXIT.usage;
    }
    context.io.err(`${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failure;
  }
}

export async function runCli(argv: readonly string[], given: CliContext): Promise<number> {
  const named = (text: string) => text.replaceAll(PROGRAM, given.program);
  const context: CliContext = { ...given, io: { out: (text) => given.io.out(named(text)), err: (text) => given.io.err(named(text)) } };
  const { name, command, args, wantsHelp } = parseInvocation(argv);
  if (command === undefined) return answerWithoutCommand(name, wantsHelp, context.io);
  if (wantsHelp) {
    context.io.out(command.help);
    return EXIT.ok;
  }
  return runCommand(name, command, args, context);
}
