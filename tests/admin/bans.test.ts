/**
 * The admin API for the guard's bans over real sockets: listing, lifting one subject's or all, every
 * refusal (401, 403 without the admin scope, 403 for a cookie change without Origin, 400 naming the
 * field, 404), the audit line of each change, a lifted ban letting its client in on the very next
 * request (the running guard reloads after the change), and the CLI and the API agreeing.
 *
 * Bans come from real guesses: wrong secrets for a real key id, sent through a trusted proxy (this
 * test's own loopback connection) on behalf of LAN addresses, so the admin's requests, made without
 * a forwarding header, come from an address that is never banned.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { cli } from "../support/cli.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { adminCaller, expectRequestsRefused, OUTSIDERS, type AdminCallOptions } from "../support/admin.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = "correct horse battery staple";
let app: TestApp;
let admin: { id: string; token: string };
let viewer: { id: string; token: string };

beforeAll(async () => {
  // Nobody exempt, and the loopback peer a trusted proxy: each guesser is the address it forwards.
  app = await startTestApp({ BAN_EXEMPT: "", TRUSTED_PROXIES: "127.0.0.1" });
  admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  viewer = await insertApiKey(app.store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
  await app.store.insertUser({ username: "root", passwordHash: await hashPassword(PASSWORD), roles: ["admin"], createdAt: Date.now() });
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

type Body = Record<string, unknown>;
interface BanView {
  readonly subject: string;
  readonly started_at: string | null;
  readonly until: string | null;
  readonly level: number;
}

/** The admin API as this file's admin. */
const call = (path: string, options: AdminCallOptions = {}) =>
  adminCaller(
    () => app.http,
    () => admin.token,
  )<Body>(path, options);

/** A protected request from `address` (forwarded by the trusted loopback proxy) with `token`. */
const fetchAs = async (address: string, token: string) =>
  (await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": token, "x-forwarded-for": address } })).status;

/** The key's id with a secret nobody issued: a guess against that key. */
const wrongSecretFor = (id: string) => trackSecret(`tg_${id}_${"A".repeat(43)}`);

/** Ten wrong secrets for `keyId` from `address`: the guard bans both `addr:<address>` and `key:<keyId>`. */
async function guessFrom(address: string, keyId: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) await fetchAs(address, wrongSecretFor(keyId));
}

const bans = async () => (await call("/bans")).body.bans as BanView[];
const subjects = async () => (await bans()).map((ban) => ban.subject).sort();
const auditLines = () => app.audit.map((line) => JSON.parse(line) as Body);

