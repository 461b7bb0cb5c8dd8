/**
 * Refresh tokens (RFC 6749 §6) and revocation (RFC 7009) end to end: one-time use, rotation,
 * replay detection that revokes the whole family (and closes its sockets), the grace window for
 * concurrent retries, expiry driven with setSystemTime.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

afterEach(() => setSystemTime());

const PASSWORD = trackSecret("bob's long password!");

async function post(app: TestApp, path: string, fields: Record<string, string>) {
  const response = await fetch(`${app.http}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  const text = await response.text();
  const body = (text === "" ? {} : JSON.parse(text)) as Record<string, string>;
  for (const name of ["access_token", "refresh_token"]) if (typeof body[name] === "string") trackSecret(body[name]);
  return { response, body };
}

async function signIn(app: TestApp, scope?: string) {
  await app.store.insertUser({ username: "bob", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
  const fields: Record<string, string> = { grant_type: "password", username: "bob", password: PASSWORD };
  if (scope !== undefined) fields.scope = scope;
  const { body } = await post(app, "/auth/token", fields);
  return body;
}

const refresh = (app: TestApp, token: string, extra: Record<string, string> = {}) =>
  post(app, "/auth/token", { grant_type: "refresh_token", refresh_token: token, ...extra });

const use = (app: TestApp, accessToken: string) =>
  fetch(`${app.http}/secure-data`, { headers: { Authorization: `Bearer ${accessToken}` } });

describe("refresh_token grant", () => {
  test("the password grant returns an opaque refresh token; each refresh returns a new one", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    expect(first.refresh_token).toMatch(/^tgr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const second = await refresh(app, first.refresh_token!);
    expect(second.response.status).toBe(200);
    expect(second.response.headers.get("cache-control")).toBe("no-store");
    expect(second.body.refresh_token).not.toBe(first.refresh_token);
    expect(second.body.scope).toBe("data:read ws:connect");
    expect((await use(app, second.body.access_token!)).status).toBe(200);
    const third = await refresh(app, second.body.refresh_token!, { scope: "data:read" });
    expect(third.body.scope).toBe("data:read");
  });

  test("only the hash of a refresh token reaches the disk", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const secret = first.refresh_token!.slice(21);
    expect((await app.store.getRefreshToken(first.refresh_token!.slice(4, 20)))?.secretHash.byteLength).toBe(32);
    // Checkpoint the WAL so the database file itself holds the rows, then scan every file.
    const db = new Database(join(app.dataDir, DATABASE_FILE));
    db.run("PRAGMA wal_checkpoint(FULL)");
    db.close();
    for (const file of readdirSync(app.dataDir)) {
      expect(readFileSync(join(app.dataDir, file)).toString("latin1").includes(secret)).toBe(false);
    }
  });

  test("client_credentials returns no refresh token (RFC 6749 §4.4.3)", async () => {
    await using app = await startTestApp();
    const key = await insertApiKey(app.store, { name: "svc", scopes: ["data:read"] });
    const { body } = await post(app, "/auth/token", { grant_type: "client_credentials", client_id: key.id, client_secret: key.token });
    expect(body.access_token).toBeString();
    expect(body.refresh_token).toBeUndefined();
  });

  test("replay after the grace window revokes the whole family, its access tokens and its sockets", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const probe = new WsProbe(`${app.ws}/ws`, {
      protocols: ["tokengate", `tokengate.bearer.${Buffer.from(first.access_token!).toString("base64url")}`],
    });
    await probe.nextMessage(0);
    const second = await refresh(app, first.refresh_token!);
    expect(second.response.status).toBe(200);

    setSystemTime(new Date(Date.now() + 6_000));
    const replay = await refresh(app, first.refresh_token!);
    expect(replay.response.status).toBe(400);
    expect(replay.body).toMatchObject({ error: "invalid_grant" });
    expect(replay.body.error_description).toContain("already used");
    expect(app.lines.some((line) => line.includes('"msg":"refresh.reuse_detected"'))).toBe(true);
    expect(app.audit.some((line) => line.includes('"audit":"refresh.reuse_detected"'))).toBe(true);

    // The legitimate holder's newer token is dead too, and so are the family's access tokens and sockets.
    expect((await refresh(app, second.body.refresh_token!)).body).toMatchObject({ error: "invalid_grant" });
    expect((await use(app, second.body.access_token!)).status).toBe(401);
    expect((await use(app, first.access_token!)).status).toBe(401);
    expect((await probe.closed).code).toBe(4403);
  });

  test("a concurrent retry within the grace window is not theft", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const [a, b] = await Promise.all([refresh(app, first.refresh_token!), refresh(app, first.refresh_token!)]);
    expect([a.response.status, b.response.status]).toEqual([200, 200]);
    expect((await refresh(app, a.body.refresh_token!)).response.status).toBe(200);
    expect((await refresh(app, b.body.refresh_token!)).response.status).toBe(200);
  });

  test.each([
    ["garbage", "not-a-refresh-token", "not valid"],
    ["right id, wrong secret", "", "not valid"],
  ])("%s → invalid_grant", async (_name, token, description) => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const presented = token === "" ? `${first.refresh_token!.slice(0, 21)}${"A".repeat(43)}` : token;
    const { response, body } = await refresh(app, presented);
    expect(response.status).toBe(400);
    expect(body).toMatchObject({ error: "invalid_grant" });
    expect(body.error_description).toContain(description);
  });

  test("expired refresh tokens, disabled users and wider scopes are refused", async () => {
    await using app = await startTestApp({ REFRESH_TOKEN_TTL_SECONDS: "600" });
    const first = await signIn(app, "data:read");
    expect((await refresh(app, first.refresh_token!, { scope: "ws:connect" })).body).toMatchObject({ error: "invalid_scope" });
    const second = await refresh(app, first.refresh_token!);
    await app.store.setDisabled("bob", Date.now(), Date.now());
    expect((await refresh(app, second.body.refresh_token!)).body.error_description).toContain("disabled");
    await app.store.setDisabled("bob", null, Date.now());
    setSystemTime(new Date(Date.now() + 601_000));
    expect((await refresh(app, second.body.refresh_token!)).body.error_description).toContain("expired");
  });
});

describe("POST /auth/revoke (RFC 7009)", () => {
  test("revoking a refresh token ends its family", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const revoked = await post(app, "/auth/revoke", { token: first.refresh_token!, token_type_hint: "refresh_token" });
    expect(revoked.response.status).toBe(200);
    expect((await refresh(app, first.refresh_token!)).body).toMatchObject({ error: "invalid_grant" });
    expect((await use(app, first.access_token!)).status).toBe(401);
  });

  test("revoking an access token stops that token only", async () => {
    await using app = await startTestApp();
    const first = await signIn(app);
    const second = await refresh(app, first.refresh_token!);
    expect((await post(app, "/auth/revoke", { token: first.access_token! })).response.status).toBe(200);
    const refused = await use(app, first.access_token!);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ description: "The token has been revoked" });
    expect((await use(app, second.body.access_token!)).status).toBe(200);
  });

  test("unknown tokens are answered 200 too (§2.2); a missing token is invalid_request", async () => {
    await using app = await startTestApp();
    expect((await post(app, "/auth/revoke", { token: "whatever" })).response.status).toBe(200);
    const missing = await post(app, "/auth/revoke", {});
    expect(missing.response.status).toBe(400);
    expect(missing.body).toMatchObject({ error: "invalid_request" });
  });
});

test("no password, refresh token or access token reached any server output", () => {
  expectNoSecretsInOutput();
});
