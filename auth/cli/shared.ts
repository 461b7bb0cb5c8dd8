/**
 * What every command group of the CLI uses: exit codes, the context a command runs in, the shape
 * of a command (its help beside its handler), the usage error, opening the store, and the
 * formatting of tables and stored times.
 */
import { parseArgs } from "node:util";
import type { JwtAlgorithm } from "../secrets/jwt.ts";
import type { Store } from "../store/store.ts";
import type { RoleScopes } from "../authn/users.ts";
import type { CheckResult } from "./doctor.ts";

/** Exit codes are for scripts: 0 ok, 1 failure, 2 usage error, 3 no such key, 4 key not in a state that allows the action. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, conflict: 4 } as const;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface StoreOptions {
  /** Make the store if it does not exist (`--create-store`); otherwise a missing store is an error. */
  readonly create: boolean;
}

export interface CliContext {
  readonly io: CliIo;
  /** Opened only by commands that need it, so `--help` and `token new` work without a data dir. */
  openStore(options?: StoreOptions): Promise<Store>;
  /** Where that store is, for messages: the SQLite file, or the PostgreSQL URL without credentials. */
  readonly storeName?: string;
  readonly now: () => number;
  /** Role → scopes, as the server is configured (ROLE_SCOPES). */
  readonly roleScopes: RoleScopes;
  /** Scopes a new key may be given without --allow-new-scope (see listKnownScopes). */
  readonly knownScopes: readonly string[];
  /**
   * Reads a password from a no-echo prompt or the first line of stdin; never from argv.
   * `undefined` when nothing was given (end of input).
   */
  readPassword(prompt: string): Promise<string | undefined>;
  /** Whether passwords are typed at a terminal (then asked twice) rather than piped in. */
  readonly typedPasswords: boolean;
  /** JWT_ALG, for new signing keys. */
  readonly jwtAlg: JwtAlgorithm;
  /** How the user started us, for help and hints: `tokengate` (the binary) or `bun run cli`. */
  readonly program: string;
  /** Where a browser reaches the server's console page (from HOST, PORT and this machine's addresses). */
  readonly consoleUrls: () => readonly string[];
  /** Runs every doctor check against the environment the command was started with. */
  examine(): Promise<CheckResult[]>;
}

/** Runs one command on the arguments after its name; returns the exit code. */
export type Handler = (args: string[], context: CliContext) => number | Promise<number>;

/**
 * One command: its line in the main help, its own `--help`, and its handler, kept together so a
 * command's words change in one place. Help is written with `bun run cli` as the program name;
 * the dispatcher shows the name the user started us with instead.
 */
export interface Command {
  /** Its line in the main help: what to type, then what it does. Absent when another command's line covers it. */
  readonly summary?: readonly [usage: string, does: string];
  readonly help: string;
  readonly run: Handler;
}

/** A command group's commands by name ("keys create", "pair"), in the order the main help lists them. */
export type CommandTable = Readonly<Record<string, Command>>;

/** Wrong arguments: the dispatcher prints the message and the command's help, and exits with EXIT.usage. */
export class UsageError extends Error {}

/** Opens the store for one use and always closes it, so the CLI never leaves a connection behind. */
export async function withStore<T>(openStore: () => Promise<Store>, use: (store: Store) => T | Promise<T>): Promise<T> {
  const store = await openStore();
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

// Shared with the admin API, which shows stored times the same way.
export { iso, isoOrNull } from "../core/times.ts";

/** Rows as aligned columns, the first row being the header. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return (
    rows
      .map((row) =>
        row
          .map((cell, column) => cell.padEnd(widths[column]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** How a listing command prints its records: as JSON, as a table, or as a sentence when there are none. */
export interface Listing<T> {
  readonly json: boolean;
  readonly records: readonly T[];
  readonly asJson: (record: T) => unknown;
  /** The line shown instead of an empty table, usually with the command that makes the first record. */
  readonly none: string;
  readonly header: readonly string[];
  readonly asRow: (record: T) => string[];
}

/** Prints a listing; every `… list` command shares it, so --json and the empty case read alike everywhere. */
export function printListing<T>(io: CliIo, listing: Listing<T>): void {
  if (listing.json) io.out(`${JSON.stringify(listing.records.map(listing.asJson))}\n`);
  else if (listing.records.length === 0) io.out(listing.none);
  else io.out(table([[...listing.header], ...listing.records.map(listing.asRow)]));
}

/** The arguments of a command whose only option is --json; anything else is a usage error (from parseArgs). */
export function parseJsonFlag(args: string[]): boolean {
  return parseArgs({ args, options: { json: { type: "boolean", default: false } } }).values.json;
}
