/**
 * The audit log: which events are written, what they carry (ids, addresses, reason codes) and
 * what they never carry (any credential). Also AUDIT_LOG_FILE with the real server.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { openDataDirStore } from "../support/stores.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { curl, makeTempDir, ServerProcess, startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

const events = (app: TestApp) => app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);

describe("events", () => {
  test("auth.failure carries reason, address, path and key id; a missing token is not audited", async () => {
    await using app = await startTestApp();
    const key = generateApiKey();
    trackSecret(key.token);
    await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": key.token } });
    await fetch(`${app.http}/secure-data`);
    const failures = events(app).filter((event) => event.audit === "auth.failure");
    expect(failures).toEqual([
      expect.objectContaining({ reason: "invalid_token", address: "127.0.0.1", path: "/secure-data", key_id: key.id }),
    ]);
  });

  test("auth.success is off by default and sampled when asked", async () => {
    await using quiet = await startTestApp();
    await fetch(`${quiet.http}/secure-data`, { headers: { "X-Auth-Token": quiet.token } });
    expect(events(quiet).filter((event) => event.audit === "auth.success")).toEqual([]);
    await using loud = await startTestApp({ AUDIT_SUCCESS_SAMPLE: "1" });
    await fetch(`${loud.http}/secure-data`, { headers: { "X-Auth-Token": loud.token } });
    expect(events(loud).filter((event) => event.audit === "auth.success")).toEqual([
      expect.objectContaining({ principal: "bootstrap", kind: "bootstrap", address: "127.0.0.1", path: "/secure-data" }),
    ]);
  });

  test("key.created, key.rotated and key.revoked are seen from another process's changes", async () => {
    await using app = await startTestApp();
    const cli = await openDataDirStore(app.dataDir);
    const key = generateApiKey();
    const replacement = generateApiKey();
    const record = (id: string, secret: string) => ({
      id,
      name: "lamp",
      scopes: ["data:read"],
      secretHash: digestToken(secret),
      createdAt: Date.now(),
      expiresAt: null,
    });
    await cli.insertKey(record(key.id, key.secret));
    await Bun.sleep(200);
    await cli.rotateKey(key.id, record(replacement.id, replacement.secret), Date.now() + 60_000);
    await Bun.sleep(200);
    await cli.revokeKey(replacement.id, Date.now());
    await Bun.sleep(200);
    await cli.close();
    const lifecycle = events(app).filter((event) => String(event.audit).startsWith("key."));
    expect(lifecycle.map((event) => [event.audit, event.key_id])).toEqual([
      ["key.created", key.id],
      // One reload sees both halves of the rotation; keys are visited oldest first.
      ["key.rotated", key.id],
      ["key.created", replacement.id],
      ["key.revoked", replacement.id],
    ]);
  });

  test("wrong passwords on the token endpoint are audited with their reason", async () => {
    await using app = await startTestApp();
    await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `grant_type=password&username=nobody&password=${encodeURIComponent(trackSecret("a wrong password here"))}`,
    });
    expect(events(app).find((event) => event.audit === "auth.failure")).toMatchObject({ reason: "invalid_grant", path: "/auth/token" });
  });
});

describe("AUDIT_LOG_FILE", () => {
  test("the real server appends audit lines to a 0600 file, apart from the access log", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const file = join(dir.path, "audit.jsonl");
    const server = new ServerProcess(
      { AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path, AUDIT_LOG_FILE: file },
      dir.path,
    );
    const port = await server.port();
    const wrong = newSecret();
    expect((await curl(["-H", `X-Auth-Token: ${wrong}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(401);
    expect(await server.stop()).toBe(0);
    const lines = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ audit: "auth.failure", reason: "invalid_token" })]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(server.stdout).not.toContain('"audit":');
    const text = readFileSync(file, "utf8");
    expect(text.includes(wrong) || text.includes(secret)).toBe(false);
  });

  test("an AUDIT_LOG_FILE that cannot be opened is a config error (exit 78)", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess(
      { AUTH_TOKEN: newSecret(), PORT: "0", DATA_DIR: dir.path, AUDIT_LOG_FILE: join(dir.path, "missing-dir", "audit.jsonl") },
      dir.path,
    );
    expect(await server.exited()).toBe(78);
    expect(server.stderr).toContain("AUDIT_LOG_FILE");
  });
});

test("no secret reached any output, audit included", () => {
  expectNoSecretsInOutput();
});
