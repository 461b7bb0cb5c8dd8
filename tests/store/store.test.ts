/**
 * The store contract, run against both engines: the embedded SQLite file and the machine's real
 * PostgreSQL (a database of its own per test). Then what only one engine has: SQLite's file
 * format and durability under SIGKILL, PostgreSQL's concurrent starts and change notifications.
 */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { openSqliteDriver } from "../../auth/store/sqlite.ts";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { generateSigningKey } from "../../auth/secrets/jwt.ts";
import { openPostgresDriver, openPostgresStore } from "../../auth/store/postgres.ts";
import { LATEST_SCHEMA, pendingMigrations } from "../../auth/store/schema.ts";
import { openMigratedStore, StoreError, type NewSession, type SqlDriver, type Store, type UserRecord } from "../../auth/store/store.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { makeTempDir, ROOT } from "../support/harness.ts";
import { createTestDatabase, openDataDirStore } from "../support/stores.ts";
import { engines, newKey, postgres, postgresEngine } from "./engines.ts";

describe.each(engines)("store contract on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("keys: round trip, revocation never moves later, rotation in one step, usage keeps the latest", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const { record } = newKey({ expiresAt: 5_000 });
    await store.insertKey(record);
    expect(await store.getKey(record.id)).toEqual({ ...record, revokedAt: null, lastUsedAt: null, lastUsedAddr: null, replacedBy: null });
    expect((await store.revokeKey(record.id, 2_000))?.revokedAt).toBe(2_000);
    expect((await store.revokeKey(record.id, 3_000))?.revokedAt).toBe(2_000);
    expect((await store.revokeKey(record.id, 1_500))?.revokedAt).toBe(1_500);
    expect(await store.revokeKey("000000000000", 1_000)).toBeUndefined();

    const old = newKey().record;
    const replacement = newKey({ createdAt: 2_000 }).record;
    await store.insertKey(old);
    expect(await store.rotateKey(old.id, replacement, 3_602_000)).toMatchObject({ revokedAt: 3_602_000, replacedBy: replacement.id });
    expect((await store.getKey(replacement.id))?.name).toBe("lamp");
    expect(await store.rotateKey("000000000000", newKey().record, 0)).toBeUndefined();
    expect(await store.listKeys()).toHaveLength(3);

    await store.recordUsage([{ id: old.id, at: 5_000, addr: "192.168.1.7" }]);
    await store.recordUsage([{ id: old.id, at: 4_000, addr: "192.168.1.9" }]);
    expect(await store.getKey(old.id)).toMatchObject({ lastUsedAt: 5_000, lastUsedAddr: "192.168.1.7" });
  });

  it("a duplicate key id is a StoreError that names no value", async () => {
    await using db = await engine(1);
    const { record } = newKey();
    await db.stores[0]!.insertKey(record);
    const error = await db.stores[0]!.insertKey(record).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StoreError);
    expect(String((error as Error).message)).not.toContain(record.id);
  });

  it("the revision moves for auth-relevant commits of any connection, not for reads or usage", async () => {
    await using db = await engine(2);
    const [server, cli] = db.stores as [Store, Store];
    const first = await server.changeMarker();
    await server.listKeys();
    expect(await server.changeMarker()).toBe(first);
    const { record } = newKey();
    await cli.insertKey(record);
    const second = await server.changeMarker();
    expect(second).not.toBe(first);
    await server.recordUsage([{ id: record.id, at: 9_000, addr: "10.0.0.1" }]);
    expect(await server.changeMarker()).toBe(second);
    await cli.revokeKey(record.id, 10_000);
    expect(await server.changeMarker()).not.toBe(second);
  });

  it("users: unique names, password and disable updates", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const user = {
      username: "ann",
      passwordHash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
      roles: ["viewer"],
      createdAt: 1_000,
    };
    expect(await store.insertUser(user)).toBe(true);
    expect(await store.insertUser(user)).toBe(false);
    expect(await store.setDisabled("ann", 2_000, 2_000)).toBe(true);
    expect(await store.setDisabled("nobody", 2_000, 2_000)).toBe(false);
    expect(await store.getUser("ann")).toMatchObject({ roles: ["viewer"], disabledAt: 2_000, updatedAt: 2_000 });
    expect((await store.listUsers()).map((entry) => entry.username)).toEqual(["ann"]);
  });

  it("refresh tokens: rotation, grace sibling, replay revokes the family", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const token = (id: string) => ({
      id,
      familyId: "fam",
      secretHash: digestToken(id),
      subject: "user:ann",
      scopes: ["data:read"],
      roles: ["viewer"],
      clientId: "tokengate",
      createdAt: 1_000,
      expiresAt: 99_000,
    });
    await store.insertRefreshToken(token("r1"));
    expect(await store.consumeRefreshToken("r1", token("r2"), 2_000, 5_000)).toBe("rotated");
    expect(await store.consumeRefreshToken("r1", token("r3"), 3_000, 5_000)).toBe("grace");
    expect(await store.consumeRefreshToken("r1", token("r4"), 20_000, 5_000)).toBe("reused");
    expect(await store.consumeRefreshToken("r2", token("r5"), 20_000, 5_000)).toBe("revoked");
    expect(await store.consumeRefreshToken("nope", token("r6"), 20_000, 5_000)).toBe("missing");
    expect(await store.revokedFamilies(0)).toEqual(["fam"]);
    await store.revokeAccessToken("jti-1", 50_000, 30_000);
    expect(await store.revokedAccessTokens(40_000)).toEqual(["jti-1"]);
  });

  it("refresh families: one row per family from its newest token, its first token's time, never a hash; revocation counted", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const token = (id: string, familyId: string, subject: string, createdAt: number, scopes: string[]) => ({
      id,
      familyId,
      secretHash: digestToken(id),
      subject,
      scopes,
      roles: ["viewer"],
      clientId: `client-${familyId}`,
      createdAt,
      expiresAt: createdAt + 50_000,
    });
    await store.insertRefreshToken(token("a1", "fam-a", "user:ann", 1_000, ["data:read", "ws:connect"]));
    expect(await store.consumeRefreshToken("a1", token("a2", "fam-a", "user:ann", 4_000, ["data:read"]), 4_000, 5_000)).toBe("rotated");
    await store.insertRefreshToken(token("b1", "fam-b", "user:bob", 2_000, ["data:read"]));
    // Expired at 60_000: its newest token ended at 52_000.
    await store.insertRefreshToken(token("c1", "fam-c", "user:ann", 2_000, ["data:read"]));
    expect(await store.listRefreshFamilies(10_000)).toEqual([
      {
        familyId: "fam-a",
        subject: "user:ann",
        clientId: "client-fam-a",
        scopes: ["data:read"],
        createdAt: 1_000,
        lastRotatedAt: 4_000,
        expiresAt: 54_000,
        revokedAt: null,
      },
      expect.objectContaining({ familyId: "fam-b", lastRotatedAt: null, expiresAt: 52_000 }),
      expect.objectContaining({ familyId: "fam-c", subject: "user:ann" }),
    ]);
    expect((await store.listRefreshFamilies(53_000)).map((family) => family.familyId)).toEqual(["fam-a"]);
    expect((await store.listRefreshFamilies(10_000, { subject: "user:bob" })).map((family) => family.familyId)).toEqual(["fam-b"]);
    expect(await store.listRefreshFamilies(10_000, { familyId: "fam-z" })).toEqual([]);
    expect(await store.revokeFamily("fam-a", 6_000)).toBe(2);
    expect(await store.revokeFamily("fam-a", 7_000)).toBe(0);
    expect(await store.listRefreshFamilies(10_000, { familyId: "fam-a", subject: "user:ann" })).toEqual([
      expect.objectContaining({ familyId: "fam-a", revokedAt: 6_000 }),
    ]);
    expect(JSON.stringify(await store.listRefreshFamilies(10_000))).not.toMatch(/secret|hash/i);
  });

  it("bans: repeat offenders get longer bans; clear ends them", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    expect(await store.startBan("addr:192.0.2.9", 1_000, 60_000, 3_600_000, 86_400_000)).toMatchObject({ until: 61_000, level: 1 });
    expect(await store.startBan("addr:192.0.2.9", 70_000, 60_000, 3_600_000, 86_400_000)).toMatchObject({ until: 190_000, level: 2 });
    expect((await store.listBans(100_000)).map((ban) => ban.subject)).toEqual(["addr:192.0.2.9"]);
    expect(await store.clearBans(100_000, "addr:192.0.2.9")).toBe(1);
    expect(await store.listBans(100_000)).toEqual([]);
  });

  it("instances starting at once agree on one signing key; rotation retires the old one", async () => {
    await using db = await engine(3);
    const candidates = await Promise.all(db.stores.map(() => generateSigningKey("EdDSA", 1_000)));
    const results = await Promise.all(db.stores.map((store, i) => store.ensureSigningKey(candidates[i]!)));
    const live = results.map((keys) => keys.filter((key) => key.retiredAt === null).map((key) => key.kid));
    expect(new Set(live.flat()).size).toBe(1);
    const next = await generateSigningKey("EdDSA", 2_000);
    const after = await db.stores[1]!.rotateSigningKey(next, 2_000);
    expect(after.filter((key) => key.retiredAt === null).map((key) => key.kid)).toEqual([next.kid]);
    expect(after).toHaveLength(2);
  });

  it("pairing: one live code, single use, expiry, a failure limit, and only while no credentials exist", async () => {
    await using db = await engine(2);
    const [server, cli] = db.stores as [Store, Store];
    const code = (digits: string) => digestToken(digits);
    expect(await server.hasCredentials()).toBe(false);
    expect(await server.redeemPairingCode(code("123456"), 1_000, 5, newKey().record)).toBe("none");

    // A newer code replaces the older one (another `tokengate pair`).
    expect(await cli.issuePairingCode(code("111111"), 1_000, 301_000)).toBe(true);
    expect(await cli.issuePairingCode(code("222222"), 2_000, 302_000)).toBe(true);
    expect(await server.redeemPairingCode(code("111111"), 3_000, 5, newKey().record)).toBe("wrong");
    // Past its expiry even the right code is dead.
    expect(await server.redeemPairingCode(code("222222"), 302_000, 5, newKey().record)).toBe("none");

    // Wrong tries burn the code at the limit, whoever makes them.
    expect(await cli.issuePairingCode(code("333333"), 10_000, 310_000)).toBe(true);
    for (let i = 0; i < 4; i++) expect(await server.redeemPairingCode(code(`00000${i}`), 11_000, 5, newKey().record)).toBe("wrong");
    expect(await cli.redeemPairingCode(code("000009"), 11_000, 5, newKey().record)).toBe("wrong");
    expect(await server.redeemPairingCode(code("333333"), 11_000, 5, newKey().record)).toBe("none");
    expect(await server.listKeys()).toEqual([]);

    // The right code once: the key is in and the revision moved; then pairing is over for good.
    expect(await cli.issuePairingCode(code("444444"), 20_000, 320_000)).toBe(true);
    const before = await server.changeMarker();
    const candidates = [newKey({ scopes: ["*"] }).record, newKey({ scopes: ["*"] }).record];
    const racing = await Promise.all([
      server.redeemPairingCode(code("444444"), 21_000, 5, candidates[0]!),
      cli.redeemPairingCode(code("444444"), 21_000, 5, candidates[1]!),
    ]);
    // Either may win the race; exactly one does, and only the winner's key exists.
    expect([...racing].sort()).toEqual(["closed", "paired"]);
    expect((await server.listKeys()).map((key) => key.id)).toEqual([candidates[racing.indexOf("paired")]!.id]);
    expect(await server.changeMarker()).not.toBe(before);
    expect(await server.hasCredentials()).toBe(true);
    expect(await cli.issuePairingCode(code("555555"), 22_000, 322_000)).toBe(false);
    expect(await server.redeemPairingCode(code("555555"), 22_000, 5, newKey().record)).toBe("closed");
  });

  it("pairing is closed by a user alone, and by a revoked key", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await store.insertUser({
      username: "ann",
      passwordHash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
      roles: ["admin"],
      createdAt: 1_000,
    });
    expect(await store.issuePairingCode(digestToken("123456"), 1_000, 301_000)).toBe(false);
    await using other = await engine(1);
    const { record } = newKey();
    await other.stores[0]!.insertKey(record);
    await other.stores[0]!.revokeKey(record.id, 2_000);
    expect(await other.stores[0]!.hasCredentials()).toBe(true);
  });
});