describe("bans", () => {
  test("list shows what ten guesses banned; lifting the address lets its client in on the very next request", async () => {
    const lamp = await insertApiKey(app.store, { name: "lamp", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    expect(await fetchAs("192.168.1.50", lamp.token)).toBe(200);
    await guessFrom("192.168.1.50", lamp.id);
    expect(await subjects()).toEqual(["addr:192.168.1.50", `key:${lamp.id}`].sort());
    const listed = (await bans()).find((ban) => ban.subject === "addr:192.168.1.50")!;
    expect(listed.level).toBe(1);
    expect(Date.parse(listed.until!)).toBeGreaterThan(Date.now());
    // Banned: even the lamp's own key is refused from there.
    expect(await fetchAs("192.168.1.50", lamp.token)).toBe(429);
    const lifted = await call("/bans/clear", { body: { subject: "addr:192.168.1.50" } });
    expect(lifted.status).toBe(200);
    expect(lifted.body).toEqual({ subject: "addr:192.168.1.50", cleared: 1 });
    // At once: the change refreshed the keyring, whose reload hook reloads the guard before this request.
    expect(await fetchAs("192.168.1.50", lamp.token)).toBe(200);
    expect(auditLines()).toContainEqual(
      expect.objectContaining({ audit: "admin.action", action: "bans.clear", by: admin.id, subject: "addr:192.168.1.50", cleared: 1 }),
    );
    // The key's own ban still holds: another address guessing at it is told 429, not 401.
    expect(await fetchAs("192.168.1.51", wrongSecretFor(lamp.id))).toBe(429);
    expect((await call("/bans/clear", { body: { subject: `key:${lamp.id}` } })).body).toEqual({ subject: `key:${lamp.id}`, cleared: 1 });
    expect(await fetchAs("192.168.1.52", wrongSecretFor(lamp.id))).toBe(401);
  });

  test("clear without a subject lifts every ban, audited with the count; with nothing banned it lifts none", async () => {
    const plug = await insertApiKey(app.store, { name: "plug", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    await guessFrom("192.168.1.60", plug.id);
    const active = (await bans()).length;
    expect(active).toBeGreaterThanOrEqual(2);
    const all = await call("/bans/clear", { body: {} });
    expect(all.status).toBe(200);
    expect(all.body).toEqual({ subject: null, cleared: active });
    expect(await bans()).toEqual([]);
    expect(await fetchAs("192.168.1.60", plug.token)).toBe(200);
    expect(auditLines()).toContainEqual(expect.objectContaining({ action: "bans.clear", subject: null, cleared: active }));
    expect((await call("/bans/clear", { body: {} })).body).toEqual({ subject: null, cleared: 0 });
  });

  test("a subject with no active ban is 404; a malformed one is 400 naming subject", async () => {
    const none = await call("/bans/clear", { body: { subject: "addr:192.168.1.99" } });
    expect(none.status).toBe(404);
    expect(none.body.code).toBe("not_found");
    expect(none.body.detail).toContain("addr:192.168.1.99");
    for (const subject of ["192.168.1.99", "addr:not-an-ip", "key:xyz", "session:abc", 42, null]) {
      const refused = await call("/bans/clear", { body: { subject } });
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe("invalid_request");
      expect(refused.body.detail).toContain("subject:");
    }
  });
});

describe("who may call it", () => {
  test.each(OUTSIDERS)("%s is refused, and nothing is lifted", async (_name, outsider, status, code) => {
    const bulb = await insertApiKey(app.store, { name: "bulb", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    await guessFrom("192.168.1.70", bulb.id);
    const requests = [
      ["/bans", undefined],
      ["/bans/clear", {}],
      ["/bans/clear", { subject: "addr:192.168.1.70" }],
    ] as const;
    await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
    expect(await fetchAs("192.168.1.70", bulb.token)).toBe(429);
    expect((await call("/bans/clear", { body: {} })).status).toBe(200);
  });

  test("an admin signed in with the cookie: lifting needs the page's Origin (CSRF), listing does not", async () => {
    const { cookie } = await signInWithPassword(app.http, "root", PASSWORD);
    const fan = await insertApiKey(app.store, { name: "fan", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    await guessFrom("192.168.1.80", fan.id);
    expect((await call("/bans", { token: null, headers: { cookie } })).status).toBe(200);
    const forged = await call("/bans/clear", { token: null, headers: { cookie }, body: {} });
    expect(forged.status).toBe(403);
    expect(forged.body.code).toBe("forbidden_origin");
    expect(await fetchAs("192.168.1.80", fan.token)).toBe(429);
    const own = await call("/bans/clear", { token: null, headers: { cookie, origin: app.http }, body: { subject: "addr:192.168.1.80" } });
    expect(own.status).toBe(200);
    expect(await fetchAs("192.168.1.80", fan.token)).toBe(200);
    expect(auditLines()).toContainEqual(expect.objectContaining({ action: "bans.clear", by: "user:root", by_kind: "user" }));
    await call("/bans/clear", { body: {} });
  });
});

describe("one implementation, two faces", () => {
  test("both faces list the same bans, and a ban lifted by the CLI and one lifted by the API are gone alike", async () => {
    const cam = await insertApiKey(app.store, { name: "cam", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    await guessFrom("192.168.1.90", cam.id);
    const byCli = JSON.parse((await cli(app.dataDir, "bans", "list", "--json")).stdout) as BanView[];
    expect(byCli).toEqual(await bans());
    const viaCli = await cli(app.dataDir, "bans", "clear", "addr:192.168.1.90");
    expect(viaCli.code).toBe(0);
    expect(viaCli.stdout).toBe("Lifted 1 ban.\n");
    expect((await call("/bans/clear", { body: { subject: `key:${cam.id}` } })).body).toEqual({ subject: `key:${cam.id}`, cleared: 1 });
    const left = await app.store.listBans(Date.now());
    expect(left).toEqual([]);
    // Each face says "not banned" alike for what the other lifted: exit 3, 404.
    expect((await cli(app.dataDir, "bans", "clear", `key:${cam.id}`)).code).toBe(3);
    expect((await call("/bans/clear", { body: { subject: "addr:192.168.1.90" } })).status).toBe(404);
    // A running server follows the CLI's change by its poll.
    await app.app.keyring.refresh();
    expect(await fetchAs("192.168.1.90", cam.token)).toBe(200);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
