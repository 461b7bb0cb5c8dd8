/**
 * `backup | restore | export | import`: the whole store at once, through the operations of
 * admin/backup.ts. A backup is taken while servers run (a consistent snapshot, never a torn copy);
 * a restore or import is one change that running servers reload. Secrets stay as the store holds
 * them: hashes, nothing decoded or hashed again.
 */
import { readFileSync, statSync } from "node:fs";
import { parseArgs } from "node:util";
import { AdminProblem } from "../admin/keys.ts";
import {
  describeRowCounts,
  exportStore,
  loadBackup,
  readBackupSource,
  writeBackup,
  type BackupFormat,
  type ReadyBackup,
  type RestoredBackup,
  type WrittenBackup,
} from "../admin/backup.ts";
import { describeFsError } from "../config/bootstrap.ts";
import { EXIT, UsageError, withStore, type CliContext, type CliIo, type Command, type CommandTable } from "./shared.ts";

const FORMAT_WORDS: Readonly<Record<BackupFormat, string>> = { sqlite: "an SQLite database", json: "a JSON export" };

const KEEP_PRIVATE =
  "It holds hashes of keys, passwords and sessions, never the secrets themselves, but also the JWT signing keys: keep it private.\n";

/** The one FILE a command takes; `what` says what it is for. */
function parseFile(positionals: readonly string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`give the FILE ${what}`);
  if (positionals.length > 1) throw new UsageError(`takes one FILE, not ${positionals.length} (quote a name with spaces)`);
  const file = positionals[0]!;
  if (file.trim() === "") throw new UsageError("FILE is empty; give a file name");
  return file;
}

const countsAsJson = (counts: ReadonlyMap<string, number>) => Object.fromEntries(counts);

/** A refused operation as the CLI says it: the sentence and what to do, on stderr, and its exit code. */
function reportProblem(io: CliIo, command: string, problem: AdminProblem, hint: string): number {
  if (problem.kind === "conflict") {
    io.err(`${command}: ${problem.message}${hint}\n`);
    return EXIT.conflict;
  }
  io.err(`${command}: ${problem.message}\n`);
  return EXIT.failure;
}

const REPLACE_FILE_HINT = ": add --force to replace it, or name another file";

function printWritten(io: CliIo, verb: string, written: WrittenBackup, storeName: string, json: boolean): void {
  if (json) {
    const { file, format, schemaVersion, counts } = written;
    io.out(`${JSON.stringify({ file, format, schema_version: schemaVersion, mode: "0600", tables: countsAsJson(counts) })}\n`);
    return;
  }
  io.out(
    `${verb} ${storeName} to ${written.file} (${FORMAT_WORDS[written.format]}, schema ${written.schemaVersion}, mode 0600): ` +
      `${describeRowCounts(written.counts)}.\n${KEEP_PRIVATE}`,
  );
}

const backupCommand: Command = {
  summary: ["backup FILE [--force] [--json]", "consistent copy of the whole store, also while servers run"],
  help: `Usage: bun run cli backup FILE [--force] [--json]

Writes a consistent copy of the whole store to FILE while servers keep running and writing: every
key, user, session, passkey, refresh token and signing key as of one moment. From an SQLite store
(DATA_DIR) FILE is an SQLite database (VACUUM INTO); from PostgreSQL (STORE_URL) it is the JSON
of export --json. Either one restores into either engine (see restore).

FILE is written under a temporary name and renamed into place, with mode 0600: it holds hashes
of keys, passwords and sessions (never the secrets themselves) and the JWT signing keys, so keep
it private. The copy is read back before it is kept.
  --force   replace FILE if it exists (otherwise an existing FILE is refused, exit code 4)
  --json    print what was written as a JSON object
`,
  run: async (args, { io, openStore, now, storeName }) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { force: { type: "boolean", default: false }, json: { type: "boolean", default: false } },
    });
    const file = parseFile(positionals, "to write the backup to, e.g. tokengate-backup.db");
    const written = await withStore(openStore, (store) => writeBackup(store, file, { force: values.force, format: "native", now: now() }));
    if (written instanceof AdminProblem) return reportProblem(io, "backup", written, REPLACE_FILE_HINT);
    printWritten(io, "Backed up", written, storeName ?? "the store", values.json);
    return EXIT.ok;
  },
};

const exportCommand: Command = {
  summary: ["export --json [FILE] [--force]", "the whole store as JSON, the same from either engine"],
  help: `Usage: bun run cli export --json [FILE] [--force]

Prints the whole store as one JSON document, read in one consistent snapshot while servers run:
every table's rows, the schema version and the format version, bytes as base64. The same document
comes from SQLite and from PostgreSQL, and import (or restore) loads it into either: this is how a
store moves between engines.
  --json    the format (the only one; required, so a later format cannot change what a script gets)
  FILE      write it to FILE (mode 0600, through a temporary name) instead of standard output
  --force   replace FILE if it exists (otherwise an existing FILE is refused, exit code 4)

Secrets appear only as the store holds them: hashes, and the JWT signing keys. Keep it private.
`,
  run: async (args, { io, openStore, now, storeName }) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { json: { type: "boolean", default: false }, force: { type: "boolean", default: false } },
    });
    if (!values.json) throw new UsageError("say the format: --json (the only one), e.g. export --json store.json");
    if (positionals.length > 1) throw new UsageError(`takes at most one FILE, not ${positionals.length}`);
    const file = positionals[0];
    if (file === undefined || file === "-") {
      io.out(await withStore(openStore, (store) => exportStore(store, now())));
      return EXIT.ok;
    }
    const written = await withStore(openStore, (store) => writeBackup(store, file, { force: values.force, format: "json", now: now() }));
    if (written instanceof AdminProblem) return reportProblem(io, "export", written, REPLACE_FILE_HINT);
    printWritten(io, "Exported", written, storeName ?? "the store", false);
    return EXIT.ok;
  },
};

