/**
 * The shared engine for several instances: PostgreSQL through `Bun.SQL`. Write transactions take
 * one advisory lock, so they are serialized across instances exactly as SQLite serializes
 * writers (writes are rare: CLI actions, sign-ins, batched usage). Every auth-relevant commit
 * sends a NOTIFY; each server LISTENs and reloads at once instead of waiting for its next poll.
 */
import { SQL } from "bun";
import type { SqlDriver, SqlRunner } from "./driver.ts";
import { openMigratedStore } from "./sql-store.ts";
import type { Store } from "./types.ts";

const CHANNEL = "tokengate_changes";
/** Arbitrary but fixed: the advisory lock every tokengate writer takes ("tkgt" in ASCII). */
const WRITE_LOCK = 0x746b6774;

/** Statements on a `Bun.SQL` pool or transaction, as the store runs them (also the doctor's). */
export function createPostgresRunner(sql: SQL): SqlRunner {
  return {
    all: async <T>(text: string, params: readonly unknown[] = []) => [...(await sql.unsafe(text, [...params]))] as T[],
    run: async (text, params = []) => {
      const result = await sql.unsafe(text, [...params]);
      return Number(result.count ?? 0);
    },
  };
}

/** PostgreSQL has no slot for a schema version: a one-row table of tokengate's own holds it. */
const SCHEMA_TABLE_CREATE = "CREATE TABLE IF NOT EXISTS tokengate_schema (version INTEGER NOT NULL)";

async function selectSchemaVersion(runner: SqlRunner): Promise<number> {
  const rows = await runner.all<{ version: number }>("SELECT version FROM tokengate_schema");
  return rows[0]?.version ?? 0;
}

/** Inside the migration transaction: creates the version table on first use. */
async function readSchemaVersion(tx: SqlRunner): Promise<number> {
  await tx.run(SCHEMA_TABLE_CREATE);
  return selectSchemaVersion(tx);
}

async function writeSchemaVersion(tx: SqlRunner, version: number): Promise<void> {
  if ((await tx.run("UPDATE tokengate_schema SET version = $1", [version])) === 0) {
    await tx.run("INSERT INTO tokengate_schema (version) VALUES ($1)", [version]);
  }
}

/**
 * The schema version without creating or changing anything, for `tokengate doctor`; `undefined`
 * while the database has no tokengate tables (the first start creates them).
 */
export async function inspectPostgresSchemaVersion(runner: SqlRunner): Promise<number | undefined> {
  const present = await runner.all<{ present: boolean }>("SELECT to_regclass('tokengate_schema') IS NOT NULL AS present");
  return present[0]?.present === true ? selectSchemaVersion(runner) : undefined;
}

export interface PostgresOptions {
  /** Connections in the pool (the LISTEN connection is extra). */
  readonly max?: number;
  /** Seconds to wait for a connection before a query fails. */
  readonly connectionTimeout?: number;
}

export function openPostgresDriver(url: string, options: PostgresOptions = {}): SqlDriver {
  const sql = new SQL(url, {
    max: options.max ?? 4,
    connectionTimeout: options.connectionTimeout ?? 5,
    idleTimeout: 60,
    // Prepared statements are per connection; the store's statement texts are few and fixed.
    prepare: true,
  });
  const pool = createPostgresRunner(sql);
  return {
    dialect: "postgres",
    ...pool,
    transaction: (work) =>
      sql.begin(async (tx) => {
        await tx.unsafe("SELECT pg_advisory_xact_lock($1)", [WRITE_LOCK]);
        return work(createPostgresRunner(tx as unknown as SQL));
      }),
    // One state for the whole read, while writers go on; read-only, so it takes no lock and waits for none.
    snapshot: (work) =>
      sql.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (tx) => {
        const runner = createPostgresRunner(tx as unknown as SQL);
        return work(runner, await selectSchemaVersion(runner));
      }),
    // No database file to copy here: a PostgreSQL backup is the JSON export.
    copyTo: async () => false,
    files: [],
    schemaVersion: readSchemaVersion,
    setSchemaVersion: writeSchemaVersion,
    // Delivered at commit, dropped on rollback: a listener never reloads for a change that did not happen.
    announce: async (tx) => void (await tx.all("SELECT pg_notify($1, '')", [CHANNEL])),
    async watch(onChange) {
      // After a reconnect notifications may have been missed: onlisten runs again, so reload then too.
      const subscription = await sql.listen(
        CHANNEL,
        () => onChange(),
        () => onChange(),
      );
      return () => subscription.unlisten();
    },
    close: () => sql.close({ timeout: 5 }),
  };
}

export function openPostgresStore(url: string, options?: PostgresOptions): Promise<Store> {
  return openMigratedStore(openPostgresDriver(url, options));
}
