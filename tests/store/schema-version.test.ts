/**
 * Reading the schema version without changing anything, as `tokengate doctor` does: from an
 * SQLite file's header (the same number as PRAGMA user_version) and from PostgreSQL's version
 * table, which may not exist yet.
 */
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { createPostgresRunner, inspectPostgresSchemaVersion, openPostgresStore } from "../../auth/store/postgres.ts";
import { LATEST_SCHEMA } from "../../auth/store/schema.ts";
import { inspectSqliteSchemaVersion } from "../../auth/store/sqlite.ts";
import { makeTempDir } from "../support/harness.ts";
import { createTestDatabase, openDataDirStore } from "../support/stores.ts";
import { postgres } from "./engines.ts";

describe("sqlite file header", () => {
  test("holds the version the migrations set, the same as PRAGMA user_version", async () => {
    using dir = makeTempDir();
    await (await openDataDirStore(dir.path)).close();
    const file = join(dir.path, DATABASE_FILE);
    expect(inspectSqliteSchemaVersion(file)).toBe(LATEST_SCHEMA);
    const db = new Database(file);
    db.run("PRAGMA user_version = 70000");
    db.close();
    expect(inspectSqliteSchemaVersion(file)).toBe(70000);
  });

  test("a file that is not an SQLite database has no version; a missing one throws", () => {
    using dir = makeTempDir();
    writeFileSync(join(dir.path, "short"), "SQLite format 3\0");
    writeFileSync(join(dir.path, "text"), "x".repeat(200));
    expect(inspectSqliteSchemaVersion(join(dir.path, "short"))).toBeUndefined();
    expect(inspectSqliteSchemaVersion(join(dir.path, "text"))).toBeUndefined();
    expect(() => inspectSqliteSchemaVersion(join(dir.path, "missing"))).toThrow();
  });
});

describe.skipIf(!postgres.available)("postgres version table", () => {
  test("absent before the first start (nothing is created by looking); the latest after it", async () => {
    await using database = await createTestDatabase();
    const sql = new SQL(database.url, { max: 1 });
    try {
      const runner = createPostgresRunner(sql);
      expect(await inspectPostgresSchemaVersion(runner)).toBeUndefined();
      expect(await inspectPostgresSchemaVersion(runner)).toBeUndefined();
      await (await openPostgresStore(database.url)).close();
      expect(await inspectPostgresSchemaVersion(runner)).toBe(LATEST_SCHEMA);
    } finally {
      await sql.close();
    }
  });
});
