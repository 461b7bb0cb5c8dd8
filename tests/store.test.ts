import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { generateApiKey } from "../auth/keys.ts";
import { DATABASE_FILE, LATEST_SCHEMA, openSqliteStore, StoreError, type NewKey } from "../auth/store.ts";
import { digestToken } from "../auth/tokens.ts";
import { makeTempDir, ROOT } from "./support/harness.ts";
import { trackSecret } from "./support/secrets.ts";

function newKey(overrides: Partial<NewKey> = {}): { record: NewKey; secret: string } {
  const key = generateApiKey();
  trackSecret(key.token);
  return {
    secret: key.secret,
    record: { id: key.id, name: "lamp", scopes: ["data:read", "ws:connect"], secretHash: digestToken(key.secret), createdAt: 1_000, expiresAt: null, ...overrides },
  };
}

describe("schema", () => {
  test("a new database is migrated to the latest version, WAL, foreign keys on, STRICT tables", () => {
    using dir = makeTempDir();
    openSqliteStore(dir.path).close();
    const db = new Database(join(dir.path, DATABASE_FILE));
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: LATEST_SCHEMA });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    const table = db.query("SELECT sql FROM sqlite_master WHERE name = 'api_keys'").get() as { sql: string };
    expect(table.sql).toContain("STRICT");
    // STRICT refuses a value of the wrong type instead of storing it.
    expect(() =>
      db.run("INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES ('aaaaaaaaaaaa', 'x', zeroblob(32), '', 'yesterday')"),
    ).toThrow();
    db.close();
  });

  test("reopening applies nothing twice", () => {
    using dir = makeTempDir();
    const store = openSqliteStore(dir.path);
    store.insertKey(newKey().record);
    store.close();
    const again = openSqliteStore(dir.path);
    expect(again.listKeys()).toHaveLength(1);
    again.close();
  });

  test("a database from a newer tokengate is refused, not damaged", () => {
    using dir = makeTempDir();
    openSqliteStore(dir.path).close();
    const db = new Database(join(dir.path, DATABASE_FILE));
    db.run(`PRAGMA user_version = ${LATEST_SCHEMA + 1}`);
    db.close();
    expect(() => openSqliteStore(dir.path)).toThrow(StoreError);
  });
});

describe("keys", () => {
  test("round trip; only the SHA-256 of the secret reaches the disk", () => {
    using dir = makeTempDir();
    const store = openSqliteStore(dir.path);
    const { record, secret } = newKey({ expiresAt: 5_000 });
    store.insertKey(record);
    expect(store.getKey(record.id)).toEqual({
      ...record,
      revokedAt: null,
      lastUsedAt: null,
      lastUsedAddr: null,
      replacedBy: null,
    });
    store.close();
    for (const file of readdirSync(dir.path)) {
      const bytes = readFileSync(join(dir.path, file)).toString("latin1");
      expect(bytes.includes(secret)).toBe(false);
    }
  });

  test("revocation time never moves later once set", () => {
    using dir = makeTempDir();
    const store = openSqliteStore(dir.path);
    const { record } = newKey();
    store.insertKey(record);
    expect(store.revokeKey(record.id, 2_000)?.revokedAt).toBe(2_000);
    expect(store.revokeKey(record.id, 3_000)?.revokedAt).toBe(2_000);
    expect(store.revokeKey(record.id, 1_500)?.revokedAt).toBe(1_500);
    expect(store.revokeKey("000000000000", 1_000)).toBeUndefined();
    store.close();
  });

  test("rotation inserts the replacement, links it and schedules the old key's end in one step", () => {
    using dir = makeTempDir();
    const store = openSqliteStore(dir.path);
    const old = newKey().record;
    const replacement = newKey({ createdAt: 2_000 }).record;
    store.insertKey(old);
    const updated = store.rotateKey(old.id, replacement, 2_000 + 3_600_000);
    expect(updated).toMatchObject({ revokedAt: 3_602_000, replacedBy: replacement.id });
    expect(store.getKey(replacement.id)?.name).toBe("lamp");
    expect(store.rotateKey("000000000000", newKey().record, 0)).toBeUndefined();
    expect(store.listKeys()).toHaveLength(2);
    store.close();
  });

  test("usage keeps the latest time and address", () => {
    using dir = makeTempDir();
    const store = openSqliteStore(dir.path);
    const { record } = newKey();
    store.insertKey(record);
    store.recordUsage([{ id: record.id, at: 5_000, addr: "192.168.1.7" }]);
    store.recordUsage([{ id: record.id, at: 4_000, addr: "192.168.1.9" }]);
    expect(store.getKey(record.id)).toMatchObject({ lastUsedAt: 5_000, lastUsedAddr: "192.168.1.7" });
    store.close();
  });

  test("changeMarker moves for commits of another connection and of our own, and only then", () => {
    using dir = makeTempDir();
    const server = openSqliteStore(dir.path);
    const cli = openSqliteStore(dir.path);
    const first = server.changeMarker();
    expect(server.changeMarker()).toBe(first);
    server.listKeys();
    expect(server.changeMarker()).toBe(first);
    server.insertKey(newKey().record);
    const second = server.changeMarker();
    expect(second).not.toBe(first);
    cli.insertKey(newKey().record);
    expect(server.changeMarker()).not.toBe(second);
    server.close();
    cli.close();
  });
});

describe("durability", () => {
  test("no acknowledged key is lost when the writer is killed with SIGKILL, again and again", async () => {
    using dir = makeTempDir();
    const acknowledged = new Map<string, string>();
    const kills = 12;
    for (let round = 0; round < kills; round++) {
      const writer = Bun.spawn([process.execPath, "run", join(ROOT, "tests/support/key-writer.ts"), dir.path], {
        stdout: "pipe",
        stderr: "ignore",
      });
      let buffered = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of writer.stdout) buffered += decoder.decode(chunk, { stream: true });
      })();
      // Kill at a random moment once the writer is running (migrations done, keys flowing).
      await Bun.sleep(150 + Math.floor(Math.random() * 200));
      writer.kill("SIGKILL");
      await writer.exited;
      await reading;
      // Only complete lines were acknowledged; a torn last line was not.
      for (const line of buffered.split("\n").slice(0, -1)) {
        const [id, hash] = line.split(" ");
        acknowledged.set(id!, hash!);
      }
    }
    expect(acknowledged.size).toBeGreaterThan(kills);

    const db = new Database(join(dir.path, DATABASE_FILE));
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    db.close();
    const store = openSqliteStore(dir.path);
    const stored = new Map(store.listKeys().map((key) => [key.id, Buffer.from(key.secretHash).toString("hex")]));
    store.close();
    const missing = [...acknowledged].filter(([id, hash]) => stored.get(id) !== hash);
    expect(missing).toEqual([]);
  }, 60_000);
});
