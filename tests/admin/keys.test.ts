/**
 * The admin API for keys over real sockets: every endpoint's success and refusals (no credential
 * 401, no admin scope 403, a cookie without Origin 403, a bad field 400 naming it, 404, 409), the
 * self-revocation guard, the audit line of each change, a revoked key's socket closing 4403, and
 * the same operation through the CLI and the API leaving the same record.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { cli } from "../support/cli.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { adminCaller, expectRequestsRefused, type AdminCallOptions } from "../support/admin.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = "correct horse battery staple";
let app: TestApp;
let admin: { id: string; token: string };
let viewer: { id: string; token: string };

beforeAll(async () => {
  app = await startTestApp();
  admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  viewer = await insertApiKey(app.store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
  await app.store.insertUser({ username: "root", passwordHash: await hashPassword(PASSWORD), roles: ["admin"], createdAt: Date.now() });
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

/** The admin API as this file's admin. */
const call = (path: string, options: AdminCallOptions = {}) =>
  adminCaller(
    () => app.http,
    () => admin.token,
  )<Record<string, any>>(path, options);

const auditLines = () => app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);

describe("keys", () => {
  test("create: 201 with the secret once, the key listed without it, audited with the acting admin", async () => {
    const created = await call("/keys", { body: { name: "kitchen lamp", scopes: ["data:read"], expires: "30d" } });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^tg_[0-9a-f]{12}_/);
    expect(created.body.key).toMatchObject({ name: "kitchen lamp", scopes: ["data:read"], state: "active", revoked_at: null });
    expect(Date.parse(created.body.key.expires_at) - Date.parse(created.body.key.created_at)).toBe(30 * 86_400_000);
    const listed = await call("/keys");
    expect(listed.status).toBe(200);
    expect(listed.body.keys.map((key: { id: string }) => key.id)).toContain(created.body.key.id);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
    expect(auditLines()).toContainEqual(
      expect.objectContaining({ audit: "admin.action", action: "keys.create", by: admin.id, key_id: created.body.key.id }),
    );
    // The new key works at once.
    expect((await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": created.body.secret } })).status).toBe(200);
  });

  test.each([
    ["no name", {}, ["name"]],
    ["an empty name and a bad duration", { name: " ", expires: "1y" }, ["name", "expires"]],
    ["a misspelt scope", { name: "lamp", scopes: ["data:raed"] }, ["scopes"]],
    ["a scope of the wrong shape", { name: "lamp", scopes: ["Data Read"] }, ["scopes"]],
    ["a lifetime past a century", { name: "lamp", expires: "36501d" }, ["expires"]],
  ])("create with %s: 400 naming %j, nothing stored", async (_name, body, fields) => {
    const before = (await app.store.listKeys()).length;
    const answer = await call("/keys", { body });
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe("invalid_request");
    for (const field of fields) expect(answer.body.detail).toContain(`${field}:`);
    expect((await app.store.listKeys()).length).toBe(before);
  });

  test("a scope nothing requires yet is accepted with allow_new_scope", async () => {
    const answer = await call("/keys", { body: { name: "display", scopes: ["display:show"], allow_new_scope: true } });
    expect(answer.status).toBe(201);
    expect(answer.body.key.scopes).toEqual(["display:show"]);
  });

  test("revoke: the key's open socket closes 4403 within a second; revoking again is 409; an unknown id 404", async () => {
    const device = await call("/keys", { body: { name: "doorbell" } });
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "x-auth-token": device.body.secret }) });
    expect(await probe.opened).toBe(true);
    const started = performance.now();
    const revoked = await call("/keys/revoke", { body: { id: device.body.key.id } });
    expect(revoked.status).toBe(200);
    expect(revoked.body.key.state).toBe("revoked");
    expect((await probe.closed).code).toBe(4403);
    const closedAfter = performance.now() - started;
    expect(closedAfter).toBeLessThan(1_000);
    console.log(`admin API revocation: the device's socket closed ${closedAfter.toFixed(0)} ms after the request was sent`);
    const again = await call("/keys/revoke", { body: { id: device.body.key.id } });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("conflict");
    expect((await call("/keys/revoke", { body: { id: "0123456789ab" } })).status).toBe(404);
    expect((await call("/keys/revoke", { body: { id: "not a key id" } })).body.detail).toContain("id:");
  });

  test("an admin cannot revoke the key they are using without confirm: true", async () => {
    const own = await call("/keys", { body: { name: "second admin", scopes: ["*"] } });
    const refused = await call("/keys/revoke", { token: own.body.secret, body: { id: own.body.key.id } });
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain("confirm: true");
    expect((await app.store.getKey(own.body.key.id))!.revokedAt).toBeNull();
    const confirmed = await call("/keys/revoke", { token: own.body.secret, body: { id: own.body.key.id, confirm: true } });
    expect(confirmed.status).toBe(200);
  });

  test("rotate: a new key with the same name and scopes, the old one works for the overlap", async () => {
    const old = await call("/keys", { body: { name: "garage", scopes: ["data:read"] } });
    const rotated = await call("/keys/rotate", { body: { id: old.body.key.id, overlap: "1h" } });
    expect(rotated.status).toBe(201);
    expect(rotated.body.key).toMatchObject({ name: "garage", scopes: ["data:read"], state: "active" });
    expect(rotated.body.old).toMatchObject({ id: old.body.key.id, replaced_by: rotated.body.key.id, state: "active" });
    expect((await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": old.body.secret } })).status).toBe(200);
    expect((await call("/keys/rotate", { body: { id: old.body.key.id, overlap: "400d" } })).body.detail).toContain("overlap:");
  });
});

