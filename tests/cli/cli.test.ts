/**
 * The real CLI (`bun run cli.ts`) as a subprocess, next to the real server as a subprocess, both
 * on the same DATA_DIR: keys created, used, listed, rotated and revoked while the server runs.
 * Stores are made as the server's first start makes them (openDataDirStore), since the CLI
 * refuses a store that does not exist.
 */
import { describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { EXIT } from "../../auth/cli/commands.ts";
import { WS_GREETING } from "../../auth/http/routes.ts";
import { EXIT_CLOSED_PIPE } from "../../cli.ts";
import { runCliInTerminal, runCliProcess, CLI_ENTRY, type CliResult } from "../support/cli.ts";
import { clockEnvironment, curl, makeTempDir, ServerProcess, WsProbe } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";
import { openDataDirStore } from "../support/stores.ts";

async function cli(dataDir: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, { env: { DATA_DIR: dataDir } });
}

async function cliWithInput(dataDir: string, input: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, { env: { DATA_DIR: dataDir }, input });
}

/** A data directory with an empty store in it, as the server's first start leaves it. */
async function makeDataDir(): Promise<{ path: string; [Symbol.dispose](): void }> {
  const dir = makeTempDir();
  await (await openDataDirStore(dir.path)).close();
  return dir;
}

async function listKeys(dataDir: string): Promise<Array<Record<string, unknown>>> {
  const listed = await cli(dataDir, "keys", "list", "--json");
  expect(listed.code).toBe(EXIT.ok);
  return JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
}

async function createKey(dataDir: string, ...args: string[]): Promise<{ id: string; key: string; scopes: string[] }> {
  const result = await cli(dataDir, "keys", "create", "--json", ...args);
  expect(result.code).toBe(EXIT.ok);
  const created = JSON.parse(result.stdout) as { id: string; key: string; scopes: string[] };
  trackSecret(created.key);
  return created;
}

