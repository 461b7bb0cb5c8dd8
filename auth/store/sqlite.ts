/**
 * The embedded default engine: one `bun:sqlite` file under DATA_DIR, in WAL mode with full
 * synchronous commits. Transactions are queued in this process (a statement of one request never
 * lands inside another's transaction); other processes (the CLI) are kept apart by SQLite's own
 * write lock.
 */
import { Database } from "bun:sqlite";
import { closeSync, mkdirSync, openSync, readSync } from "node:fs";
import { dirname } from "node:path";
import type { SqlDriver, SqlRunner, SqlValue, Work } from "./driver.ts";
import { openMigratedStore } from "./sql-store.ts";
import type { Store } from "./types.ts";

/**
 * One transaction at a time in this process, across every connection it has opened: bun:sqlite
 * waits for a lock synchronously, so a second connection's BEGIN while the first one's
 * transaction awaits would block the very thread that has to finish it. A statement outside a
 * transaction waits for it to end too.
 */
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(work: () => Promise<T>): Promise<T> {
  const result = queue.then(work);
  queue = result.catch(() => undefined);
  return result;
}

/** `$1` (the store's placeholder style) → `?1` (SQLite's numbered one); the numbers are kept. */
const numbered = (text: string) => text.replace(/\$(\d+)/g, "?$1");

/** The schema version lives in SQLite's own slot for it, `PRAGMA user_version`. */
async function readUserVersion(tx: SqlRunner): Promise<number> {
  return (await tx.all<{ user_version: number }>("PRAGMA user_version"))[0]!.user_version;
}

/** PRAGMA takes no placeholders; the version is an integer from our own migration list. */
async function writeUserVersion(tx: SqlRunner, version: number): Promise<void> {
  await tx.run(`PRAGMA user_version = ${Math.trunc(version)}`);
}

/**
 * The schema version from the file alone, without opening the database: SQLite keeps
 * `PRAGMA user_version` at byte 60 of the file header (big-endian). For `tokengate doctor`, which
 * may run as another user: opening the file could leave WAL side files that user owns, which the
 * server then cannot write. `undefined` when the file is not an SQLite database; a file that
 * cannot be read throws.
 */
export function inspectSqliteSchemaVersion(file: string): number | undefined {
  const fd = openSync(file, "r");
  try {
    const header = Buffer.alloc(100);
    if (readSync(fd, header, 0, 100, 0) < 100 || header.toString("latin1", 0, 16) !== "SQLite format 3\0") return undefined;
    return header.readUInt32BE(60);
  } finally {
    closeSync(fd);
  }
}

/** Opens (creating if needed) the database file with the settings the store relies on. */
function openDatabaseFile(file: string): Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // A new database file is private from its first byte (SQLite gives its WAL files the same
  // mode); an existing one keeps the mode its owner chose, which `tokengate doctor` reports.
  closeSync(openSync(file, "a", 0o600));
  const db = new Database(file, { create: true, strict: true });
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA journal_mode = WAL");
  // FULL: an acknowledged write survives power loss too, not only a killed process; LAN boxes
  // lose power more often than they crash. Writes are rare (CLI actions, batched usage).
  db.run("PRAGMA synchronous = FULL");
  db.run("PRAGMA foreign_keys = ON");
  return db;
}

/** Statements on `db`, each text prepared once; not serialized (the driver does that). */
function createSqliteRunner(db: Database): SqlRunner {
  const statements = new Map<string, ReturnType<Database["query"]>>();
  const prepare = (text: string) => {
    let statement = statements.get(text);
    if (statement === undefined) {
      statement = db.query(numbered(text));
      statements.set(text, statement);
    }
    return statement;
  };
  return {
    all: async <T>(text: string, params: readonly SqlValue[] = []) => prepare(text).all(...params) as T[],
    run: async (text, params = []) => prepare(text).run(...params).changes,
  };
}

/** BEGIN IMMEDIATE takes SQLite's write lock at once, so two writers never deadlock upgrading. */
async function runTransaction<T>(db: Database, runner: SqlRunner, work: Work<T>): Promise<T> {
  db.run("BEGIN IMMEDIATE");
  try {
    const result = await work(runner);
    db.run("COMMIT");
    return result;
  } catch (error) {
    db.run("ROLLBACK");
    throw error;
  }
}

/**
 * A read-only transaction (deferred BEGIN): in WAL mode it keeps the state of its first read to
 * the end, while other connections and processes go on committing.
 */
async function runSnapshot<T>(db: Database, runner: SqlRunner, work: (tx: SqlRunner, schemaVersion: number) => Promise<T>): Promise<T> {
  db.run("BEGIN");
  try {
    return await work(runner, await readUserVersion(runner));
  } finally {
    // Nothing was written: ending the read transaction either way is the same.
    db.run("ROLLBACK");
  }
}

/** The driver over an open database, whichever way it was opened. */
function createSqliteDriver(db: Database, file?: string): SqlDriver {
  const runner = createSqliteRunner(db);
  return {
    dialect: "sqlite",
    files: file === undefined ? [] : ["", "-wal", "-shm", "-journal"].map((suffix) => `${file}${suffix}`),
    all: (text, params) => serialized(() => runner.all(text, params)),
    run: (text, params) => serialized(() => runner.run(text, params)),
    transaction: (work) => serialized(() => runTransaction(db, runner, work)),
    snapshot: (work) => serialized(() => runSnapshot(db, runner, work)),
    // VACUUM INTO reads one consistent state (a WAL read transaction) and writes a whole,
    // compacted database file in rollback-journal mode: one file, no side files to copy with it.
    copyTo: (file) => serialized(async () => (await runner.run("VACUUM INTO $1", [file]), true)),
    schemaVersion: readUserVersion,
    setSchemaVersion: writeUserVersion,
    announce: async () => {},
    // Nothing to push from a file: servers poll the revision.
    watch: async () => async () => {},
    close: () => serialized(async () => db.close(false)),
  };
}

/** `file` is the database path; its directory is created readable only by this user. */
export function openSqliteDriver(file: string): SqlDriver {
  return createSqliteDriver(openDatabaseFile(file), file);
}

/** SQLite's header bytes 18 and 19: 2 for a WAL-mode file, 1 for a rollback-journal one. */
const WAL_HEADER_OFFSETS = [18, 19] as const;

/**
 * A private, writable in-memory copy of a database file's bytes (a backup being read): the file
 * itself is never opened, so reading it leaves no side files and changes nothing. A whole file
 * whose header says WAL (a copy of a store taken while no server ran) reads the same in
 * rollback-journal mode, the only mode memory offers. `undefined` when SQLite cannot read it.
 */
export function openSqliteCopy(bytes: Uint8Array): SqlDriver | undefined {
  const copy = new Uint8Array(bytes);
  if (WAL_HEADER_OFFSETS.every((offset) => copy[offset] === 2)) for (const offset of WAL_HEADER_OFFSETS) copy[offset] = 1;
  try {
    const db = Database.deserialize(copy, { strict: true });
    db.run("PRAGMA foreign_keys = ON");
    // A damaged or cut-short file fails here rather than halfway through a read.
    db.query("SELECT count(*) FROM sqlite_master").all();
    return createSqliteDriver(db);
  } catch {
    return undefined;
  }
}

/** An empty database in memory, gone when closed (for bringing an old export up to the latest schema). */
export function openSqliteMemory(): SqlDriver {
  const db = new Database(":memory:", { strict: true });
  db.run("PRAGMA foreign_keys = ON");
  return createSqliteDriver(db);
}

export function openSqliteStore(file: string): Promise<Store> {
  return openMigratedStore(openSqliteDriver(file));
}
