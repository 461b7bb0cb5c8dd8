/**
 * Whole-store copies (store/sql-export.ts, table-shapes.ts, snapshot-json.ts, backup-files.ts):
 * the tables read from the migrations match what each engine really has; a store exported from
 * either engine and imported into either holds the same rows; an import is all or nothing, needs an
 * empty store unless it replaces, checks the schema version and moves the revision; old backups are
 * migrated in memory, newer ones refused; the JSON reader never throws.
 */
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { generateSigningKey } from "../../auth/secrets/jwt.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { readBackup } from "../../auth/store/backup-files.ts";
import { LATEST_SCHEMA } from "../../auth/store/schema.ts";
import { readSnapshot } from "../../auth/store/sql-export.ts";
import { migrateSchema } from "../../auth/store/sql-store.ts";
import { formatSnapshotJson, parseSnapshotJson } from "../../auth/store/snapshot-json.ts";
import { openSqliteDriver } from "../../auth/store/sqlite.ts";
import type { SnapshotRow, Store, StoreSnapshot } from "../../auth/store/store.ts";
import { describeCopiedTables, type ColumnKind } from "../../auth/store/table-shapes.ts";
import { makeTempDir } from "../support/harness.ts";
import { createTestDatabase } from "../support/stores.ts";
import { engines, newKey, postgres, type Engine } from "./engines.ts";

const PASSWORD_HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

/** A store with a row in every table a person or a server fills: a rotated key (replaced_by points forward), a user, a passkey… */
async function fillStore(store: Store): Promise<void> {
  // Only a store without credentials takes a pairing code.
  await store.issuePairingCode(digestToken("123456"), 1_000, 301_000);
  const first = newKey({ name: "lamp" }).record;
  await store.insertKey(first);
  await store.rotateKey(first.id, newKey({ name: "lamp", createdAt: 2_000 }).record, 3_000);
  await store.insertKey(newKey({ name: "tablet", expiresAt: 9_000_000_000_000 }).record);
  await store.recordUsage([{ id: first.id, at: 2_500, addr: "10.0.0.7" }]);
  await store.insertUser({ username: "ann", passwordHash: PASSWORD_HASH, roles: ["admin"], createdAt: 1_000 });
  await store.setPasskeyRequired("ann", true, 1_500);
  await store.ensureSigningKey(await generateSigningKey("EdDSA", 1_000));
  await store.insertRefreshToken({
    id: "rt-1",
    familyId: "fam-1",
    secretHash: digestToken("rt-1"),
    subject: "user:ann",
    scopes: ["data:read"],
    roles: ["admin"],
    clientId: "tokengate",
    createdAt: 1_000,
    expiresAt: 9_000_000_000_000,
  });
  await store.revokeAccessToken("jti-1", 9_000_000_000_000, 1_000);
  await store.startBan("addr:192.0.2.9", 1_000, 60_000, 3_600_000, 86_400_000);
  await store.insertSession({
    id: "00000000000000a1",
    secretHash: digestToken("session"),
    subject: "user:ann",
    scopes: ["data:read"],
    roles: ["admin"],
    method: "passkey",
    createdAt: 1_000,
    lastSeenAt: 1_000,
    expiresAt: 9_000_000_000_000,
    createdAddr: "10.0.0.7",
  });
  const publicKey = new Uint8Array([0xa5, 0x01, 0x02, 0x03, 0x26, 0x00, 0xff]);
  await store.insertPasskey({
    id: "cred-1",
    username: "ann",
    publicKey,
    counter: 4,
    transports: ["usb", "nfc"],
    name: "yubi",
    createdAt: 1_000,
  });
  await store.recordAppScopes(["sensors:read"], 1_000);
}

/** Rows in a fixed order whatever the engine's collation. */
function sorted(snapshot: StoreSnapshot): Map<string, SnapshotRow[]> {
  const key = (row: SnapshotRow) => String(Object.values(row)[0]);
  return new Map([...snapshot.tables].map(([table, rows]) => [table, rows.toSorted((a, b) => (key(a) < key(b) ? -1 : 1))]));
}

const NAMED: ReadonlyArray<[string, Engine, boolean]> = engines;
const pairs = NAMED.flatMap(([from, fromEngine, fromUp]) =>
  NAMED.map(([to, toEngine, toUp]) => [`${from} to ${to}`, fromEngine, toEngine, fromUp && toUp] as const),
);

