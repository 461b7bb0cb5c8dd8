/**
 * `backup | restore | export | import` (auth/cli/backup.ts) as the real CLI subprocess, on both
 * engines: a backup taken while a writer keeps creating keys holds every key acknowledged before it
 * started (and is one consistent state); a backup restores into an empty SQLite and an empty
 * PostgreSQL; a non-empty store or a wrong schema version is refused; a store moved from SQLite
 * to PostgreSQL serves the same keys, users and tokens; a running server reloads after a restore.
 */
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../../auth/cli/shared.ts";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { openPostgresStore } from "../../auth/store/postgres.ts";
import { LATEST_SCHEMA } from "../../auth/store/schema.ts";
import type { Store } from "../../auth/store/store.ts";
import { requestTokens, startEngineApp } from "../support/admin-engines.ts";
import { cliWithInput, createKey, runCliProcess, type CliResult } from "../support/cli.ts";
import { curl, makeTempDir, startTestApp } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";
import { createTestDatabase, openDataDirStore, postgresService } from "../support/stores.ts";

const postgres = await postgresService();

/** An empty store on one engine, with the environment that points the CLI at it. */
interface TestStore extends AsyncDisposable {
  readonly env: Record<string, string>;
  /** Where backups and exports of this test go. */
  readonly dir: string;
  open(): Promise<Store>;
}

async function makeStore(engine: string, options: { readonly create: boolean } = { create: true }): Promise<TestStore> {
  const dir = makeTempDir();
  const database = engine === "postgres" ? await createTestDatabase() : undefined;
  const open = () => (database === undefined ? openDataDirStore(dir.path) : openPostgresStore(database.url));
  if (options.create) await (await open()).close();
  return {
    env: { DATA_DIR: dir.path, ...(database === undefined ? {} : { STORE_URL: database.url }) },
    dir: dir.path,
    open,
    async [Symbol.asyncDispose]() {
      await database?.[Symbol.asyncDispose]();
      dir[Symbol.dispose]();
    },
  };
}

/** The CLI on a store; everything it prints joins the leak scan (stdout too: these commands never print a secret). */
async function run(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const result = await runCliProcess(args, { env });
  captureOutput(result.stdout);
  return result;
}

const ENGINES: Array<[string, boolean]> = [
  ["sqlite", true],
  ["postgres", postgres.available],
];