describe("sqlite file", () => {
  test("a new database is migrated to the latest version, WAL, STRICT tables; reopening applies nothing twice", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    await store.insertKey(newKey().record);
    await store.close();
    const db = new Database(join(dir.path, DATABASE_FILE));
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: LATEST_SCHEMA });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    const table = db.query("SELECT sql FROM sqlite_master WHERE name = 'api_keys'").get() as { sql: string };
    expect(table.sql).toContain("STRICT");
    // STRICT refuses a value of the wrong type instead of storing it.
    expect(() =>
      db.run(
        "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES ('aaaaaaaaaaaa', 'x', zeroblob(32), '', 'yesterday')",
      ),
    ).toThrow();
    db.close();
    const again = await openDataDirStore(dir.path);
    expect(await again.listKeys()).toHaveLength(1);
    await again.close();
  });

  test("a database from a newer tokengate is refused, not damaged", async () => {
    using dir = makeTempDir();
    await (await openDataDirStore(dir.path)).close();
    const db = new Database(join(dir.path, DATABASE_FILE));
    db.run(`PRAGMA user_version = ${LATEST_SCHEMA + 1}`);
    db.close();
    await expect(openDataDirStore(dir.path)).rejects.toBeInstanceOf(StoreError);
  });

  test("only the SHA-256 of a secret reaches the disk", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    const { record, secret } = newKey();
    await store.insertKey(record);
    await store.close();
    for (const file of readdirSync(dir.path)) {
      expect(readFileSync(join(dir.path, file)).toString("latin1").includes(secret)).toBe(false);
    }
  });

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
    const store = await openDataDirStore(dir.path);
    const stored = new Map((await store.listKeys()).map((key) => [key.id, Buffer.from(key.secretHash).toString("hex")]));
    await store.close();
    const missing = [...acknowledged].filter(([id, hash]) => stored.get(id) !== hash);
    expect(missing).toEqual([]);
  }, 60_000);
});