describe("the tables a copy holds", () => {
  test("are read from the migrations: every table but the revision counter, in the order they were made", () => {
    const names = describeCopiedTables(LATEST_SCHEMA).map((shape) => shape.name);
    expect(names.slice(0, 3)).toEqual(["api_keys", "users", "signing_keys"]);
    expect(names).not.toContain("store_revision");
    expect(names.indexOf("users")).toBeLessThan(names.indexOf("passkeys"));
    const keys = describeCopiedTables(LATEST_SCHEMA)[0]!;
    expect(keys.columns.filter((column) => column.selfReference).map((column) => column.name)).toEqual(["replaced_by"]);
    expect(keys.columns.find((column) => column.primaryKey)?.name).toBe("id");
    // Schema 7 had no sessions, and its users no passkey_required.
    expect(describeCopiedTables(7).map((shape) => shape.name)).not.toContain("sessions");
    expect(describeCopiedTables(7)[1]!.columns.map((column) => column.name)).not.toContain("passkey_required");
  });

  test("match SQLite's own catalog: names, columns in order, kinds, references to the same table", async () => {
    using dir = makeTempDir();
    const file = join(dir.path, "tokengate.db");
    const driver = openSqliteDriver(file);
    await migrateSchema(driver);
    await driver.close();
    const db = new Database(file, { readonly: true });
    const kinds: Record<string, ColumnKind> = { INTEGER: "int", TEXT: "text", BLOB: "bytes" };
    const tables = db
      .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'store_revision' ORDER BY rowid")
      .all()
      .map(({ name }) => {
        const columns = db.query<{ name: string; type: string }, [string]>("SELECT name, type FROM pragma_table_info(?)").all(name);
        const self = db
          .query<{ from: string }, [string, string]>('SELECT "from" FROM pragma_foreign_key_list(?) WHERE "table" = ?')
          .all(name, name);
        return { name, columns: columns.map((column) => [column.name, kinds[column.type], self.some((ref) => ref.from === column.name)]) };
      });
    db.close();
    const shapes: unknown = describeCopiedTables(LATEST_SCHEMA).map(({ name, columns }) => ({
      name,
      columns: columns.map((c) => [c.name, c.kind, c.selfReference]),
    }));
    expect(shapes).toEqual(tables);
  });

  test.skipIf(!postgres.available)("match PostgreSQL's catalog: names, columns in order, kinds", async () => {
    await using database = await createTestDatabase();
    const { openPostgresStore } = await import("../../auth/store/postgres.ts");
    await (await openPostgresStore(database.url)).close();
    const sql = new SQL(database.url, { max: 1 });
    try {
      const rows = (await sql.unsafe(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name NOT IN ('store_revision', 'tokengate_schema')
         ORDER BY table_name, ordinal_position`,
      )) as Array<{ table_name: string; column_name: string; data_type: string }>;
      const kinds: Record<string, ColumnKind> = { bigint: "int", text: "text", bytea: "bytes" };
      const catalog = new Map<string, string[]>();
      for (const row of rows)
        catalog.set(row.table_name, [...(catalog.get(row.table_name) ?? []), `${row.column_name}:${kinds[row.data_type]}`]);
      const shapes = new Map(
        describeCopiedTables(LATEST_SCHEMA).map((shape) => [shape.name, shape.columns.map((c) => `${c.name}:${c.kind}`)]),
      );
      expect(new Map([...catalog].toSorted())).toEqual(new Map([...shapes].toSorted()));
    } finally {
      await sql.close();
    }
  });
});

describe.each(pairs)("a store copied from %s", (_name, fromEngine, toEngine, available) => {
  const it = available ? test : test.skip;

  it("holds the same rows, hashes and bytes as they were; the JSON form reads back the same; the revision moves", async () => {
    await using from = await fromEngine(1);
    await using to = await toEngine(1);
    const source = from.stores[0]!;
    const target = to.stores[0]!;
    await fillStore(source);
    const snapshot = await source.exportSnapshot();
    expect(snapshot.schemaVersion).toBe(LATEST_SCHEMA);
    for (const table of [
      "api_keys",
      "users",
      "signing_keys",
      "refresh_tokens",
      "sessions",
      "passkeys",
      "bans",
      "pairing_code",
      "app_scopes",
    ]) {
      expect(snapshot.tables.get(table)?.length ?? 0).toBeGreaterThan(0);
    }
    const parsed = parseSnapshotJson(formatSnapshotJson(snapshot, { exportedAt: 5_000, engine: source.engine }));
    expect(parsed.ok && sorted(parsed.snapshot)).toEqual(sorted(snapshot));

    const before = await target.changeMarker();
    const outcome = await target.importSnapshot(snapshot, false);
    expect(outcome.kind).toBe("imported");
    expect(await target.changeMarker()).not.toBe(before);
    expect(sorted(await target.exportSnapshot())).toEqual(sorted(snapshot));
    expect(await target.listKeys()).toEqual(await source.listKeys());
    expect(await target.getUser("ann")).toEqual(await source.getUser("ann"));
    expect(await target.listPasskeys()).toEqual(await source.listPasskeys());
    expect(await target.listSigningKeys()).toEqual(await source.listSigningKeys());
  });
});

describe.each(engines)("importing into a store on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("needs an empty store unless it replaces; what a first start makes does not count", async () => {
    await using db = await engine(2);
    const [source, target] = db.stores as [Store, Store];
    // Both stores share one database here: fill it, export, then clear it by replacing with an empty snapshot.
    await fillStore(source);
    const full = await source.exportSnapshot();
    const empty: StoreSnapshot = { schemaVersion: LATEST_SCHEMA, tables: new Map([...full.tables].map(([table]) => [table, []])) };
    const marker = await target.changeMarker();
    const refused = await target.importSnapshot(empty, false);
    expect(refused.kind).toBe("not_empty");
    expect(refused.kind === "not_empty" && Object.fromEntries(refused.counts)).toEqual({
      api_keys: 3,
      users: 1,
      refresh_tokens: 1,
      sessions: 1,
      passkeys: 1,
    });
    expect(await target.changeMarker()).toBe(marker);
    expect((await target.importSnapshot(empty, true)).kind).toBe("imported");
    expect(await target.listKeys()).toEqual([]);
    // A first start's signing key alone leaves the store empty: the import replaces it.
    await target.ensureSigningKey(await generateSigningKey("EdDSA", 9_000));
    expect((await target.importSnapshot(full, false)).kind).toBe("imported");
    const kids = full.tables.get("signing_keys")!.map((row) => String(row.kid));
    expect((await target.listSigningKeys()).map((key) => key.kid)).toEqual(kids);
  });

  it("is all or nothing, and refuses a snapshot of another schema version", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await fillStore(store);
    const before = await store.exportSnapshot();
    const users = [{ ...before.tables.get("users")![0]!, username: "bob", password_hash: "not a hash" }];
    const broken: StoreSnapshot = { ...before, tables: new Map([...before.tables, ["users", users]]) };
    await expect(store.importSnapshot(broken, true)).rejects.toThrow();
    expect(sorted(await store.exportSnapshot())).toEqual(sorted(before));
    const older = await store.importSnapshot({ ...before, schemaVersion: LATEST_SCHEMA - 1 }, true);
    expect(older).toEqual({ kind: "schema_mismatch", store: LATEST_SCHEMA, snapshot: LATEST_SCHEMA - 1 });
  });
});

/** An SQLite database as an earlier tokengate left it (schema `version`), with one user in it. */
async function makeOldDatabase(file: string, version: number): Promise<void> {
  const driver = openSqliteDriver(file);
  await migrateSchema(driver, version);
  await driver.run("INSERT INTO users (username, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)", [
    "ann",
    PASSWORD_HASH,
    "viewer",
    1_000,
  ]);
  await driver.close();
}

describe("reading a backup", () => {
  test("an SQLite backup of an older schema is migrated in memory; the file stays as it was", async () => {
    using dir = makeTempDir();
    const file = join(dir.path, "old.db");
    await makeOldDatabase(file, 7);
    const bytes = await Bun.file(file).bytes();
    const reading = await readBackup(bytes);
    expect(reading.ok && reading.upgradedFrom).toBe(7);
    expect(reading.ok && reading.snapshot.schemaVersion).toBe(LATEST_SCHEMA);
    expect(reading.ok && reading.snapshot.tables.get("users")).toEqual([
      {
        username: "ann",
        password_hash: PASSWORD_HASH,
        roles: "viewer",
        created_at: 1_000,
        updated_at: 1_000,
        disabled_at: null,
        passkey_required: 0,
      },
    ]);
    expect(await Bun.file(file).bytes()).toEqual(bytes);
  });

  test("a JSON export of an older schema is migrated too, through a database in memory", async () => {
    using dir = makeTempDir();
    const file = join(dir.path, "old.db");
    await makeOldDatabase(file, 8);
    const driver = openSqliteDriver(file);
    const old = await driver.snapshot(readSnapshot);
    await driver.close();
    expect(old.schemaVersion).toBe(8);
    const reading = await readBackup(Buffer.from(formatSnapshotJson(old, { exportedAt: 1, engine: "sqlite" })));
    expect(reading.ok && reading.upgradedFrom).toBe(8);
    expect(reading.ok && reading.snapshot.tables.get("users")?.[0]?.username).toBe("ann");
    expect(reading.ok && reading.snapshot.tables.get("app_scopes")).toEqual([]);
  });

  test("a newer schema is refused, naming both versions, from SQLite and from JSON", async () => {
    using dir = makeTempDir();
    const file = join(dir.path, "new.db");
    await makeOldDatabase(file, LATEST_SCHEMA);
    const db = new Database(file);
    db.run(`PRAGMA user_version = ${LATEST_SCHEMA + 1}`);
    db.close();
    const fromSqlite = await readBackup(await Bun.file(file).bytes());
    const json = `{"format":"tokengate-store","format_version":1,"schema_version":${LATEST_SCHEMA + 1},"tables":{}}`;
    const fromJson = await readBackup(Buffer.from(json));
    for (const reading of [fromSqlite, fromJson]) {
      expect(reading.ok).toBe(false);
      expect(!reading.ok && reading.problem).toContain(
        `schema version ${LATEST_SCHEMA + 1}, newer than this tokengate's (schema ${LATEST_SCHEMA})`,
      );
    }
  });

  test("other files are refused with a sentence, never an exception", async () => {
    const problems = await Promise.all(
      [
        "",
        "hello",
        "{",
        "[]",
        '{"format":"other"}',
        '{"format":"tokengate-store","format_version":2}',
        '{"format":"tokengate-store","format_version":1,"schema_version":0}',
        `{"format":"tokengate-store","format_version":1,"schema_version":${LATEST_SCHEMA},"tables":{"nope":[]}}`,
        `{"format":"tokengate-store","format_version":1,"schema_version":${LATEST_SCHEMA},"tables":{}}`,
        "SQLite format 3\0" + "x".repeat(200),
      ].map(async (text) => {
        const reading = await readBackup(Buffer.from(text, "latin1"));
        return reading.ok ? "read" : reading.problem;
      }),
    );
    expect(problems).toEqual([
      "is empty",
      "is neither a tokengate backup (an SQLite database) nor an export (JSON from export --json)",
      expect.stringContaining("is not valid JSON"),
      expect.stringContaining("is neither a tokengate backup"),
      expect.stringContaining("not a tokengate export"),
      expect.stringContaining("format_version 2"),
      expect.stringContaining('no valid "schema_version"'),
      expect.stringContaining('a table "nope"'),
      expect.stringContaining('no "api_keys" table'),
      expect.stringContaining("SQLite cannot read it"),
    ]);
  });

  test("rows are checked column by column: missing, extra, wrong kind, bad base64", () => {
    const empty = Object.fromEntries(describeCopiedTables(LATEST_SCHEMA).map((shape) => [shape.name, [] as unknown[]]));
    const key = { id: "3f9a0c12be45", name: "lamp", secret_hash: Buffer.alloc(32).toString("base64"), scopes: "data:read" };
    const rest = { created_at: 1, expires_at: null, revoked_at: null, last_used_at: null, last_used_addr: null, replaced_by: null };
    const read = (row: unknown) => {
      const reading = parseSnapshotJson(
        JSON.stringify({
          format: "tokengate-store",
          format_version: 1,
          schema_version: LATEST_SCHEMA,
          tables: { ...empty, api_keys: [row] },
        }),
      );
      return reading.ok ? reading.snapshot.tables.get("api_keys") : reading.problem;
    };
    expect(read({ ...key, ...rest })).toEqual([{ ...key, ...rest, secret_hash: new Uint8Array(32) }]);
    expect(read({ ...key })).toContain('has no "created_at"');
    expect(read({ ...key, ...rest, extra: 1 })).toContain('a column "extra"');
    expect(read({ ...key, ...rest, created_at: 1.5 })).toContain('"created_at" that is not a whole number');
    expect(read({ ...key, ...rest, secret_hash: "not base64!" })).toContain('"secret_hash" that is not base64 bytes');
    expect(read("row")).toContain("tables.api_keys[0] that is not an object");
  });

  test("the JSON reader never throws, whatever it is given", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc
            .jsonValue()
            .map((value) => JSON.stringify({ format: "tokengate-store", format_version: 1, schema_version: LATEST_SCHEMA, tables: value })),
        ),
        (text) => {
          const reading = parseSnapshotJson(text);
          expect(typeof reading.ok).toBe("boolean");
        },
      ),
      { numRuns: 300 },
    );
  });
});