/** The key ids a backup file holds, read from the file itself: an SQLite database or the JSON export. */
function readBackupKeyIds(file: string): string[] {
  const bytes = readFileSync(file);
  // The backup holds hashes only: no key's secret may be in it (the scan at the end checks).
  captureOutput(bytes.toString("latin1"));
  if (bytes.subarray(0, 15).toString() === "SQLite format 3") {
    const db = new Database(file, { readonly: true });
    try {
      expect(db.query<{ integrity_check: string }, []>("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
      return db
        .query<{ id: string }, []>("SELECT id FROM api_keys")
        .all()
        .map((row) => row.id);
    } finally {
      db.close();
    }
  }
  const document = JSON.parse(bytes.toString("utf8")) as { schema_version: number; tables: { api_keys: Array<{ id: string }> } };
  expect(document.schema_version).toBe(LATEST_SCHEMA);
  return document.tables.api_keys.map((row) => row.id);
}

/** Inserts keys one after another (at most 300, or for 5 s); `acked` holds each id once its insert has resolved, in order. */
function startKeyWriter(store: Store): { readonly acked: string[]; stop(): Promise<void> } {
  const acked: string[] = [];
  let stopped = false;
  const started = Date.now();
  const writing = (async () => {
    while (!stopped && acked.length < 300 && Date.now() - started < 5_000) {
      const key = generateApiKey();
      trackSecret(key.token);
      await store.insertKey({
        id: key.id,
        name: "load",
        scopes: ["data:read"],
        secretHash: digestToken(key.secret),
        createdAt: 1_000,
        expiresAt: null,
      });
      acked.push(key.id);
      await Bun.sleep(3);
    }
  })();
  return {
    acked,
    async stop() {
      stopped = true;
      await writing;
    },
  };
}

describe.each(ENGINES)("backup on %s", (engine, available) => {
  const it = available ? test : test.skip;

  it("under write load: every key acknowledged before the backup started is in it, and it is one consistent state", async () => {
    await using store = await makeStore(engine);
    const writerStore = await store.open();
    const writer = startKeyWriter(writerStore);
    try {
      while (writer.acked.length < 20) await Bun.sleep(5);
      const before = [...writer.acked];
      const file = join(store.dir, "under-load.backup");
      const result = await run(store.env, "backup", file);
      const whileRunning = writer.acked.length;
      await writer.stop();
      expect(result.code).toBe(EXIT.ok);
      expect(whileRunning).toBeGreaterThan(before.length);
      const ids = new Set(readBackupKeyIds(file));
      expect(before.filter((id) => !ids.has(id))).toEqual([]);
      // One state: the keys in it are exactly the first n the writer committed, with no gap.
      const held = writer.acked.filter((id) => ids.has(id));
      expect(held).toEqual(writer.acked.slice(0, held.length));
      expect(held.length).toBe(ids.size);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      await writer.stop();
      await writerStore.close();
    }
  });

  it("refuses to overwrite FILE without --force; names a missing directory; --json says what it wrote", async () => {
    await using store = await makeStore(engine);
    const file = join(store.dir, "store.backup");
    writeFileSync(file, "an older backup");
    const refused = await run(store.env, "backup", file);
    expect(refused.code).toBe(EXIT.conflict);
    expect(refused.stderr).toBe(`backup: ${file} already exists: add --force to replace it, or name another file\n`);
    expect(readFileSync(file, "utf8")).toBe("an older backup");
    const forced = await run(store.env, "backup", "--force", "--json", file);
    expect(forced.code).toBe(EXIT.ok);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      file,
      format: engine === "sqlite" ? "sqlite" : "json",
      schema_version: LATEST_SCHEMA,
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const missing = await run(store.env, "backup", join(store.dir, "no", "such", "dir", "x.backup"));
    expect(missing.code).toBe(EXIT.failure);
    expect(missing.stderr).toContain(`the directory ${join(store.dir, "no", "such", "dir")} does not exist`);
    expect((await run(store.env, "backup")).code).toBe(EXIT.usage);
    expect((await run(store.env, "export")).stderr).toContain("say the format: --json");
  });
});

/** A store with two keys (one rotated) and a user, made through the CLI; the keys' tokens and the password. */
async function fillThroughCli(env: Record<string, string>): Promise<{ keys: string[]; password: string }> {
  const dataDir = env.DATA_DIR!;
  const first = await createKey(dataDir, "--name", "lamp");
  const second = await createKey(dataDir, "--name", "tablet", "--scopes", "data:read");
  const password = trackSecret("a password for the moved store");
  expect((await cliWithInput(dataDir, `${password}\n`, "users", "add", "ann", "--role", "viewer")).code).toBe(EXIT.ok);
  // The new key is printed once, as it should be: not an output for the leak scan.
  const rotated = await runCliProcess(["keys", "rotate", first.id, "--overlap", "1h", "--json"], { env });
  expect(rotated.code).toBe(EXIT.ok);
  const rotatedKey = trackSecret((JSON.parse(rotated.stdout) as { key: string }).key);
  return { keys: [first.key, second.key, rotatedKey], password };
}

describe.each(ENGINES)("restore into an empty store on %s", (engine, available) => {
  const it = available ? test : test.skip;

  it("from an SQLite backup and from a PostgreSQL-style JSON export: the same keys and users; a second restore needs --force", async () => {
    await using source = await makeStore("sqlite");
    await fillThroughCli(source.env);
    const backup = join(source.dir, "store.backup");
    const exported = join(source.dir, "store.json");
    expect((await run(source.env, "backup", backup)).code).toBe(EXIT.ok);
    expect((await run(source.env, "export", "--json", exported)).code).toBe(EXIT.ok);
    const keys = (await run(source.env, "keys", "list", "--json")).stdout;
    const users = (await run(source.env, "users", "list", "--json")).stdout;

    for (const file of [backup, exported]) {
      // No store at all yet: restoring into a fresh DATA_DIR makes one, as a first start would.
      await using target = await makeStore(engine, { create: false });
      const restored = await run(target.env, "restore", file);
      expect(restored.code).toBe(EXIT.ok);
      expect(restored.stdout).toContain("3 API keys and 1 user");
      expect((await run(target.env, "keys", "list", "--json")).stdout).toBe(keys);
      expect((await run(target.env, "users", "list", "--json")).stdout).toBe(users);

      const again = await run(target.env, "restore", file);
      expect(again.code).toBe(EXIT.conflict);
      expect(again.stderr).toContain("restore: the store is not empty: it holds 3 API keys and 1 user");
      expect(again.stderr).toContain("With --force, restore replaces everything in it");
      const forced = await run(target.env, "restore", "--force", "--json", file);
      expect(forced.code).toBe(EXIT.ok);
      expect(JSON.parse(forced.stdout)).toMatchObject({
        file,
        schema_version: LATEST_SCHEMA,
        upgraded_from: null,
        tables: { api_keys: 3, users: 1 },
      });
    }
  });

  it("refuses a backup of a newer schema version, naming both, and a file that is no backup", async () => {
    await using source = await makeStore("sqlite");
    await fillThroughCli(source.env);
    await using target = await makeStore(engine);
    const exported = join(source.dir, "store.json");
    expect((await run(source.env, "export", "--json", exported)).code).toBe(EXIT.ok);
    const newerJson = join(source.dir, "newer.json");
    writeFileSync(
      newerJson,
      readFileSync(exported, "utf8").replace(`"schema_version": ${LATEST_SCHEMA}`, `"schema_version": ${LATEST_SCHEMA + 1}`),
    );
    const newerDb = join(source.dir, "newer.backup");
    expect((await run(source.env, "backup", newerDb)).code).toBe(EXIT.ok);
    const db = new Database(newerDb);
    db.run(`PRAGMA user_version = ${LATEST_SCHEMA + 1}`);
    db.close();
    for (const file of [newerJson, newerDb]) {
      const refused = await run(target.env, "restore", file);
      expect(refused.code).toBe(EXIT.failure);
      expect(refused.stderr).toContain(
        `restore: ${file} holds a store of schema version ${LATEST_SCHEMA + 1}, newer than this tokengate's (schema ${LATEST_SCHEMA})`,
      );
    }
    const notes = join(source.dir, "notes.txt");
    writeFileSync(notes, "not a backup");
    expect((await run(target.env, "import", notes)).stderr).toBe(
      `import: ${notes} is neither a tokengate backup (an SQLite database) nor an export (JSON from export --json)\n`,
    );
    expect((await run(target.env, "restore", join(source.dir, "missing.backup"))).stderr).toBe(
      `restore: cannot read ${join(source.dir, "missing.backup")}: it does not exist\n`,
    );
    const store = await target.open();
    expect(await store.listKeys()).toEqual([]);
    await store.close();
  });
});

describe.skipIf(!postgres.available)("a store moved from SQLite to PostgreSQL", () => {
  test("exported while its server runs, imported, and served: the same keys, users and access tokens work", async () => {
    await using source = await startTestApp({ BASIC_AUTH: "true" });
    const env = { DATA_DIR: source.dataDir };
    const { keys, password } = await fillThroughCli(env);
    const granted = await requestTokens(source, { grant_type: "password", username: "ann", password });
    expect(granted.status).toBe(200);
    const file = join(source.dataDir, "moving.json");
    expect((await run(env, "export", "--json", file)).code).toBe(EXIT.ok);
    readBackupKeyIds(file);

    await using target = await startEngineApp("postgres", { BASIC_AUTH: "true" });
    // The app made its first-start signing key: the store still counts as empty, and the import replaces it.
    const imported = await target.cli("import", file);
    captureOutput(imported.stdout);
    expect(imported.code).toBe(EXIT.ok);
    const url = `${target.app.http}/secure-data`;
    // PostgreSQL announces the import: the app reloads at once rather than at its next poll.
    const deadline = Date.now() + 2_000;
    while ((await curl(["-H", `X-Auth-Token: ${keys[0]}`, url])).status !== 200 && Date.now() < deadline) await Bun.sleep(20);
    for (const key of keys) expect((await curl(["-H", `X-Auth-Token: ${key}`, url])).status).toBe(200);
    expect((await curl(["-u", `ann:${password}`, url])).status).toBe(200);
    expect((await curl(["-H", `Authorization: Bearer ${granted.access_token}`, url])).status).toBe(200);
    expect((await curl(["-u", `ann:${password}x`, url])).status).toBe(401);
  });
});

describe("restore on a running server's store", () => {
  test("--force replaces what the server serves within a second: a key made after the backup stops working", async () => {
    await using app = await startTestApp();
    const env = { DATA_DIR: app.dataDir };
    const kept = await createKey(app.dataDir, "--name", "kept");
    const file = join(app.dataDir, "before.backup");
    expect((await run(env, "backup", file)).code).toBe(EXIT.ok);
    const later = await createKey(app.dataDir, "--name", "later");
    const url = `${app.http}/secure-data`;
    expect((await curl(["-H", `X-Auth-Token: ${later.key}`, url])).status).toBe(200);
    expect((await run(env, "restore", "--force", file)).code).toBe(EXIT.ok);
    const deadline = Date.now() + 1_000;
    while ((await curl(["-H", `X-Auth-Token: ${later.key}`, url])).status !== 401 && Date.now() < deadline) await Bun.sleep(20);
    expect((await curl(["-H", `X-Auth-Token: ${later.key}`, url])).status).toBe(401);
    expect((await curl(["-H", `X-Auth-Token: ${kept.key}`, url])).status).toBe(200);
  });

  test("the live database file itself is refused while its -wal holds changes: restore a backup instead", async () => {
    await using app = await startTestApp();
    await createKey(app.dataDir, "--name", "recent");
    using elsewhere = makeTempDir();
    const live = join(app.dataDir, "tokengate.db");
    const refused = await run({ DATA_DIR: elsewhere.path }, "restore", live);
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toBe(
      `restore: ${live} is a store in use, with recent changes still in ${live}-wal: back it up with backup (on its DATA_DIR) and restore that file\n`,
    );
  });
});

describe("files a backup must not be, or be read from", () => {
  test("--force onto the store's own file or its journals is refused, and the store stays whole", async () => {
    await using app = await startTestApp();
    await createKey(app.dataDir, "--name", "kept");
    const live = join(app.dataDir, "tokengate.db");
    for (const target of [live, `${live}-wal`, `${live}-shm`, join(app.dataDir, ".", "tokengate.db")]) {
      const refused = await run({ DATA_DIR: app.dataDir }, "backup", target, "--force");
      expect(refused.code).toBe(EXIT.failure);
      expect(refused.stderr).toContain("is where the store itself lives");
      const exported = await run({ DATA_DIR: app.dataDir }, "export", "--json", target, "--force");
      expect(exported.code).toBe(EXIT.failure);
    }
    const listed = await run({ DATA_DIR: app.dataDir }, "keys", "list", "--json");
    expect(listed.code).toBe(EXIT.ok);
    expect(listed.stdout).toContain('"kept"');
  });

  test.each([
    ["/dev/zero", "is not a regular file"],
    ["a directory", "is not a regular file"],
  ])("restore %s: refused at once, nothing read", async (source, words) => {
    await using store = await makeStore("sqlite");
    const file = source === "a directory" ? store.dir : source;
    const refused = await run(store.env, "restore", file);
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toContain(words);
  });

  test("an export with a row the schema refuses is turned away before any store is made or touched", async () => {
    await using source = await makeStore("sqlite");
    await createKey(source.env.DATA_DIR!, "--name", "edited");
    const file = join(source.dir, "edited.json");
    expect((await run(source.env, "export", "--json", file)).code).toBe(EXIT.ok);
    const document = JSON.parse(readFileSync(file, "utf8")) as { tables: { api_keys: Array<Record<string, unknown>> } };
    document.tables.api_keys[0]!.id = "short";
    writeFileSync(file, JSON.stringify(document));
    using target = makeTempDir();
    const refused = await run({ DATA_DIR: target.path }, "restore", file);
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toContain("holds rows the store's rules refuse");
    expect(existsSync(join(target.path, "tokengate.db"))).toBe(false);
  });

  test("a damaged JSON export is refused without quoting its text", async () => {
    await using store = await makeStore("sqlite");
    const file = join(store.dir, "damaged.json");
    const quoted = trackSecret(newSecret());
    writeFileSync(file, `{"format":"tokengate-store", ${quoted} }`);
    const refused = await run(store.env, "restore", file);
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toContain("is not valid JSON");
    expect(refused.stderr).not.toContain(quoted.slice(0, 12));
  });
});

test("no secret used in this file reached any output, backup or export", () => {
  expectNoSecretsInOutput();
});