describe("who may call it", () => {
  test.each([
    ["no credential", { token: null }, 401, "missing_token"],
    ["a key without the admin scope", { token: "VIEWER" }, 403, "insufficient_scope"],
  ])("%s → %d %s, nothing done", async (_name, options, status, code) => {
    const before = (await app.store.listKeys()).length;
    const token = options.token === "VIEWER" ? viewer.token : options.token;
    const requests = [
      ["/keys", undefined],
      ["/keys", { name: "sneaky" }],
      ["/keys/revoke", { id: admin.id }],
    ] as const;
    await expectRequestsRefused(call, requests, { token, status, code });
    expect((await app.store.listKeys()).length).toBe(before);
    expect((await app.store.getKey(admin.id))!.revokedAt).toBeNull();
  });

  test("an admin signed in with the cookie: a change needs the page's Origin (CSRF), a read does not", async () => {
    const { cookie } = await signInWithPassword(app.http, "root", PASSWORD);
    expect((await call("/keys", { token: null, headers: { cookie } })).status).toBe(200);
    const forged = await call("/keys", { token: null, headers: { cookie }, body: { name: "from a forged form" } });
    expect(forged.status).toBe(403);
    expect(forged.body.code).toBe("forbidden_origin");
    const own = await call("/keys", { token: null, headers: { cookie, origin: app.http }, body: { name: "from the console" } });
    expect(own.status).toBe(201);
    expect(auditLines()).toContainEqual(expect.objectContaining({ action: "keys.create", by: "user:root", by_kind: "user" }));
  });

  test("malformed bodies: not JSON, not an object, too large → 400/413, never a 500", async () => {
    const send = (body: string, type = "application/json") =>
      fetch(`${app.http}/admin/api/keys`, { method: "POST", headers: { "x-auth-token": admin.token, "content-type": type }, body });
    expect((await send("{")).status).toBe(400);
    expect((await send("[1]")).status).toBe(400);
    expect((await send("name=x", "application/x-www-form-urlencoded")).status).toBe(400);
    expect((await send(JSON.stringify({ name: "x".repeat(70_000) }))).status).toBe(413);
  });
});

