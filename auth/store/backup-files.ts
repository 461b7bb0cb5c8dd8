/**
 * Reading a backup, whichever kind it is: an SQLite database (`tokengate backup` of an SQLite
 * store) or the JSON export (`tokengate export --json`, the backup of a PostgreSQL store), told
 * apart by their content. Both become a `StoreSnapshot` of the latest schema: a backup of an older
 * schema is brought up to date in memory by the same migrations a server runs at its start, so the
 * file itself is never opened for writing and never changed. One of a newer schema is refused.
 */
import { LATEST_SCHEMA } from "./schema.ts";
import { insertSnapshot, readSnapshot } from "./sql-export.ts";
import { migrateSchema } from "./sql-store.ts";
import { explainNewerSchema, parseSnapshotJson } from "./snapshot-json.ts";
import { openSqliteCopy, openSqliteMemory } from "./sqlite.ts";
import type { StoreSnapshot } from "./types.ts";

export type BackupFormat = "sqlite" | "json";

export type BackupReading =
  | {
      readonly ok: true;
      readonly format: BackupFormat;
      /** At the latest schema. */
      readonly snapshot: StoreSnapshot;
      /** The schema the backup was written at, when older than the latest (it was migrated on reading). */
      readonly upgradedFrom: number | undefined;
    }
  | { readonly ok: false; readonly problem: string };

const fail = (problem: string): BackupReading => ({ ok: false, problem });

const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error));

const SQLITE_MAGIC = new TextEncoder().encode("SQLite format 3\0");

const startsWithSqliteMagic = (bytes: Uint8Array) => bytes.length >= 100 && SQLITE_MAGIC.every((byte, index) => bytes[index] === byte);

/** An SQLite backup, read from a private copy in memory (and migrated there when it is older). */
async function readSqliteBackup(bytes: Uint8Array): Promise<BackupReading> {
  const driver = openSqliteCopy(bytes);
  if (driver === undefined) return fail("starts like an SQLite database, but SQLite cannot read it (cut short or damaged?)");
  let version = 0;
  try {
    version = await driver.schemaVersion(driver);
    if (version === 0) return fail("is an SQLite database, but not a tokengate store (it has no schema version)");
    if (version > LATEST_SCHEMA) return fail(explainNewerSchema(version));
    if (version < LATEST_SCHEMA) await migrateSchema(driver);
    const snapshot = await driver.snapshot(readSnapshot);
    return { ok: true, format: "sqlite", snapshot, upgradedFrom: version < LATEST_SCHEMA ? version : undefined };
  } catch (error) {
    return fail(`is an SQLite database of schema ${version}, but not a tokengate store that can be read (${describeError(error)})`);
  } finally {
    await driver.close();
  }
}

/**
 * An export, loaded into an empty database in memory at its schema version (and migrated there when
 * older): every row meets the schema's rules here, before a real store is touched, and a refusal
 * names the file rather than coming from halfway through a restore.
 */
async function checkSnapshot(snapshot: StoreSnapshot): Promise<BackupReading> {
  const driver = openSqliteMemory();
  const older = snapshot.schemaVersion < LATEST_SCHEMA;
  try {
    await migrateSchema(driver, snapshot.schemaVersion);
    await driver.transaction((tx) => insertSnapshot(tx, snapshot));
    if (older) await migrateSchema(driver);
    return {
      ok: true,
      format: "json",
      snapshot: await driver.snapshot(readSnapshot),
      upgradedFrom: older ? snapshot.schemaVersion : undefined,
    };
  } catch (error) {
    const why = describeError(error);
    return fail(
      older
        ? `holds schema ${snapshot.schemaVersion}, and its rows could not be brought to schema ${LATEST_SCHEMA} (${why})`
        : `holds rows the store's rules refuse (${why}); was it edited by hand?`,
    );
  } finally {
    await driver.close();
  }
}

/**
 * A backup's bytes as a snapshot of the latest schema; never throws. A problem is a sentence to
 * follow the file's name ("… is empty").
 */
export async function readBackup(bytes: Uint8Array): Promise<BackupReading> {
  if (bytes.length === 0) return fail("is empty");
  if (startsWithSqliteMagic(bytes)) return readSqliteBackup(bytes);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = "";
  }
  if (!text.trimStart().startsWith("{")) {
    return fail("is neither a tokengate backup (an SQLite database) nor an export (JSON from export --json)");
  }
  const parsed = parseSnapshotJson(text);
  return parsed.ok ? checkSnapshot(parsed.snapshot) : fail(parsed.problem);
}
