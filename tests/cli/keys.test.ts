/**
 * `keys create | list | revoke | rotate` (auth/cli/keys.ts) as the real CLI subprocess, next to the
 * real server as a subprocess on the same DATA_DIR: keys created, used, listed, rotated and revoked
 * while the server runs.
 */
import { describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { WS_GREETING } from "../../auth/http/routes.ts";
import { cli, createKey, expectCliAnswer, listKeys, makeDataDir, runCliProcess } from "../support/cli.ts";
import { curl, makeTempDir, ServerProcess, WsProbe } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

describe("usage", () => {
  test.each([
    [["keys", "create", "--help"], EXIT.ok, "--expires DURATION"],
    [["keys", "list", "--help"], EXIT.ok, "Lists every key"],
    [["keys", "revoke", "--help"], EXIT.ok, "4403"],
    [["keys", "rotate", "--help"], EXIT.ok, "--overlap"],
    [["keys", "create"], EXIT.usage, "--name is required"],
    [["keys", "create", "--name", "x", "--expires", "soon"], EXIT.usage, "duration"],
    [["keys", "create", "--name", "x", "--scopes", "Data:Read"], EXIT.usage, "--scopes"],
    [["keys", "create", "--name", "x", "--bogus"], EXIT.usage, "Unknown option"],
    [["keys", "revoke"], EXIT.usage, "key id"],
    [["keys", "revoke", "nothex"], EXIT.usage, "12 hex characters"],
    [["keys", "revoke", "0123456789ab"], EXIT.notFound, "No key with id"],
  ])("%p exits %d", (args, code, text) => expectCliAnswer(args as string[], code, text as string));

  test("a whole key passed as an id is refused (it would end up in shell history)", async () => {
    using dir = await makeDataDir();
    const created = await createKey(dir.path, "--name", "lamp");
    const result = await cli(dir.path, "keys", "revoke", created.key);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toContain("not the key itself");
    expect(result.stderr).not.toContain(created.key);
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
    const after = JSON.parse((await cli(dir.path, "keys", "list", "--json")).stdout) as Array<{
      id: string;
      state: string;
      last_used_addr: string | null;
    }>;
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
      "-H",
      "Upgrade: websocket",
      "-H",
      "Connection: Upgrade",
      "-H",
      "Sec-WebSocket-Version: 13",
      "-H",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "-H",
      `X-Auth-Token: ${key.key}`,
      `http://127.0.0.1:${port}/ws`,
    ]);
    expect(upgrade.status).toBe(403);
    expect(upgrade.headers).toContain('scope="ws:connect"');
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

describe("scopes of a new key", () => {
  test.each([
    [["--scopes", "data:raed"], {}, "unknown scope data:raed"],
    [["--scopes", "data:read,ws:conect"], {}, "Known scopes: * admin data:read metrics:read ws:connect"],
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

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
