/**
 * Whole-store copies over SQL, the same statements on both engines: every table of the schema
 * (table-shapes.ts) read in one consistent snapshot, and loaded back in one change. Rows are copied
 * as stored: digests and argon2id hashes stay what they are, nothing is decoded or hashed again.
 *
 * Unlike the per-record modules this one also gets the driver itself: a snapshot is a read-only
 * transaction of the engine's, a file copy is SQLite's VACUUM INTO, and an import checks the
 * schema version in its own transaction.
 */
import type { SqlDriver, SqlRunner, SqlValue } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { selectCount, toBytes } from "./sql-rows.ts";
import { describeCopiedTables, type ColumnShape, type TableShape } from "./table-shapes.ts";
import { StoreError, type BackupStore, type SnapshotImport, type SnapshotRow, type SnapshotValue, type StoreSnapshot } from "./types.ts";

/**
 * What a store's first start makes by itself (a signing key, a pairing code, a program's scopes)
 * and what ends by itself (bans, revoked access tokens, devices waiting for a person): replaced by
 * an import without asking.
 * Every other table, one a later migration adds included, holds what people made, so a store
 * with a row in any of them is not empty.
 */
const REPLACED_WITHOUT_ASKING = new Set([
  "signing_keys",
  "app_scopes",
  "pairing_code",
  "bans",
  "revoked_access_tokens",
  "device_authorizations",
]);

const quote = (name: string) => `"${name}"`;

/** One stored value as a snapshot holds it: PostgreSQL's BIGINT strings become numbers, its Buffers bytes. */
function readValue(value: unknown, column: ColumnShape, table: string): SnapshotValue {
  if (value === null || value === undefined) return null;
  if (column.kind === "bytes" && value instanceof Uint8Array) return toBytes(value);
  if (column.kind === "text" && typeof value === "string") return value;
  if (column.kind === "int" && (typeof value === "number" || typeof value === "string" || typeof value === "bigint")) {
    const number = Number(value);
    if (Number.isSafeInteger(number)) return number;
  }
  throw new StoreError(`${table}.${column.name} holds a value that is not ${column.kind === "int" ? "a whole number" : column.kind}`);
}

function readRow(row: Readonly<Record<string, unknown>>, shape: TableShape): SnapshotRow {
  return Object.fromEntries(shape.columns.map((column) => [column.name, readValue(row[column.name], column, shape.name)]));
}

/** Every copied table of a store at `version`, through a transaction that sees one state. */
export async function readSnapshot(tx: SqlRunner, version: number): Promise<StoreSnapshot> {
  const tables = new Map<string, SnapshotRow[]>();
  for (const shape of describeCopiedTables(version)) {
    const columns = shape.columns.map((column) => quote(column.name)).join(", ");
    const rows = await tx.all<Record<string, unknown>>(`SELECT ${columns} FROM ${shape.name} ORDER BY 1`);
    tables.set(
      shape.name,
      rows.map((row) => readRow(row, shape)),
    );
  }
  return { schemaVersion: version, tables };
}

/**
 * Inserts one table's rows. A column that points at a row of the same table (a rotated key's
 * `replaced_by`, naming a newer key) is filled in once every row is in, so the order of the rows
 * never trips the reference.
 */
async function insertTable(tx: SqlRunner, shape: TableShape, rows: readonly SnapshotRow[]): Promise<void> {
  const { columns } = shape;
  const names = columns.map((column) => quote(column.name)).join(", ");
  const insert = `INSERT INTO ${shape.name} (${names}) VALUES (${columns.map((_, index) => `$${index + 1}`).join(", ")})`;
  for (const row of rows)
    await tx.run(
      insert,
      columns.map((column): SqlValue => (column.selfReference ? null : (row[column.name] ?? null))),
    );
  const later = columns.filter((column) => column.selfReference);
  if (later.length === 0) return;
  const key = columns.find((column) => column.primaryKey);
  if (key === undefined) throw new StoreError(`${shape.name} points at its own rows but has no primary key to find them by`);
  for (const column of later) {
    const update = `UPDATE ${shape.name} SET ${quote(column.name)} = $1 WHERE ${quote(key.name)} = $2`;
    for (const row of rows) {
      const value = row[column.name] ?? null;
      if (value !== null) await tx.run(update, [value, row[key.name] ?? null]);
    }
  }
}

/** Inserts every table of the snapshot, tables that others point at first; the tables must be empty. */
export async function insertSnapshot(tx: SqlRunner, snapshot: StoreSnapshot): Promise<void> {
  for (const shape of describeCopiedTables(snapshot.schemaVersion)) await insertTable(tx, shape, snapshot.tables.get(shape.name) ?? []);
}

/** Rows per table of a snapshot. */
export function countSnapshotRows(snapshot: StoreSnapshot): Map<string, number> {
  return new Map([...snapshot.tables].map(([table, rows]) => [table, rows.length]));
}

/** The tables that hold what people made (keys, users, sessions…), with their row counts; empty for an empty store. */
async function countHeldRecords(tx: SqlRunner, shapes: readonly TableShape[]): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  for (const shape of shapes) {
    if (REPLACED_WITHOUT_ASKING.has(shape.name)) continue;
    const count = await selectCount(tx, `SELECT count(*) AS n FROM ${shape.name}`);
    if (count > 0) held.set(shape.name, count);
  }
  return held;
}

/** In the import's transaction: checks the version and the emptiness, clears every copied table, loads the snapshot. */
async function loadSnapshot(tx: SqlRunner, driver: SqlDriver, snapshot: StoreSnapshot, replace: boolean): Promise<SnapshotImport> {
  const version = await driver.schemaVersion(tx);
  if (version !== snapshot.schemaVersion) return { kind: "schema_mismatch", store: version, snapshot: snapshot.schemaVersion };
  const shapes = describeCopiedTables(version);
  const held = await countHeldRecords(tx, shapes);
  if (held.size > 0 && !replace) return { kind: "not_empty", counts: held };
  // Tables that point at others go first: the reverse of the order they were made in.
  for (const shape of shapes.toReversed()) await tx.run(`DELETE FROM ${shape.name}`);
  await insertSnapshot(tx, snapshot);
  return { kind: "imported", counts: countSnapshotRows(snapshot) };
}

/** The store's whole-store copies over a driver whose failures are already `StoreError`s. */
export function createBackupMethods(sql: SqlOperations, driver: SqlDriver): BackupStore {
  return {
    engine: driver.dialect,
    exportSnapshot: () => driver.snapshot(readSnapshot),
    copyDatabase: (file) => driver.copyTo(file),
    files: driver.files,
    // A change: the revision moves and PostgreSQL notifies, so running servers reload what was loaded.
    importSnapshot: (snapshot, replace) =>
      sql.changeWhen(
        (outcome) => outcome.kind === "imported",
        (tx) => loadSnapshot(tx, driver, snapshot, replace),
      ),
  };
}