describe("one implementation, two faces", () => {
  test("a key made by the CLI and one made by the API are stored alike, and each face lists the other's", async () => {
    const viaCli = await cli(app.dataDir, "keys", "create", "--name", "twin", "--scopes", "data:read", "--expires", "7d", "--json");
    expect(viaCli.code).toBe(0);
    const cliKey = JSON.parse(viaCli.stdout) as { id: string; key: string };
    trackSecret(cliKey.key);
    const viaApi = await call("/keys", { body: { name: "twin", scopes: ["data:read"], expires: "7d" } });
    await app.app.keyring.refresh();
    const [a, b] = await Promise.all([app.store.getKey(cliKey.id), app.store.getKey(viaApi.body.key.id)]);
    const shape = (record: typeof a) => ({
      name: record!.name,
      scopes: record!.scopes,
      lifetime: record!.expiresAt! - record!.createdAt,
      revokedAt: record!.revokedAt,
    });
    expect(shape(a)).toEqual(shape(b));
    expect((await call("/keys")).body.keys.map((key: { id: string }) => key.id)).toContain(cliKey.id);
    const listedByCli = JSON.parse((await cli(app.dataDir, "keys", "list", "--json")).stdout) as Array<{ id: string }>;
    expect(listedByCli.map((key) => key.id)).toContain(viaApi.body.key.id);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});

describe("changing a key", () => {
  const update = (body: unknown) => call("/keys/update", { body });

  test("rename, a new lifetime, never expiring; a revoked key cannot change; an empty change is 400", async () => {
    const key = await call("/keys", { body: { name: "hall sensor", expires: "1d" } });
    const renamed = await update({ id: key.body.key.id, name: "porch sensor", expires: "30d" });
    expect(renamed.status).toBe(200);
    expect(renamed.body.key.name).toBe("porch sensor");
    expect(Date.parse(renamed.body.key.expires_at) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect((await update({ id: key.body.key.id, expires: "never" })).body.key.expires_at).toBeNull();
    const empty = await update({ id: key.body.key.id });
    expect(empty.status).toBe(400);
    expect(empty.body.detail).toContain("give at least one of name, scopes, expires");
    await call("/keys/revoke", { body: { id: key.body.key.id } });
    expect((await update({ id: key.body.key.id, name: "again" })).status).toBe(409);
    expect(auditLines()).toContainEqual(expect.objectContaining({ action: "keys.update", key_id: key.body.key.id, by: admin.id }));
  });

  test("narrowing a key's scopes holds at once and closes its socket that needed a scope it lost (4403)", async () => {
    const device = await call("/keys", { body: { name: "speaker", scopes: ["data:read", "ws:connect"] } });
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "x-auth-token": device.body.secret }) });
    expect(await probe.opened).toBe(true);
    const narrowed = await update({ id: device.body.key.id, scopes: ["data:read"] });
    expect(narrowed.body.key.scopes).toEqual(["data:read"]);
    expect((await probe.closed).code).toBe(4403);
    expect((await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": device.body.secret } })).status).toBe(200);
    const ticket = await fetch(`${app.http}/auth/ws-ticket`, { method: "POST", headers: { "x-auth-token": device.body.secret } });
    expect(ticket.status).toBe(403);
  });

  test("a browser session opened with a key loses what the key loses", async () => {
    const device = await call("/keys", { body: { name: "wall tablet", scopes: ["data:read", "ws:connect"] } });
    const signIn = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ api_key: device.body.secret }),
    });
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    trackSecret(cookie.slice(4));
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    await update({ id: device.body.key.id, scopes: ["data:read"] });
    expect((await probe.closed).code).toBe(4403);
    const who = (await (await fetch(`${app.http}/auth/whoami`, { headers: { cookie } })).json()) as { scopes: string[] };
    expect(who.scopes).toEqual(["data:read"]);
  });
});

describe("what the admin's credentials reach", () => {
  test("the admin scope is a known scope: a key can be given it without allow_new_scope", async () => {
    const answer = await call("/keys", { body: { name: "second phone", scopes: ["admin"] } });
    expect(answer.status).toBe(201);
    expect(answer.body.key.scopes).toEqual(["admin"]);
  });

  test("rotating or narrowing the key you are using needs confirm: true; renaming it does not", async () => {
    const own = await call("/keys", { body: { name: "admin laptop", scopes: ["*"] } });
    const token = own.body.secret as string;
    expect((await call("/keys/rotate", { token, body: { id: own.body.key.id } })).status).toBe(409);
    expect((await call("/keys/update", { token, body: { id: own.body.key.id, scopes: ["data:read"] } })).status).toBe(409);
    expect((await call("/keys/update", { token, body: { id: own.body.key.id, name: "admin laptop 2" } })).status).toBe(200);
    expect((await app.store.getKey(own.body.key.id))!.scopes).toEqual(["*"]);
  });

  test("an access token minted from a key is refused once the key's scopes are narrowed", async () => {
    const device = await call("/keys", { body: { name: "robot", scopes: ["data:read", "ws:connect"] } });
    const grant = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: device.body.key.id, client_secret: device.body.secret }),
    });
    const jwt = trackSecret(((await grant.json()) as { access_token: string }).access_token);
    expect((await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${jwt}` } })).status).toBe(200);
    await call("/keys/update", { body: { id: device.body.key.id, scopes: ["data:read"] } });
    expect((await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${jwt}` } })).status).toBe(401);
    expect((await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": device.body.secret } })).status).toBe(200);
  });

  test("extending a key's expiry keeps its open socket past the old end", async () => {
    const device = await call("/keys", { body: { name: "short-lived", expires: "2s" } });
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "x-auth-token": device.body.secret }) });
    expect(await probe.opened).toBe(true);
    await call("/keys/update", { body: { id: device.body.key.id, expires: "1h" } });
    await Bun.sleep(2_600);
    expect(probe.socket.readyState).toBe(WebSocket.OPEN);
    probe.socket.close();
  });
});
