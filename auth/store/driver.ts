/**
 * What an engine (sqlite.ts, postgres.ts) gives the SQL store: statements with `$1`-style
 * placeholders, serialized write transactions, the schema version, change announcements. And the
 * one place engine failures become `StoreError`s.
 */
import type { Dialect } from "./schema.ts";
import { StoreError } from "./types.ts";

/** A value bound to a `$1`-style placeholder. */
export type SqlValue = string | number | Uint8Array | null;

export interface SqlRunner {
  /** Rows of a query; statements use `$1, $2, …` placeholders on every engine. */
  all<T>(text: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Runs a statement; how many rows it changed. */
  run(text: string, params?: readonly SqlValue[]): Promise<number>;
}

/** Statements that run in a transaction the caller opened. */
export type Work<T> = (tx: SqlRunner) => Promise<T>;

/** What an engine gives `createSqlStore`: statements, serialized write transactions, migrations. */
export interface SqlDriver extends SqlRunner {
  readonly dialect: Dialect;
  /**
   * Runs `work` in one transaction that no other writer (in this process or another) interleaves
   * with: SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock. Rolled back if `work` throws.
   */
  transaction<T>(work: Work<T>): Promise<T>;
  /**
   * Runs `work` in one read-only transaction that sees a single committed state while other
   * processes go on writing (SQLite's WAL read transaction, PostgreSQL's REPEATABLE READ READ ONLY):
   * a whole-store export. `schemaVersion` is that state's, read in the same transaction.
   */
  snapshot<T>(work: (tx: SqlRunner, schemaVersion: number) => Promise<T>): Promise<T>;
  /**
   * Copies the whole database into `file` (new or empty) as one consistent state while others
   * write: SQLite's VACUUM INTO. false, copying nothing, on an engine without a database file of
   * its own (PostgreSQL, whose backup is the JSON export).
   */
  copyTo(file: string): Promise<boolean>;
  /**
   * The files the database lives in, which a backup must never be written over: SQLite's file and
   * the journal files beside it. None for a database server.
   */
  readonly files: readonly string[];
  schemaVersion(tx: SqlRunner): Promise<number>;
  setSchemaVersion(tx: SqlRunner, version: number): Promise<void>;
  /** Inside a write transaction that moved the revision: tells other processes at commit. */
  announce(tx: SqlRunner): Promise<void>;
  watch(onChange: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * Engine failures (a dropped connection, a full disk) become `StoreError`s with the engine's
 * message and no statement parameters, so callers can answer 503 instead of crashing.
 */
function failStore(error: unknown): never {
  if (error instanceof StoreError) throw error;
  throw new StoreError(error instanceof Error ? error.message : "the store failed", { cause: error });
}

function guardRunner(runner: SqlRunner): SqlRunner {
  return {
    all: <T>(text: string, params?: readonly SqlValue[]) => runner.all<T>(text, params).catch(failStore),
    run: (text, params) => runner.run(text, params).catch(failStore),
  };
}

/** The same driver, whose every statement, transaction and watch fails with a `StoreError`. */
export function guardDriver(engine: SqlDriver): SqlDriver {
  return {
    ...engine,
    ...guardRunner(engine),
    transaction: (work) => engine.transaction((tx) => work(guardRunner(tx))).catch(failStore),
    snapshot: (work) => engine.snapshot((tx, version) => work(guardRunner(tx), version)).catch(failStore),
    copyTo: (file) => engine.copyTo(file).catch(failStore),
    watch: (onChange) => engine.watch(onChange).catch(failStore),
  };
}