/** Far above any store's backup; a FILE larger than this is not one (or is /dev/zero). */
const MAX_BACKUP_BYTES = 1024 * 1024 * 1024;

/** The file's bytes, or a sentence naming it and what is wrong: only a regular file of a backup's size is read. */
function readSourceFile(file: string): Uint8Array | string {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return `${file} is not a regular file (a directory, a device or a pipe); name the backup file itself`;
    if (stat.size > MAX_BACKUP_BYTES) return `${file} is ${stat.size} bytes, more than any backup (1 GiB at most); is it the right file?`;
    return readFileSync(file);
  } catch (error) {
    return `cannot read ${file}: it ${describeFsError(error)}`;
  }
}

function printRestored(io: CliIo, file: string, restored: RestoredBackup, storeName: string, json: boolean): void {
  const { format, schemaVersion, upgradedFrom, counts } = restored;
  if (json) {
    io.out(
      `${JSON.stringify({ file, format, schema_version: schemaVersion, upgraded_from: upgradedFrom ?? null, tables: countsAsJson(counts) })}\n`,
    );
    return;
  }
  const schema =
    upgradedFrom === undefined
      ? `schema ${schemaVersion}`
      : `schema ${upgradedFrom}, brought to ${schemaVersion} as a server's start would`;
  io.out(
    `Restored ${file} (${FORMAT_WORDS[format]}, ${schema}) into ${storeName}: ${describeRowCounts(counts)}.\n` +
      "Servers running on this store reload it within a second.\n",
  );
}

/**
 * A live SQLite store (not a backup) may hold recent commits only in its `-wal` file beside it,
 * which a copy of the main file alone would silently lose; a sentence saying so, or `undefined`.
 */
function explainLiveDatabase(file: string): string | undefined {
  try {
    if (statSync(`${file}-wal`).size === 0) return undefined;
  } catch {
    return undefined;
  }
  return `${file} is a store in use, with recent changes still in ${file}-wal: back it up with backup (on its DATA_DIR) and restore that file`;
}

/** Reads FILE, refusing a bad one before any store is opened (or, for SQLite, created). */
async function prepareSource(io: CliIo, command: string, file: string): Promise<ReadyBackup | number> {
  const refuse = (sentence: string) => (io.err(`${command}: ${sentence}\n`), EXIT.failure);
  const bytes = readSourceFile(file);
  if (typeof bytes === "string") return refuse(bytes);
  const live = explainLiveDatabase(file);
  if (live !== undefined) return refuse(live);
  const backup = await readBackupSource({ name: file, bytes });
  return backup instanceof AdminProblem ? reportProblem(io, command, backup, "") : backup;
}

/** `restore` and `import`: the same loading, under the name the user typed. */
async function runRestore(command: string, args: string[], { io, openStore, storeName }: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { force: { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const file = parseFile(positionals, `to ${command}, a backup or an export`);
  const backup = await prepareSource(io, command, file);
  if (typeof backup === "number") return backup;
  // Restoring into a DATA_DIR without a store is the point: the store is made there, as a first start would.
  const restored = await withStore(
    () => openStore({ create: true }),
    (store) => loadBackup(store, backup, values.force),
  );
  const hint =
    ` (${storeName ?? "the configured store"}). With --force, ${command} replaces everything in it; ` +
    "back it up first: bun run cli backup FILE";
  if (restored instanceof AdminProblem) return reportProblem(io, command, restored, hint);
  printRestored(io, file, restored, storeName ?? "the store", values.json);
  return EXIT.ok;
}

const RESTORE_RULES = `FILE may be a backup (an SQLite database) or an export (JSON), from either engine: the content
says which. The store must be empty (no keys, users, sessions, refresh tokens or passkeys; what a
first start makes by itself, such as a signing key, is replaced); --force replaces whatever it
holds. Everything is loaded in one transaction: all of it or nothing. Servers running on the store
reload it within a second, no restart. Hashes are loaded as they are: every key, password and
session that worked before works again, and nothing is decoded or hashed again.

A backup of an older schema is brought up to date in memory by the migrations a server runs at its
start (FILE is never changed); one of a newer schema is refused: use that newer tokengate.
With an SQLite store, a DATA_DIR without one gets a new store.
  --force   replace what the store holds
  --json    print what was loaded as a JSON object
Exit codes: 0 loaded, 1 FILE unreadable or not a backup, 2 usage error, 4 the store is not empty.
`;

const restoreCommand: Command = {
  summary: ["restore FILE [--force] [--json]", "load a backup or an export into this store"],
  help: `Usage: bun run cli restore FILE [--force] [--json]

Loads FILE (from backup or export --json) into the store that STORE_URL or DATA_DIR names.
${RESTORE_RULES}`,
  run: (args, context) => runRestore("restore", args, context),
};

const importCommand: Command = {
  summary: ["import FILE [--force] [--json]", "load an export into this store, e.g. on another engine"],
  help: `Usage: bun run cli import FILE [--force] [--json]

Loads an export (export --json) into the store that STORE_URL or DATA_DIR names: this is how a
store moves from SQLite to PostgreSQL or back. It is the same as restore.
${RESTORE_RULES}`,
  run: (args, context) => runRestore("import", args, context),
};

/** In the order the main help lists them. */
export const backupCommands: CommandTable = {
  backup: backupCommand,
  restore: restoreCommand,
  export: exportCommand,
  import: importCommand,
};
