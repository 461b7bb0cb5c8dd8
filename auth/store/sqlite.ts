/**
 * The embedded default engine: one `bun:sqlite` file under DATA_DIR, in WAL mode with full
 * synchronous commits. Transactions are queued in this process (a statement of one request never
 * lands inside another's transaction); other processes (the CLI) are kept apart by SQLite's own
 * write lock.
 */
import { Database } from "bun:sqlite";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { openMigratedStore, type SqlDriver, type SqlRunner, type SqlValue, type Store } from "./store.ts";

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

/** `file` is the database path; its directory is created readable only by this user. */
export function openSqliteDriver(file: string): SqlDriver {
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

  const statements = new Map<string, ReturnType<Database["query"]>>();
  const prepare = (text: string) => {
    let statement = statements.get(text);
    if (statement === undefined) {
      statement = db.query(numbered(text));
      statements.set(text, statement);
    }
    return statement;
  };
  const runner: SqlRunner = {
    all: async <T>(text: string, params: readonly SqlValue[] = []) => prepare(text).all(...params) as T[],
    run: async (text, params = []) => prepare(text).run(...params).changes,
  };

  return {
    dialect: "sqlite",
    all: (text, params) => serialized(() => runner.all(text, params)),
    run: (text, params) => serialized(() => runner.run(text, params)),
    transaction: (work) =>
      serialized(async () => {
        db.run("BEGIN IMMEDIATE");
        try {
          const result = await work(runner);
          db.run("COMMIT");
          return result;
        } catch (error) {
          db.run("ROLLBACK");
          throw error;
        }
      }),
    schemaVersion: async (tx) => (await tx.all<{ user_version: number }>("PRAGMA user_version"))[0]!.user_version,
    // PRAGMA takes no placeholders; the version is an integer from our own migration list.
    setSchemaVersion: async (tx, version) => void (await tx.run(`PRAGMA user_version = ${Math.trunc(version)}`)),
    announce: async () => {},
    // Nothing to push from a file: servers poll the revision.
    watch: async () => async () => {},
    close: () => serialized(async () => db.close(false)),
  };
}

export function openSqliteStore(file: string): Promise<Store> {
  return openMigratedStore(openSqliteDriver(file));
}