describe.skipIf(!postgres.available)("postgres", () => {
  test("three instances migrating one new database at once: one schema, applied once", async () => {
    await using db = await postgresEngine(3);
    await db.stores[0]!.insertKey(newKey().record);
    expect(await db.stores[2]!.listKeys()).toHaveLength(1);
  });

  test("a commit on one instance is pushed to the others (LISTEN/NOTIFY), not only polled", async () => {
    await using db = await postgresEngine(2);
    const [writer, watcher] = db.stores as [Store, Store];
    let heard = 0;
    const stop = await watcher.watchChanges(() => (heard += 1));
    const before = heard;
    await writer.insertKey(newKey().record);
    const deadline = performance.now() + 2_000;
    while (heard === before && performance.now() < deadline) await Bun.sleep(5);
    await stop();
    expect(heard).toBeGreaterThan(before);
  });

  test("an unreachable PostgreSQL is a StoreError, quickly, with no password in it", async () => {
    const error = await openPostgresStore("postgres://tokengate:hunter2-not-a-secret@127.0.0.1:1/none").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).not.toContain("hunter2");
  });
});

describe.each(engines)("sessions and passkeys on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;
  const session = (id: string, overrides: Partial<NewSession> = {}): NewSession => ({
    id,
    secretHash: digestToken(`secret-${id}`),
    subject: "user:ann",
    scopes: ["data:read", "ws:connect"],
    roles: ["viewer"],
    method: "passkey",
    createdAt: 1_000,
    lastSeenAt: 1_000,
    expiresAt: 50_000,
    createdAddr: "192.168.1.20",
    ...overrides,
  });

  it("sessions: round trip, live ones listed, use stamps keep the latest, revocation once, all of a subject", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await store.insertSession(session("00000000000000b1"));
    await store.insertSession(session("00000000000000b2", { subject: "key:0123456789ab", method: "key" }));
    await store.insertSession(session("00000000000000b3", { expiresAt: 2_000 }));
    expect(await store.getSession("00000000000000b1")).toEqual({ ...session("00000000000000b1"), revokedAt: null });
    expect((await store.listSessions(3_000)).map((record) => record.id)).toEqual(["00000000000000b1", "00000000000000b2"]);
    await store.touchSessions([{ id: "00000000000000b1", at: 9_000 }]);
    await store.touchSessions([{ id: "00000000000000b1", at: 4_000 }]);
    expect((await store.getSession("00000000000000b1"))!.lastSeenAt).toBe(9_000);
    expect((await store.revokeSession("00000000000000b1", 10_000))!.revokedAt).toBe(10_000);
    expect((await store.revokeSession("00000000000000b1", 11_000))!.revokedAt).toBe(10_000);
    expect(await store.revokeSession("ffffffffffffffff", 11_000)).toBeUndefined();
    expect(await store.revokeSessionsOf("key:0123456789ab", 12_000)).toBe(1);
    expect(await store.listSessions(12_000)).toEqual([]);
  });

  it("passkeys: per user, a taken id refused, the counter only moves forward (0 stays 0), removal only by its owner", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await store.insertUser({ username: "ann", passwordHash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", roles: [], createdAt: 1_000 });
    const record = {
      id: "Y3JlZC0x",
      username: "ann",
      publicKey: new Uint8Array([9, 8, 7]),
      counter: 3,
      transports: ["internal", "hybrid"],
      name: "phone",
      createdAt: 1_000,
    };
    expect(await store.insertPasskey(record)).toBe(true);
    expect(await store.insertPasskey({ ...record, name: "again" })).toBe(false);
    expect(await store.getPasskey(record.id)).toEqual({ ...record, lastUsedAt: null });
    expect(await store.recordPasskeyUse(record.id, 3, 2_000)).toBe(false);
    expect(await store.recordPasskeyUse(record.id, 2, 2_000)).toBe(false);
    expect(await store.recordPasskeyUse(record.id, 4, 2_000)).toBe(true);
    expect(await store.getPasskey(record.id)).toMatchObject({ counter: 4, lastUsedAt: 2_000 });
    const counterless = { ...record, id: "Y3JlZC0y", counter: 0 };
    await store.insertPasskey(counterless);
    expect(await store.recordPasskeyUse(counterless.id, 0, 3_000)).toBe(true);
    expect(await store.listPasskeys("ann")).toHaveLength(2);
    expect(await store.listPasskeys("bob")).toEqual([]);
    expect(await store.removePasskeyUnlessLastRequired(record.id, "bob")).toBe("missing");
    expect(await store.removePasskeyUnlessLastRequired(record.id, "ann")).toBe("removed");
    expect(await store.removePasskeyUnlessLastRequired(record.id, "ann")).toBe("missing");
    expect((await store.getUser("ann"))!.passkeyRequired).toBe(false);
    expect(await store.setPasskeyRequired("ann", true, 4_000)).toBe(true);
    expect((await store.getUser("ann"))!.passkeyRequired).toBe(true);
    expect(await store.removePasskeyUnlessLastRequired(counterless.id, "ann")).toBe("last_required");
    expect(await store.listPasskeys("ann")).toEqual([{ ...counterless, lastUsedAt: 3_000 }]);
    expect(await store.setPasskeyRequired("ann", false, 5_000)).toBe(true);
    expect(await store.removePasskeyUnlessLastRequired(counterless.id, "ann")).toBe("removed");
    expect(await store.listPasskeys("ann")).toEqual([]);
  });

  it("passkeys: two removals racing for the last two of a user who must use passkeys, from two stores: one passes, one is kept", async () => {
    // Two stores on one database, as two instances (or the server and the CLI) would race.
    await using db = await engine(2);
    const [server, cli] = db.stores as [Store, Store];
    // A few rounds, each on a fresh user, so an interleaving that lets both through has several chances to show.
    for (const username of ["ann", "bob", "cy", "dee", "eve"]) {
      await server.insertUser({ username, passwordHash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", roles: [], createdAt: 1_000 });
      const ids = [`${username}-phone`, `${username}-key`] as const;
      for (const id of ids) {
        await server.insertPasskey({
          id,
          username,
          publicKey: new Uint8Array([1]),
          counter: 0,
          transports: [],
          name: id,
          createdAt: 1_000,
        });
      }
      await server.setPasskeyRequired(username, true, 2_000);
      const outcomes = await Promise.all([
        server.removePasskeyUnlessLastRequired(ids[0], username),
        cli.removePasskeyUnlessLastRequired(ids[1], username),
      ]);
      expect(outcomes.toSorted()).toEqual(["last_required", "removed"]);
      const kept = outcomes[0] === "removed" ? ids[1] : ids[0];
      expect((await server.listPasskeys(username)).map((passkey) => passkey.id)).toEqual([kept]);
      expect((await cli.listPasskeys(username)).map((passkey) => passkey.id)).toEqual([kept]);
    }
  });
});

/** A database left at schema `version` by an earlier tokengate, on either engine: its driver, not yet a store. */
async function openDriverAt(engine: string, version: number): Promise<{ driver: SqlDriver } & AsyncDisposable> {
  const dir = makeTempDir();
  const database = engine === "postgres" ? await createTestDatabase() : undefined;
  const driver = database === undefined ? openSqliteDriver(join(dir.path, DATABASE_FILE)) : openPostgresDriver(database.url);
  await driver.transaction(async (tx) => {
    await driver.schemaVersion(tx);
    for (const migration of pendingMigrations(driver.dialect, 0).filter((step) => step.version <= version)) {
      for (const statement of migration.statements) await tx.run(statement);
      await driver.setSchemaVersion(tx, migration.version);
    }
  });
  return {
    driver,
    async [Symbol.asyncDispose]() {
      await database?.[Symbol.asyncDispose]();
      dir[Symbol.dispose]();
    },
  };
}

describe.each(engines)("upgrading to browser sessions (schema 8) on %s", (name, _engine, available) => {
  const it = available ? test : test.skip;

  it("a users table of schema 7 gains passkey_required (false) for the people already in it, and sessions work", async () => {
    await using old = await openDriverAt(name, 7);
    await old.driver.run("INSERT INTO users (username, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)", [
      "ann",
      "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA",
      "viewer",
      1_000,
    ]);
    const store = await openMigratedStore(old.driver);
    try {
      expect(await store.getUser("ann")).toMatchObject({ username: "ann", roles: ["viewer"], passkeyRequired: false, disabledAt: null });
      expect(await store.listSessions(0)).toEqual([]);
      expect(await store.listPasskeys()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe.each(engines)("what ends sessions on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("disabling a user ends their sessions in the same step (enabling again revives none); others' stay", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await store.insertUser({ username: "ann", passwordHash: "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", roles: [], createdAt: 1_000 });
    const session = (id: string, subject: string): NewSession => ({
      id,
      secretHash: digestToken(id),
      subject,
      scopes: [],
      roles: [],
      method: "password",
      createdAt: 1_000,
      lastSeenAt: 1_000,
      expiresAt: 90_000,
      createdAddr: "10.0.0.1",
    });
    await store.insertSession(session("00000000000000c1", "user:ann"));
    await store.insertSession(session("00000000000000c2", "user:bob"));
    const before = await store.changeMarker();
    expect(await store.setDisabled("ann", 2_000, 2_000)).toBe(true);
    expect(await store.changeMarker()).not.toBe(before);
    expect(await store.setDisabled("ann", null, 3_000)).toBe(true);
    expect((await store.listSessions(4_000)).map((record) => record.id)).toEqual(["00000000000000c2"]);
    expect((await store.getSession("00000000000000c1"))!.revokedAt).toBe(2_000);
  });

  it("refresh tokens of a subject end together; long-ended sessions are pruned, live ones kept", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const token = (id: string, subject: string) => ({
      id,
      familyId: `family-${id}`,
      secretHash: digestToken(id),
      subject,
      scopes: [],
      roles: [],
      clientId: "tokengate",
      createdAt: 1_000,
      expiresAt: 99_000,
    });
    await store.insertRefreshToken(token("r1", "user:ann"));
    await store.insertRefreshToken(token("r2", "user:ann"));
    await store.insertRefreshToken(token("r3", "user:bob"));
    expect(await store.revokeFamiliesOf("user:ann", 5_000)).toBe(2);
    expect((await store.revokedFamilies(0)).sort()).toEqual(["family-r1", "family-r2"]);
    const session = (id: string, expiresAt: number): NewSession => ({
      id,
      secretHash: digestToken(id),
      subject: "user:ann",
      scopes: [],
      roles: [],
      method: "passkey",
      createdAt: 1_000,
      lastSeenAt: 1_000,
      expiresAt,
      createdAddr: "10.0.0.1",
    });
    await store.insertSession(session("00000000000000d1", 2_000));
    await store.insertSession(session("00000000000000d2", 50_000));
    await store.insertSession(session("00000000000000d3", 50_000));
    await store.revokeSession("00000000000000d3", 3_000);
    expect(await store.pruneSessions(10_000)).toBe(2);
    expect(await store.getSession("00000000000000d1")).toBeUndefined();
    expect(await store.getSession("00000000000000d2")).toBeDefined();
  });
});

describe.each(engines)("changing a key on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("only the fields given change; an unknown id is undefined", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const { record } = newKey({ expiresAt: 5_000 });
    await store.insertKey(record);
    expect(await store.updateKey(record.id, { name: "porch" })).toMatchObject({ name: "porch", scopes: record.scopes, expiresAt: 5_000 });
    expect(await store.updateKey(record.id, { scopes: ["data:read"], expiresAt: null })).toMatchObject({
      name: "porch",
      scopes: ["data:read"],
      expiresAt: null,
    });
    expect(await store.updateKey("000000000000", { name: "x" })).toBeUndefined();
  });
});