describe("usage", () => {
  test.each([
    [["--help"], EXIT.ok, "Usage: bun run cli <command>"],
    [["keys", "create", "--help"], EXIT.ok, "--expires DURATION"],
    [["keys", "list", "--help"], EXIT.ok, "Lists every key"],
    [["keys", "revoke", "--help"], EXIT.ok, "4403"],
    [["keys", "rotate", "--help"], EXIT.ok, "--overlap"],
    [["token", "new", "--help"], EXIT.ok, "AUTH_TOKEN"],
    [[], EXIT.usage, "Commands:"],
    [["keys", "explode"], EXIT.usage, "Unknown command"],
    [["keys", "create"], EXIT.usage, "--name is required"],
    [["keys", "create", "--name", "x", "--expires", "soon"], EXIT.usage, "duration"],
    [["keys", "create", "--name", "x", "--scopes", "Data:Read"], EXIT.usage, "--scopes"],
    [["keys", "create", "--name", "x", "--bogus"], EXIT.usage, "Unknown option"],
    [["keys", "revoke"], EXIT.usage, "key id"],
    [["keys", "revoke", "nothex"], EXIT.usage, "12 hex characters"],
    [["keys", "revoke", "0123456789ab"], EXIT.notFound, "No key with id"],
  ])("%p exits %d", async (args, code, text) => {
    using dir = await makeDataDir();
    const result = await cli(dir.path, ...(args as string[]));
    expect(result.code).toBe(code);
    expect(result.stdout + result.stderr).toContain(text as string);
  });

  test("a whole key passed as an id is refused (it would end up in shell history)", async () => {
    using dir = await makeDataDir();
    const created = await createKey(dir.path, "--name", "lamp");
    const result = await cli(dir.path, "keys", "revoke", created.key);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain("not the key itself");
    expect(result.stderr).not.toContain(created.key);
  });

  test("token new prints a fresh strong secret that the server accepts as AUTH_TOKEN", async () => {
    using dir = makeTempDir();
    const first = (await cli(dir.path, "token", "new")).stdout.trim();
    const second = (await cli(dir.path, "token", "new")).stdout.trim();
    trackSecret(first);
    trackSecret(second);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first).not.toBe(second);
    const server = new ServerProcess({ AUTH_TOKEN: first, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    expect((await curl(["-H", `X-Auth-Token: ${first}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });
});

describe("keys next to a running server", () => {
  test("create → use → list → revoke: the running server follows without a restart", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const created = await createKey(dir.path, "--name", "kitchen lamp", "--expires", "30d");
    expect(created.scopes).toEqual(["data:read", "ws:connect"]);

    const ok = await curl(["-H", `Authorization: Bearer ${created.key}`, `http://127.0.0.1:${port}/secure-data`]);
    expect(ok.status).toBe(200);
    const whoami = await curl(["-H", `X-Auth-Token: ${created.key}`, `http://127.0.0.1:${port}/auth/whoami`]);
    expect(JSON.parse(whoami.body)).toMatchObject({ id: created.id, kind: "key", name: "kitchen lamp" });

    const probe = new WsProbe(`ws://127.0.0.1:${port}/ws?token=${created.key}`);
    expect(await probe.nextMessage(0)).toBe(WS_GREETING);

    const listed = await cli(dir.path, "keys", "list");
    expect(listed.code).toBe(EXIT.ok);
    expect(listed.stdout).toContain(created.id);
    expect(listed.stdout).toContain("kitchen lamp");
    expect(listed.stdout).toContain("active");
    expect(listed.stdout).not.toContain(created.key);

    const revoked = await cli(dir.path, "keys", "revoke", created.id);
    const revokedAt = performance.now();
    expect(revoked.code).toBe(EXIT.ok);
    const closed = await probe.closed;
    expect(closed).toEqual({ code: 4403, reason: "The token has been revoked" });
    expect(performance.now() - revokedAt).toBeLessThan(1_000);

    const refused = await curl(["-H", `X-Auth-Token: ${created.key}`, `http://127.0.0.1:${port}/secure-data`]);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ code: "invalid_token", description: "The token has been revoked" });
    expect((await cli(dir.path, "keys", "revoke", created.id)).code).toBe(EXIT.conflict);

    expect(await server.stop()).toBe(0);
    const after = JSON.parse((await cli(dir.path, "keys", "list", "--json")).stdout) as Array<{ id: string; state: string; last_used_addr: string | null }>;
    // The usage batch is flushed at shutdown.
    expect(after.find((key) => key.id === created.id)).toMatchObject({ state: "revoked", last_used_addr: "127.0.0.1" });
  });

  test("rotate with overlap: both keys work during the overlap, the new one after", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const old = await createKey(dir.path, "--name", "dashboard", "--scopes", "data:read");
    const rotated = await cli(dir.path, "keys", "rotate", old.id, "--overlap", "1h", "--json");
    expect(rotated.code).toBe(EXIT.ok);
    const replacement = JSON.parse(rotated.stdout) as { id: string; key: string; scopes: string[]; name: string };
    trackSecret(replacement.key);
    expect(replacement).toMatchObject({ name: "dashboard", scopes: ["data:read"] });
    await Bun.sleep(300);
    for (const key of [old.key, replacement.key]) {
      expect((await curl(["-H", `X-Auth-Token: ${key}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);
    }
    const list = JSON.parse((await cli(dir.path, "keys", "list", "--json")).stdout) as Array<{ id: string; replaced_by: string | null }>;
    expect(list.find((key) => key.id === old.id)?.replaced_by).toBe(replacement.id);
    expect(await server.stop()).toBe(0);
  });

  test("a key whose scopes lack ws:connect cannot open /ws on the real server", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const key = await createKey(dir.path, "--name", "reader", "--scopes", "data:read");
    await Bun.sleep(300);
    const upgrade = await curl([
      "-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13",
      "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", `X-Auth-Token: ${key.key}`,
      `http://127.0.0.1:${port}/ws`,
    ]);
    expect(upgrade.status).toBe(403);
    expect(upgrade.headers).toContain('scope="ws:connect"');
    expect(await server.stop()).toBe(0);
  });
});

describe("users", () => {
  test("add (password on stdin), list, passwd, disable: the running server follows, curl -u works", async () => {
    using dir = await makeDataDir();
    const password = trackSecret("first password for alice");
    const added = await cliWithInput(dir.path, `${password}\n`, "users", "add", "alice", "--role", "viewer");
    expect(added.code).toBe(EXIT.ok);
    expect(added.stdout).toContain("scopes: data:read ws:connect");
    expect(added.stdout + added.stderr).not.toContain(password);

    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), BASIC_AUTH: "true", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    expect((await curl(["-u", `alice:${password}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);

    const second = trackSecret("second password for alice");
    expect((await cliWithInput(dir.path, `${second}\n`, "users", "passwd", "alice")).code).toBe(EXIT.ok);
    expect((await curl(["-u", `alice:${password}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(401);
    expect((await curl(["-u", `alice:${second}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);

    expect((await cli(dir.path, "users", "disable", "alice")).code).toBe(EXIT.ok);
    expect((await curl(["-u", `alice:${second}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(401);
    const listed = JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout) as Array<{ username: string; disabled: boolean }>;
    expect(listed).toEqual([expect.objectContaining({ username: "alice", disabled: true })]);
    expect(await server.stop()).toBe(0);
  });

  test.each([
    [["users", "add", "bob"], "x-long-enough-pw\n", EXIT.usage, "--role"],
    [["users", "add", "bob", "--role", "root"], "x-long-enough-pw\n", EXIT.usage, "unknown role root"],
    [["users", "add", "bob", "--role", "admin"], "short\n", EXIT.usage, "at least 10"],
    [["users", "add", "b:ob", "--role", "admin"], "x-long-enough-pw\n", EXIT.usage, "username"],
    [["users", "passwd", "nobody"], "x-long-enough-pw\n", EXIT.notFound, "No user named nobody"],
    [["users", "disable", "nobody"], "", EXIT.notFound, "No user named nobody"],
  ])("%p exits %d", async (args, input, code, text) => {
    using dir = await makeDataDir();
    const result = await cliWithInput(dir.path, input as string, ...(args as string[]));
    expect(result.code).toBe(code as number);
    expect(result.stdout + result.stderr).toContain(text as string);
  });
});

describe("signing keys", () => {
  test("rotate: the running server signs with the new key, old tokens stay valid, the JWKS holds both", async () => {
    using dir = await makeDataDir();
    const password = trackSecret("rotation test password");
    expect((await cliWithInput(dir.path, `${password}\n`, "users", "add", "erin", "--role", "viewer")).code).toBe(EXIT.ok);
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const url = `http://127.0.0.1:${port}`;
    const issue = async () => {
      const result = await curl(["-d", "grant_type=password", "-d", "username=erin", "--data-urlencode", `password=${password}`, `${url}/auth/token`]);
      const body = JSON.parse(result.body) as { access_token: string; refresh_token: string };
      trackSecret(body.access_token);
      trackSecret(body.refresh_token);
      return body.access_token;
    };
    const kidOf = (jwt: string) => (JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const before = await issue();

    const rotated = await cli(dir.path, "signing-keys", "rotate");
    expect(rotated.code).toBe(EXIT.ok);
    const listed = JSON.parse((await cli(dir.path, "signing-keys", "list", "--json")).stdout) as Array<{ kid: string; state: string }>;
    expect(listed.map((key) => key.state).sort()).toEqual(["signing", "verifying"]);
    const newKid = listed.find((key) => key.state === "signing")!.kid;

    await server.waitFor((line) => line.msg === "signing keys reloaded");
    const after = await issue();
    expect(kidOf(after)).toBe(newKid);
    expect(kidOf(before)).not.toBe(newKid);
    for (const jwt of [before, after]) {
      expect((await curl(["-H", `Authorization: Bearer ${jwt}`, `${url}/secure-data`])).status).toBe(200);
    }
    const jwks = JSON.parse((await curl([`${url}/.well-known/jwks.json`])).body) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((key) => key.kid).sort()).toEqual([kidOf(before), newKid].sort());
    expect(await server.stop()).toBe(0);
  });
});

describe("durations", () => {
  test.each([
    [["--expires", "100000000d"], "--expires 100000000d is out of range: it must be from 1s to 36500d (100 years)"],
    [["--expires", "36501d"], "must be from 1s to 36500d (100 years)"],
    [["--expires", "99999999999999999999999999w"], "must be from 1s to 36500d (100 years)"],
    [["--expires", "0s"], "--expires 0s is out of range: it must be from 1s"],
    [["--expires=-1d"], "--expires -1d is out of range"],
    [["--expires", "1y"], "--expires takes a duration from 1s to 36500d (100 years), such as 90s"],
  ])("keys create %p: usage error naming the limit, nothing stored", async (args, words) => {
    using dir = await makeDataDir();
    const result = await cli(dir.path, "keys", "create", "--name", "lamp", ...args);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain(words);
    expect(result.stdout).not.toContain("tg_");
    expect(await listKeys(dir.path)).toEqual([]);
  });

  test.each([
    [["--overlap", "366d"], "--overlap 366d is out of range: it must be from 0s (stop at once) to 365d"],
    [["--overlap=-1h"], "--overlap -1h is out of range"],
    [["--expires", "0s"], "must be from 1s to 36500d"],
    [["--expires", "100000000d"], "must be from 1s to 36500d"],
  ])("keys rotate %p: usage error naming the limit, the old key untouched", async (args, words) => {
    using dir = await makeDataDir();
    const old = await createKey(dir.path, "--name", "lamp");
    const result = await cli(dir.path, "keys", "rotate", old.id, ...args);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain(words);
    expect(await listKeys(dir.path)).toEqual([expect.objectContaining({ id: old.id, state: "active", replaced_by: null })]);
  });

  test("the limits themselves are accepted: 1s, 36500d, and an overlap of 0s or 365d", async () => {
    using dir = await makeDataDir();
    const century = await createKey(dir.path, "--name", "long", "--expires", "36500d");
    await createKey(dir.path, "--name", "short", "--expires", "1s");
    const listed = await listKeys(dir.path);
    const long = listed.find((key) => key.id === century.id)!;
    expect(Date.parse(long.expires_at as string) - Date.parse(long.created_at as string)).toBe(36_500 * 86_400_000);
    for (const overlap of ["0s", "365d"]) {
      const key = await createKey(dir.path, "--name", `overlap ${overlap}`);
      const rotated = await cli(dir.path, "keys", "rotate", key.id, "--overlap", overlap, "--json");
      expect(rotated.code).toBe(EXIT.ok);
      trackSecret((JSON.parse(rotated.stdout) as { key: string }).key);
    }
  });
});

/** Times no Date can hold, as an older version, a hand edit or a typo before the range check could store them. */
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

function storeAbsurdRows(dataDir: string, now: number): void {
  const db = new Database(join(dataDir, DATABASE_FILE));
  try {
    const key = db.prepare(
      "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, expires_at, revoked_at, last_used_at, last_used_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    key.run("0123456789ab", "extremes", new Uint8Array(32), "data:read", INT64_MIN, INT64_MAX, null, INT64_MAX, "10.0.0.1");
    // What `keys create --expires 100000000d` used to store: a finite number past the end of Date.
    key.run("0123456789ac", "typo", new Uint8Array(32), "data:read", now, now + 100_000_000 * 86_400_000, null, null, null);
    db.prepare("INSERT INTO users (username, password_hash, roles, created_at, updated_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?)").run(
      "ghost", "$argon2id$v=19$m=65536,t=2,p=1$x$y", "viewer", INT64_MAX, INT64_MAX, null,
    );
    db.prepare("INSERT INTO bans (subject, started_at, until, level) VALUES (?, ?, ?, ?)").run("addr:10.0.0.9", INT64_MIN, INT64_MAX, 1);
    db.prepare("INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)").run(
      "absurd-kid", "EdDSA", "{}", "{}", INT64_MAX, INT64_MIN,
    );
  } finally {
    db.close();
  }
}

describe("stored times no Date can hold", () => {
  test.each([
    [["keys", "list"]],
    [["keys", "list", "--json"]],
    [["users", "list"]],
    [["users", "list", "--json"]],
    [["bans", "list"]],
    [["bans", "list", "--json"]],
    [["signing-keys", "list"]],
    [["signing-keys", "list", "--json"]],
  ])("%p shows them as \"invalid date\" instead of failing", async (args) => {
    using dir = await makeDataDir();
    storeAbsurdRows(dir.path, Date.now());
    const result = await cli(dir.path, ...args);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toContain("invalid date");
    if (args.includes("--json")) expect(() => JSON.parse(result.stdout) as unknown).not.toThrow();
  });

  test("rotating a key whose stored lifetime is out of range asks for --expires instead of copying it", async () => {
    using dir = await makeDataDir();
    storeAbsurdRows(dir.path, Date.now());
    const refused = await cli(dir.path, "keys", "rotate", "0123456789ac");
    expect(refused.code).toBe(EXIT.usage);
    expect(refused.stderr).toContain("give the new key's lifetime with --expires");
    const rotated = await cli(dir.path, "keys", "rotate", "0123456789ac", "--expires", "30d", "--json");
    expect(rotated.code).toBe(EXIT.ok);
    const replacement = JSON.parse(rotated.stdout) as { key: string; created_at: string; expires_at: string };
    trackSecret(replacement.key);
    expect(Date.parse(replacement.expires_at) - Date.parse(replacement.created_at)).toBe(30 * 86_400_000);
  });
});

describe("a store that does not exist", () => {
  test.each([
    [["keys", "list"]],
    [["keys", "list", "--json"]],
    [["keys", "create", "--name", "lamp"]],
    [["keys", "revoke", "0123456789ab"]],
    [["keys", "rotate", "0123456789ab"]],
    [["users", "list"]],
    [["users", "add", "alice", "--role", "viewer"]],
    [["users", "passwd", "alice"]],
    [["users", "disable", "alice"]],
    [["bans", "list"]],
    [["bans", "clear"]],
    [["signing-keys", "list"]],
    [["signing-keys", "rotate"]],
    [["pair"]],
  ])("%p exits 1, names the path and the fix, and creates nothing", async (args) => {
    using dir = makeTempDir();
    const dataDir = join(dir.path, "data");
    const result = await cliWithInput(dataDir, `${trackSecret("a password never stored")}\n`, ...args);
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain(`no tokengate store at ${join(dataDir, DATABASE_FILE)}: ${dataDir} does not exist`);
    expect(result.stderr).toContain("start the server once with this DATA_DIR");
    expect(result.stdout).not.toContain("tg_");
    expect(existsSync(dataDir)).toBe(false);
  });

  test("a data directory without a database is refused too, and stays empty", async () => {
    using dir = makeTempDir();
    const result = await cli(dir.path, "keys", "create", "--name", "lamp");
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain(`${dir.path} holds no ${DATABASE_FILE}`);
    expect(existsSync(join(dir.path, DATABASE_FILE))).toBe(false);
  });

  test("DATA_DIR unset: the message says it means ./data of the current directory, which stays untouched", async () => {
    using dir = makeTempDir();
    const result = await runCliProcess(["keys", "list"], { env: {}, cwd: dir.path });
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain("DATA_DIR (unset, so ./data under the current directory)");
    expect(existsSync(join(dir.path, "data"))).toBe(false);
  });

  test("--create-store makes it on purpose (keys create, users add); other commands then find it", async () => {
    using dir = makeTempDir();
    const keysDir = join(dir.path, "for-keys");
    const created = await createKey(keysDir, "--name", "lamp", "--create-store");
    expect((await listKeys(keysDir)).map((key) => key.id)).toEqual([created.id]);
    const usersDir = join(dir.path, "for-users");
    const password = trackSecret("a password for the new store");
    expect((await cliWithInput(usersDir, `${password}\n`, "users", "add", "alice", "--role", "viewer", "--create-store")).code).toBe(EXIT.ok);
    expect(JSON.parse((await cli(usersDir, "users", "list", "--json")).stdout)).toEqual([expect.objectContaining({ username: "alice" })]);
  });

  test("--create-store is refused where it makes no sense (keys list)", async () => {
    using dir = makeTempDir();
    const result = await cli(join(dir.path, "data"), "keys", "list", "--create-store");
    expect(result.code).toBe(EXIT.usage);
    expect(existsSync(join(dir.path, "data"))).toBe(false);
  });
});

describe("scopes of a new key", () => {
  test.each([
    [["--scopes", "data:raed"], {}, "unknown scope data:raed"],
    [["--scopes", "data:read,ws:conect"], {}, "Known scopes: * data:read ws:connect"],
    [["--scopes", "display:show"], {}, "--allow-new-scope"],
    [["--scopes", "data:read", "--scopes", "ws:conect"], {}, "unknown scope ws:conect"],
  ])("%p is a usage error that lists the known scopes; nothing stored", async (args, env, words) => {
    using dir = await makeDataDir();
    const result = await runCliProcess(["keys", "create", "--name", "lamp", ...args], { env: { DATA_DIR: dir.path, ...env } });
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain(words);
    expect(await listKeys(dir.path)).toEqual([]);
  });

  test.each([
    [["--scopes", "data:raed", "--allow-new-scope"], {}, ["data:raed"]],
    [["--scopes", "display:show"], { ROLE_SCOPES: "admin=*;kiosk=display:show" }, ["display:show"]],
    [["--scopes", "*"], {}, ["*"]],
    [["--scopes", "ws:connect data:read"], {}, ["ws:connect", "data:read"]],
  ])("%p is accepted (%p)", async (args, env, scopes) => {
    using dir = await makeDataDir();
    const result = await runCliProcess(["keys", "create", "--name", "lamp", "--json", ...args], { env: { DATA_DIR: dir.path, ...env } });
    expect(result.code).toBe(EXIT.ok);
    const created = JSON.parse(result.stdout) as { key: string; scopes: string[] };
    trackSecret(created.key);
    expect(created.scopes).toEqual(scopes);
  });
});

describe("passwords", () => {
  const typed = trackSecret("typed at the terminal 1");

  test("at a terminal: asked twice without echo; the same answer twice adds the user", async () => {
    using dir = await makeDataDir();
    const result = await runCliInTerminal(["users", "add", "alice", "--role", "viewer"], { DATA_DIR: dir.path }, [
      { prompt: "New password: ", reply: typed },
      { prompt: "Repeat password: ", reply: typed },
    ]);
    expect(result.code).toBe(EXIT.ok);
    expect(result.screen).toContain("Added user alice");
    expect(result.screen).not.toContain(typed);
    const store = await openDataDirStore(dir.path);
    try {
      expect(await Bun.password.verify(typed, (await store.getUser("alice"))!.passwordHash)).toBe(true);
    } finally {
      await store.close();
    }
  });

  test("at a terminal: two different answers exit 2 and store nothing (users add and users passwd)", async () => {
    using dir = await makeDataDir();
    const other = trackSecret("typed differently 2");
    const steps = [
      { prompt: "New password: ", reply: typed },
      { prompt: "Repeat password: ", reply: other },
    ];
    const add = await runCliInTerminal(["users", "add", "alice", "--role", "viewer"], { DATA_DIR: dir.path }, steps);
    expect(add.code).toBe(EXIT.usage);
    expect(add.screen).toContain("the two passwords differ; nothing was changed");
    expect(JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout)).toEqual([]);

    const first = trackSecret("the password piped in first");
    expect((await cliWithInput(dir.path, `${first}\n`, "users", "add", "bob", "--role", "viewer")).code).toBe(EXIT.ok);
    const passwd = await runCliInTerminal(["users", "passwd", "bob"], { DATA_DIR: dir.path }, steps);
    expect(passwd.code).toBe(EXIT.usage);
    expect(passwd.screen).toContain("the two passwords differ");
    const store = await openDataDirStore(dir.path);
    try {
      expect(await Bun.password.verify(first, (await store.getUser("bob"))!.passwordHash)).toBe(true);
    } finally {
      await store.close();
    }
  });

  test("piped: the first line is the password, read once (no repeat)", async () => {
    using dir = await makeDataDir();
    const first = trackSecret("first line is the password");
    const result = await cliWithInput(dir.path, `${first}\nsecond line ignored\n`, "users", "add", "carol", "--role", "viewer");
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).not.toContain("Repeat");
    const store = await openDataDirStore(dir.path);
    try {
      expect(await Bun.password.verify(first, (await store.getUser("carol"))!.passwordHash)).toBe(true);
    } finally {
      await store.close();
    }
  });

  test.each([
    ["empty stdin", ""],
    ["an empty first line", "\n"],
  ])("%s: \"no password given\", exit 2, nothing stored", async (_case, input) => {
    using dir = await makeDataDir();
    const add = await cliWithInput(dir.path, input, "users", "add", "dave", "--role", "viewer");
    expect(add.code).toBe(EXIT.usage);
    expect(add.stderr).toContain("no password given");
    expect(JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout)).toEqual([]);
  });
});

describe("a reader that stops early", () => {
  test.each([
    ["keys list | true", "keys list | true", EXIT_CLOSED_PIPE],
    ["keys list --json | true", "keys list --json | true", EXIT_CLOSED_PIPE],
    ["keys list | head -c 10", "keys list | head -c 10 >/dev/null", EXIT_CLOSED_PIPE],
    ["keys list | wc -c (read to the end)", "keys list | wc -c >/dev/null", EXIT.ok],
  ])("%s: no stack trace, exit %d", async (_case, pipeline, code) => {
    using dir = await makeDataDir();
    const db = new Database(join(dir.path, DATABASE_FILE));
    const insert = db.prepare("INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)");
    // Far more than a pipe buffer (64 KiB): the writer is still writing when the reader leaves.
    db.transaction(() => {
      for (let i = 0; i < 800; i++) insert.run(i.toString(16).padStart(12, "0"), `device ${i} ${"x".repeat(150)}`, new Uint8Array(32), "data:read", 1_700_000_000_000);
    })();
    db.close();
    const [command, ...rest] = pipeline.split(" | ");
    const script = `"$0" run "$1" ${command} | ${rest.join(" | ")}; echo "cli=\${PIPESTATUS[0]}"`;
    const proc = Bun.spawn(["bash", "-c", script, process.execPath, CLI_ENTRY], {
      env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), DATA_DIR: dir.path },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    captureOutput(stderr);
    expect(stderr).toBe("");
    expect(stdout.trim()).toBe(`cli=${code}`);
  });
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