describe.each(engines)("roles and the rule that keeps an admin on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;
  const HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
  /** The rule the admin operations pass: some enabled user keeps the admin role. */
  const keepsAdmin = (users: readonly UserRecord[], changed: UserRecord) =>
    users
      .map((user) => (user.username === changed.username ? changed : user))
      .some((user) => user.disabledAt === null && user.roles.includes("admin"));

  it("roles change only when the rule allows it, judged on the store's users as the change would leave them", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    await store.insertUser({ username: "ann", passwordHash: HASH, roles: ["admin"], createdAt: 1_000 });
    await store.insertUser({ username: "bob", passwordHash: HASH, roles: ["viewer"], createdAt: 1_000 });
    expect(await store.setRoles("ann", ["viewer"], 2_000, keepsAdmin)).toBe("refused");
    expect((await store.getUser("ann"))!.roles).toEqual(["admin"]);
    expect(await store.setRoles("bob", ["admin", "viewer"], 2_000, keepsAdmin)).toBe(true);
    expect(await store.setRoles("ann", ["viewer"], 3_000, keepsAdmin)).toBe(true);
    expect(await store.setDisabled("bob", 4_000, 4_000, keepsAdmin)).toBe("refused");
    expect(await store.setRoles("nobody", ["viewer"], 3_000, keepsAdmin)).toBe(false);
  });
});

describe.each(engines)("scopes of a program's routes on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("recorded once each, listed in order, seen by another instance; knowing a scope moves no revision", async () => {
    await using db = await engine(2);
    const [first, second] = [db.stores[0]!, db.stores[1]!];
    const before = await first.changeMarker();
    await first.recordAppScopes(["sensors:read", "relay:write"], 1_000);
    await first.recordAppScopes(["sensors:read", "sensors:stream"], 2_000);
    expect(await second.listAppScopes()).toEqual(["relay:write", "sensors:read", "sensors:stream"]);
    expect(await first.changeMarker()).toBe(before);
  });
});
