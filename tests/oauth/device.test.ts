/**
 * Device login (RFC 8628) over real sockets, driven by a plain HTTP client written from the RFC
 * (tests/support/device.ts), not by tokengate's CLI: the whole flow, every §3.5 answer
 * (authorization_pending, slow_down with the interval 5 s longer, access_denied, expired_token on
 * the injected clock), invalid_client, invalid_scope, single use, narrowed scopes, an API key for
 * a client DEVICE_CLIENTS marks so, and user-code guessing banned per address, per typist and per code.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../auth/config/config.ts";
import { DEVICE_MAX_FAILURES } from "../../auth/oauth/device.ts";
import {
  completeVerificationUri,
  deviceCredentialOf,
  formatUserCode,
  generateDeviceCode,
  generateUserCode,
  parseDeviceClients,
  parseDeviceCode,
  parseUserCode,
  USER_CODE_ALPHABET,
} from "../../auth/secrets/device-codes.ts";
import { ENGINES, startEngineApp } from "../support/admin-engines.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import {
  asPage,
  callApproval,
  claimsOf,
  pollToken,
  requestDeviceCode,
  signInPerson,
  startLogin,
  type StartedLogin,
} from "../support/device.ts";

/** The app's clock, moved by the tests: expiry and intervals without waiting. */
function testClock() {
  let at = Date.now();
  return { now: () => at, advance: (ms: number) => void (at += ms) };
}

async function appWithClock(env: Record<string, string> = {}) {
  const clock = testClock();
  const app = await startTestApp(env, { now: clock.now });
  return { app, clock };
}

/** A person approves the login from their browser session, with the scopes given (all asked for, when absent). */
async function approve(app: TestApp, login: StartedLogin, session: { cookie: string }, scopes?: string[]) {
  const body = scopes === undefined ? { user_code: login.userCode } : { user_code: login.userCode, scopes };
  return callApproval(app, "approve", body, { cookie: session.cookie, origin: app.http });
}

const auditEvents = (app: TestApp, event: string) =>
  app.audit.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.audit === event);

describe("device codes and user codes", () => {
  test("user codes: 8 letters of the RFC's consonants, every letter in use, shown as two groups of four", () => {
    const codes = Array.from({ length: 2000 }, generateUserCode);
    expect(codes.every((code) => /^[BCDFGHJKLMNPQRSTVWXZ]{8}$/.test(code))).toBe(true);
    expect(new Set(codes.join("")).size).toBe(USER_CODE_ALPHABET.length);
    expect(new Set(codes).size).toBe(codes.length);
    expect(formatUserCode("BDWPHQPK")).toBe("BDWP-HQPK");
    expect(completeVerificationUri("https://gate.local/auth/device", "BDWPHQPK")).toBe(
      "https://gate.local/auth/device?user_code=BDWP-HQPK",
    );
  });

  test.each([
    ["BDWP-HQPK", "BDWPHQPK"],
    ["bdwp-hqpk", "BDWPHQPK"],
    [" bdwp hqpk ", "BDWPHQPK"],
    ["BDWPHQPK", "BDWPHQPK"],
    ["B-D-W-P-H-Q-P-K", "BDWPHQPK"],
    ["BDWP-HQPA", undefined],
    ["BDWP-HQP", undefined],
    ["BDWP-HQPKK", undefined],
    ["BDWP_HQPK", undefined],
    ["ßßßß", undefined],
    ["ＢＤＷＰＨＱＰＫ", undefined],
    ["", undefined],
    ["B".repeat(100), undefined],
  ])("parseUserCode(%p) → %p", (text, expected) => {
    expect(parseUserCode(text)).toBe(expected);
  });

  test("device codes: tgd_ and 43 base64url characters; anything else is not one", () => {
    const code = trackSecret(generateDeviceCode());
    expect(parseDeviceCode(code)).toBe(code);
    expect(parseDeviceCode(`${code}x`)).toBeUndefined();
    expect(parseDeviceCode(code.replace("tgd_", "tgr_"))).toBeUndefined();
  });

  test("DEVICE_CLIENTS: names, =key, =tokens, * for the others; malformed or twice is refused", () => {
    const clients = parseDeviceClients(" tv-box , esp32=key, *=tokens ")!;
    expect([deviceCredentialOf(clients, "tv-box"), deviceCredentialOf(clients, "esp32"), deviceCredentialOf(clients, "other")]).toEqual([
      "tokens",
      "key",
      "tokens",
    ]);
    expect(deviceCredentialOf(parseDeviceClients("tv-box")!, "fridge")).toBeUndefined();
    expect(deviceCredentialOf(parseDeviceClients("")!, "tv-box")).toBeUndefined();
    for (const bad of ["tv box", "a=b", "a,a", "*,*", "a=key=key", "x".repeat(65)]) expect(parseDeviceClients(bad)).toBeUndefined();
    const refused = parseConfig({ DEVICE_CLIENTS: "tv box" }, { isTTY: false });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.problems[0]).toMatchObject({ variable: "DEVICE_CLIENTS", message: expect.stringContaining("=key") });
  });
});

describe("POST /auth/device_authorization (RFC 8628 §3.1–3.2)", () => {
  test("codes, where to enter them, how long and how often; stored only as digests", async () => {
    await using app = await startTestApp();
    const answer = await requestDeviceCode(app.http, { client_id: "tv-box", scope: "data:read ws:connect" });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("cache-control")).toBe("no-store");
    const body = answer.body;
    expect(body.device_code).toMatch(/^tgd_[A-Za-z0-9_-]{43}$/);
    expect(body.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(body.verification_uri).toBe(`${app.http}/auth/device`);
    expect(body.verification_uri_complete).toBe(`${app.http}/auth/device?user_code=${String(body.user_code)}`);
    expect([body.expires_in, body.interval]).toEqual([600, 5]);
    const database = await Bun.file(`${app.dataDir}/tokengate.db`).bytes();
    const wal = await Bun.file(`${app.dataDir}/tokengate.db-wal`)
      .bytes()
      .catch(() => new Uint8Array());
    const stored = Buffer.concat([database, wal]).toString("latin1");
    expect(stored).not.toContain(String(body.device_code));
    expect(stored).not.toContain(String(body.user_code).replace("-", ""));
    expectNoSecretsInOutput();
  });

  test("PUBLIC_URL names the page, whatever Host the device used", async () => {
    await using app = await startTestApp({ PUBLIC_URL: "https://gate.local:8443" });
    const login = await startLogin(app.http, "tv-box");
    expect(login.uri).toBe("https://gate.local:8443/auth/device");
    expect(login.complete).toBe(`https://gate.local:8443/auth/device?user_code=${login.userCode}`);
  });

  test.each<[string, number, string, Record<string, string>]>([
    ["no client_id", 400, "invalid_request", { scope: "data:read" }],
    ["a client_id that is a key", 400, "invalid_request", { client_id: `tg_0123456789ab_${"A".repeat(43)}` }],
    ["a malformed scope", 400, "invalid_scope", { client_id: "tv-box", scope: "Data Read!" }],
    ["every scope (*)", 400, "invalid_scope", { client_id: "tv-box", scope: "*" }],
    ["a scope nobody knows", 400, "invalid_scope", { client_id: "tv-box", scope: "data:read garage:open" }],
    [
      "`scopes`, not the RFC's `scope` (not read as asking for the defaults)",
      400,
      "invalid_request",
      { client_id: "tv-box", scopes: "admin" },
    ],
    ["a client secret (devices are public clients)", 401, "invalid_client", { client_id: "tv-box", client_secret: "x" }],
  ])("%s → %d %s", async (_name, status, error, fields) => {
    await using app = await startTestApp();
    const answer = await requestDeviceCode(app.http, fields);
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject({ error });
    expect(answer.headers.get("cache-control")).toBe("no-store");
  });

  test("DEVICE_CLIENTS: a client not listed gets 401 invalid_client; set but empty, every client does", async () => {
    await using listed = await startTestApp({ DEVICE_CLIENTS: "tv-box" });
    const refused = await requestDeviceCode(listed.http, { client_id: "fridge" });
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ error: "invalid_client" });
    expect(refused.headers.get("www-authenticate")).toContain("Basic");
    expect((await requestDeviceCode(listed.http, { client_id: "tv-box" })).status).toBe(200);
    await using none = await startTestApp({ DEVICE_CLIENTS: "" });
    expect((await requestDeviceCode(none.http, { client_id: "tv-box" })).body).toMatchObject({ error: "invalid_client" });
  });

  test("the client_id may come by HTTP Basic with an empty secret, as OAuth libraries send it", async () => {
    await using app = await startTestApp();
    const basic = `Basic ${Buffer.from("tv-box:").toString("base64")}`;
    const answer = await requestDeviceCode(app.http, {}, { authorization: basic });
    expect(answer.status).toBe(200);
  });

  test("ten logins waiting from one address: the next waits (429)", async () => {
    await using app = await startTestApp();
    for (let index = 0; index < 10; index++) await startLogin(app.http, `box-${index}`);
    const refused = await requestDeviceCode(app.http, { client_id: "box-10" });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
  });
});

describe("waiting logins per address", () => {
  test("a global IPv6 address counts as its /64: ten waiting from one /64 (each from its own address), the next waits", async () => {
    await using app = await startTestApp({ TRUSTED_PROXIES: "127.0.0.1" });
    const from = (address: string) => ({ "x-forwarded-for": address });
    for (let index = 0; index < 10; index++)
      expect((await requestDeviceCode(app.http, { client_id: `box-${index}` }, from(`2001:db8:5:6::${index + 1}`))).status).toBe(200);
    const refused = await requestDeviceCode(app.http, { client_id: "box-10" }, from("2001:db8:5:6:aaaa:bbbb:cccc:dddd"));
    expect(refused.status).toBe(429);
    expect((await requestDeviceCode(app.http, { client_id: "box-11" }, from("2001:db8:5:7::1"))).status).toBe(200);
    // LAN addresses count one by one, as the guard counts them.
    for (let index = 0; index < 11; index++)
      expect((await requestDeviceCode(app.http, { client_id: `lan-${index}` }, from(`fd00::${index + 1}`))).status).toBe(200);
  });
});

describe("the device's poll (RFC 8628 §3.4–3.5)", () => {
  test("the whole flow: pending, a person approves, the device gets tokens once; they work and refresh", async () => {
    const { app, clock } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box", "data:read ws:connect");
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body).toMatchObject({ error: "authorization_pending" });
    const person = await signInPerson(app, "vi", ["viewer"]);
    const looked = await callApproval(app, "lookup", { user_code: login.userCode.toLowerCase() }, asPage(app, person));
    expect(looked.status).toBe(200);
    expect(looked.body).toMatchObject({
      user_code: login.userCode,
      client_id: "tv-box",
      scopes: ["data:read", "ws:connect"],
      grantable: ["data:read", "ws:connect"],
      credential: "tokens",
      approvable: true,
      requested_from: "127.0.0.1",
      verification_uri_complete: login.complete,
    });
    expect((await approve(app, login, person)).body).toEqual({ approved: true, client_id: "tv-box", scopes: ["data:read", "ws:connect"] });
    clock.advance(login.interval * 1000);
    const granted = await pollToken(app.http, login.deviceCode, "tv-box");
    expect(granted.status).toBe(200);
    expect(granted.headers.get("cache-control")).toBe("no-store");
    expect(granted.body).toMatchObject({ token_type: "Bearer", expires_in: 900, scope: "data:read ws:connect" });
    const access = String(granted.body.access_token);
    expect(claimsOf(access)).toMatchObject({ sub: "user:vi", client_id: "tv-box", scope: "data:read ws:connect" });
    expect((await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${access}` } })).status).toBe(200);
    // Single use: the same code again is spent.
    clock.advance(login.interval * 1000);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body).toMatchObject({ error: "invalid_grant" });
    const refreshed = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: String(granted.body.refresh_token), client_id: "tv-box" }),
    });
    expect(refreshed.status).toBe(200);
    trackSecret(String(((await refreshed.json()) as Record<string, unknown>).refresh_token));
    const [approved] = auditEvents(app, "device.approved");
    expect(approved).toMatchObject({ client_id: "tv-box", scopes: "data:read ws:connect", by: "user:vi", requested_from: "127.0.0.1" });
    expectNoSecretsInOutput();
  }, 20_000);

  test("slow_down: a poll within the interval makes it 5 s longer, and the longer one holds", async () => {
    const { app, clock } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box");
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("authorization_pending");
    const tooSoon = await pollToken(app.http, login.deviceCode, "tv-box");
    expect(tooSoon.status).toBe(400);
    expect(tooSoon.body).toMatchObject({ error: "slow_down", error_description: expect.stringContaining("10 seconds") });
    clock.advance(6_000);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("slow_down");
    clock.advance(15_000);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("authorization_pending");
    clock.advance(14_000);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("slow_down");
  });

  test("expired_token once 10 minutes pass on the injected clock; the person can no longer approve it", async () => {
    const { app, clock } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    clock.advance(600_000);
    const expired = await pollToken(app.http, login.deviceCode, "tv-box");
    expect(expired.status).toBe(400);
    expect(expired.body).toMatchObject({ error: "expired_token" });
    const late = await approve(app, login, person);
    expect(late.status).toBe(400);
    expect(late.body).toMatchObject({ code: "invalid_grant" });
  });

  test("approved but not collected before the end: expired_token too", async () => {
    const { app, clock } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    expect((await approve(app, login, person)).status).toBe(200);
    clock.advance(600_000);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body).toMatchObject({ error: "expired_token" });
  });

  test("denied: access_denied (400), audited; it cannot be approved afterwards", async () => {
    await using app = await startTestApp();
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    expect((await callApproval(app, "deny", { user_code: login.userCode }, asPage(app, person))).body).toEqual({
      denied: true,
      client_id: "tv-box",
    });
    const denied = await pollToken(app.http, login.deviceCode, "tv-box");
    expect(denied.status).toBe(400);
    expect(denied.body).toMatchObject({ error: "access_denied" });
    expect((await approve(app, login, person)).body).toMatchObject({ code: "invalid_grant" });
    expect(auditEvents(app, "device.denied")[0]).toMatchObject({ client_id: "tv-box", by: "user:vi" });
  });

  test.each<[string, string, (login: StartedLogin) => [string, string, Record<string, string>]]>([
    ["another client's id", "invalid_grant", (login) => [login.deviceCode, "fridge", {}]],
    ["a device code nobody issued", "invalid_grant", () => [trackSecret(generateDeviceCode()), "tv-box", {}]],
    ["not a device code", "invalid_grant", () => ["nonsense", "tv-box", {}]],
    ["no device_code", "invalid_request", () => ["", "tv-box", {}]],
    ["no client_id", "invalid_request", (login) => [login.deviceCode, "", {}]],
    ["a scope (the person chooses it)", "invalid_request", (login) => [login.deviceCode, "tv-box", { scope: "data:read" }]],
  ])("%s → %s", async (_name, error, make) => {
    await using app = await startTestApp();
    const login = await startLogin(app.http, "tv-box");
    const [code, clientId, extra] = make(login);
    const answer = await pollToken(app.http, code, clientId, extra);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error });
  });
});

describe("what the person may grant", () => {
  test("narrowed: the token carries only the ticked scopes; more than asked, or more than they hold, is refused", async () => {
    const { app, clock } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box", "data:read ws:connect admin");
    const person = await signInPerson(app, "vi", ["viewer"]);
    const looked = await callApproval(app, "lookup", { user_code: login.userCode }, asPage(app, person));
    expect(looked.body).toMatchObject({ scopes: ["data:read", "ws:connect", "admin"], grantable: ["data:read", "ws:connect"] });
    for (const scopes of [undefined, ["admin"], ["data:read", "bans:read"], []]) {
      const refused = await approve(app, login, person, scopes);
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe(scopes?.length === 0 ? "invalid_request" : "invalid_scope");
    }
    expect((await approve(app, login, person, ["data:read"])).status).toBe(200);
    clock.advance(5_000);
    const granted = await pollToken(app.http, login.deviceCode, "tv-box");
    expect(granted.body.scope).toBe("data:read");
    const access = String(granted.body.access_token);
    expect((await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${access}` } })).status).toBe(200);
    const ticket = await fetch(`${app.http}/auth/ws-ticket`, { method: "POST", headers: { authorization: `Bearer ${access}` } });
    expect(ticket.status).toBe(403);
    expectNoSecretsInOutput();
  });

  test("a client DEVICE_CLIENTS marks =key gets an API key named after it, no refresh token", async () => {
    const { app, clock } = await appWithClock({ DEVICE_CLIENTS: "esp32=key" });
    await using _app = app;
    const login = await startLogin(app.http, "esp32", "data:read");
    // Only an admin may make a key (the next test but one: anyone else is refused).
    const person = await signInPerson(app, "ad", ["admin"]);
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, asPage(app, person))).body.credential).toBe("key");
    expect((await approve(app, login, person)).status).toBe(200);
    clock.advance(5_000);
    const granted = await pollToken(app.http, login.deviceCode, "esp32");
    expect(granted.status).toBe(200);
    expect(granted.body).toMatchObject({ token_type: "Bearer", scope: "data:read", name: "esp32 (device login)" });
    expect(granted.body.access_token).toMatch(/^tg_[0-9a-f]{12}_/);
    expect(granted.body.refresh_token).toBeUndefined();
    const key = await app.store.getKey(String(granted.body.key_id));
    expect(key).toMatchObject({ name: "esp32 (device login)", scopes: ["data:read"], expiresAt: null });
    const works = await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": String(granted.body.access_token) } });
    expect(works.status).toBe(200);
    expectNoSecretsInOutput();
  });

  test("approve with the OAuth spelling `scope` is refused (400), not read as approve-everything", async () => {
    const { app } = await appWithClock();
    await using _app = app;
    const login = await startLogin(app.http, "tv-box", "data:read ws:connect");
    const person = await signInPerson(app, "vi", ["viewer"]);
    const refused = await callApproval(app, "approve", { user_code: login.userCode, scope: "data:read" }, asPage(app, person));
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe("invalid_request");
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, asPage(app, person))).status).toBe(200);
  });

  test("a key that approves a =key device is judged again at the poll: the device's key ends with it, and a revoked approver gives nothing", async () => {
    const { app, clock } = await appWithClock({ DEVICE_CLIENTS: "esp32=key" });
    await using _app = app;
    const ends = clock.now() + 3_600_000;
    const approver = await insertApiKey(app.store, { name: "short-lived", scopes: ["admin", "data:read"], expiresAt: ends });
    await app.app.keyring.refresh();
    const headers = { "x-auth-token": approver.token };
    const first = await startLogin(app.http, "esp32", "data:read");
    expect((await callApproval(app, "approve", { user_code: first.userCode }, headers)).status).toBe(200);
    clock.advance(5_000);
    const granted = await pollToken(app.http, first.deviceCode, "esp32");
    expect(granted.status).toBe(200);
    expect(await app.store.getKey(String(granted.body.key_id))).toMatchObject({ scopes: ["data:read"], expiresAt: ends });
    const second = await startLogin(app.http, "esp32", "data:read");
    expect((await callApproval(app, "approve", { user_code: second.userCode }, headers)).status).toBe(200);
    await app.store.revokeKey(approver.id, clock.now());
    clock.advance(5_000);
    const refused = await pollToken(app.http, second.deviceCode, "esp32");
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe("invalid_grant");
    expectNoSecretsInOutput();
  });

  test("a key for a device needs an admin: a viewer (or a key without admin) may look but not approve (403)", async () => {
    await using app = await startTestApp({ DEVICE_CLIENTS: "esp32=key" });
    const login = await startLogin(app.http, "esp32", "data:read");
    const viewer = await signInPerson(app, "vi", ["viewer"]);
    const reader = await insertApiKey(app.store, { name: "reader", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    for (const headers of [asPage(app, viewer), { "x-auth-token": reader.token }]) {
      expect((await callApproval(app, "lookup", { user_code: login.userCode }, headers)).body).toMatchObject({ approvable: false });
      const refused = await callApproval(app, "approve", { user_code: login.userCode }, headers);
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ error: "access_denied", code: "access_denied" });
      expect(String(refused.body.error_description)).toContain("only an admin may make keys");
    }
    expect((await pollToken(app.http, login.deviceCode, "esp32")).body.error).toBe("authorization_pending");
  });

  test("tokens for a device need a person: an admin key may look but not approve (403)", async () => {
    await using app = await startTestApp();
    const login = await startLogin(app.http, "tv-box");
    const admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
    await app.app.keyring.refresh();
    const headers = { "x-auth-token": admin.token };
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, headers)).body).toMatchObject({ approvable: false });
    const refused = await callApproval(app, "approve", { user_code: login.userCode }, headers);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe("access_denied");
  });

  test("the approval endpoints need a sign-in (401), refuse a cookie from another origin (403), and malformed codes (400)", async () => {
    await using app = await startTestApp();
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    expect((await callApproval(app, "approve", { user_code: login.userCode }, {})).status).toBe(401);
    const forged = await callApproval(app, "approve", { user_code: login.userCode }, asPage(app, person, { origin: "http://evil.lan" }));
    expect(forged.status).toBe(403);
    const malformed = await callApproval(app, "lookup", { user_code: "AEIOU" }, asPage(app, person));
    expect(malformed.status).toBe(400);
    expect(malformed.body.code).toBe("invalid_request");
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("authorization_pending");
  });
});

describe("guessing user codes", () => {
  // Nobody exempt, and the loopback peer a trusted proxy: each guesser is the address it forwards.
  const GUARDED = { BAN_EXEMPT: "", TRUSTED_PROXIES: "127.0.0.1" };

  test("ten wrong codes ban the address (429, even for the right code); someone else elsewhere still gets in", async () => {
    await using app = await startTestApp(GUARDED);
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    const from = (address: string) => asPage(app, person, { "x-forwarded-for": address });
    const wrong = trackSecret(login.userCode === "BBBB-BBBB" ? "CCCC-CCCC" : "BBBB-BBBB");
    const statuses: number[] = [];
    for (let guess = 0; guess < 10; guess++)
      statuses.push((await callApproval(app, "lookup", { user_code: wrong }, from("192.168.1.50"))).status);
    expect(statuses.slice(0, 9).every((status) => status === 400)).toBe(true);
    expect(statuses[9]).toBe(429);
    const banned = await callApproval(app, "lookup", { user_code: login.userCode }, from("192.168.1.50"));
    expect(banned.status).toBe(429);
    // The typist is banned too (the next test); someone else at another address gets in.
    const other = await signInPerson(app, "wu", ["viewer"]);
    const elsewhere = asPage(app, other, { "x-forwarded-for": "192.168.1.51" });
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, elsewhere)).status).toBe(200);
    expect(app.audit.some((line) => line.includes('"ban.started"') && line.includes("192.168.1.50"))).toBe(true);
    expectNoSecretsInOutput();
  });

  test.each(["a person", "a key"])(
    "ten wrong codes from %s at ten addresses ban the typist (429, even for the right code)",
    async (kind) => {
      await using app = await startTestApp(GUARDED);
      const login = await startLogin(app.http, "tv-box");
      const key = await insertApiKey(app.store, { name: "typist", scopes: ["data:read"] });
      const person = await signInPerson(app, "vi", ["viewer"]);
      const typist = (address: string) =>
        kind === "a key"
          ? { authorization: `Bearer ${key.token}`, "x-forwarded-for": address }
          : asPage(app, person, { "x-forwarded-for": address });
      const wrong = trackSecret(login.userCode === "BBBB-BBBB" ? "CCCC-CCCC" : "BBBB-BBBB");
      const statuses: number[] = [];
      for (let guess = 0; guess < 10; guess++)
        statuses.push((await callApproval(app, "lookup", { user_code: wrong }, typist(`192.168.4.${guess + 1}`))).status);
      expect(statuses).toEqual([...Array<number>(9).fill(400), 429]);
      // A fresh address does not help the typist; someone else at the same address still gets in.
      const banned = await callApproval(app, "lookup", { user_code: login.userCode }, typist("192.168.4.99"));
      expect(banned.status).toBe(429);
      expect(Number(banned.headers.get("retry-after"))).toBeGreaterThan(0);
      const other = await signInPerson(app, "wu", ["viewer"]);
      const right = await callApproval(
        app,
        "lookup",
        { user_code: login.userCode },
        asPage(app, other, { "x-forwarded-for": "192.168.4.99" }),
      );
      expect(right.status).toBe(200);
      const subject = kind === "a key" ? `codes:key:${key.id}` : "codes:user:vi";
      expect(app.audit.some((line) => line.includes('"ban.started"') && line.includes(subject))).toBe(true);
      expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("authorization_pending");
      expectNoSecretsInOutput();
    },
  );

  test("others' wrong passwords for a person, or wrong secrets for a key, do not shut them out of the device page", async () => {
    // Passwords from the LAN over plain HTTP, so the guessers' forwarded addresses may send them.
    await using app = await startTestApp({ ...GUARDED, ALLOW_INSECURE_PASSWORDS: "true" });
    const login = await startLogin(app.http, "tv-box");
    const key = await insertApiKey(app.store, { name: "holder", scopes: ["data:read"] });
    const person = await signInPerson(app, "vi", ["viewer"]);
    const forged = trackSecret(`${key.token.slice(0, -6)}${key.token.endsWith("AAAAAA") ? "BBBBBB" : "AAAAAA"}`);
    for (let attempt = 0; attempt < 10; attempt++) {
      const from = { "x-forwarded-for": `192.168.6.${attempt + 1}` };
      await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${forged}`, ...from } });
      await fetch(`${app.http}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...from },
        body: new URLSearchParams({ grant_type: "password", username: "vi", password: "not vi's password at all" }),
      });
    }
    expect(app.audit.some((line) => line.includes('"ban.started"') && line.includes(`"key:${key.id}"`))).toBe(true);
    expect(app.audit.some((line) => line.includes('"ban.started"') && line.includes('"user:vi"'))).toBe(true);
    const asKey = { authorization: `Bearer ${key.token}`, "x-forwarded-for": "192.168.6.50" };
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, asKey)).status).toBe(200);
    const asPerson = asPage(app, person, { "x-forwarded-for": "192.168.6.51" });
    expect((await callApproval(app, "lookup", { user_code: login.userCode }, asPerson)).status).toBe(200);
    expectNoSecretsInOutput();
  });

  test.each(ENGINES.filter(([, available]) => available).map(([name]) => name))(
    "a burst of 100 wrong codes at once from one typist counts at most ten: the waiting login survives (%s)",
    async (engine) => {
      await using engineApp = await startEngineApp(engine, GUARDED);
      const { app } = engineApp;
      const login = await startLogin(app.http, "tv-box");
      const key = await insertApiKey(app.store, { name: "burst", scopes: ["data:read"] });
      await app.app.keyring.refresh();
      const wrong = login.userCode === "BBBB-BBBB" ? "CCCC-CCCC" : "BBBB-BBBB";
      const answers = await Promise.all(
        Array.from({ length: DEVICE_MAX_FAILURES }, (_, i) =>
          callApproval(app, "lookup", { user_code: wrong }, { authorization: `Bearer ${key.token}`, "x-forwarded-for": `10.9.${i}.1` }),
        ),
      );
      const statuses = answers.map((answer) => answer.status);
      expect(statuses.every((status) => status === 400 || status === 429)).toBe(true);
      expect(statuses.filter((status) => status === 400).length).toBeLessThanOrEqual(9);
      const person = await signInPerson(app, "vi", ["viewer"]);
      const right = await callApproval(
        app,
        "lookup",
        { user_code: login.userCode },
        asPage(app, person, { "x-forwarded-for": "10.10.0.1" }),
      );
      expect(right.status).toBe(200);
      expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("authorization_pending");
    },
  );

  test("a code already approved, looked up again (a reload of the page), is told so (400) and counts as no guess", async () => {
    await using app = await startTestApp(GUARDED);
    const login = await startLogin(app.http, "tv-box");
    const waiting = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    const page = asPage(app, person, { "x-forwarded-for": "192.168.7.1" });
    expect((await callApproval(app, "approve", { user_code: login.userCode }, page)).status).toBe(200);
    for (let reload = 0; reload < 12; reload++) {
      const again = await callApproval(app, "lookup", { user_code: login.userCode }, page);
      expect(again.status).toBe(400);
      expect(again.body.code).toBe("invalid_grant");
      expect(String(again.body.error_description)).toContain("already approved, denied or used");
    }
    expect((await callApproval(app, "lookup", { user_code: waiting.userCode }, page)).status).toBe(200);
    expect(app.audit.some((line) => line.includes('"ban.started"'))).toBe(false);
  });

  test(`${DEVICE_MAX_FAILURES} wrong codes from anywhere burn every waiting login: its device gets expired_token`, async () => {
    await using app = await startTestApp(GUARDED);
    const login = await startLogin(app.http, "tv-box");
    const person = await signInPerson(app, "vi", ["viewer"]);
    const wrong = login.userCode === "BBBB-BBBB" ? "CCCC-CCCC" : "BBBB-BBBB";
    // Ten typists (keys) at ten addresses: each of them and each address is banned at its tenth miss.
    const typists = await Promise.all(
      Array.from({ length: DEVICE_MAX_FAILURES / 10 }, (_, i) => insertApiKey(app.store, { name: `typist ${i}`, scopes: ["data:read"] })),
    );
    await app.app.keyring.refresh();
    for (let guess = 0; guess < DEVICE_MAX_FAILURES; guess++) {
      const typist = typists[Math.floor(guess / 10)]!;
      const address = `192.168.2.${Math.floor(guess / 10) + 1}`;
      const missed = await callApproval(
        app,
        "lookup",
        { user_code: wrong },
        { authorization: `Bearer ${typist.token}`, "x-forwarded-for": address },
      );
      expect(missed.status).toBe(guess % 10 === 9 ? 429 : 400);
    }
    const right = await callApproval(
      app,
      "lookup",
      { user_code: login.userCode },
      asPage(app, person, { "x-forwarded-for": "192.168.3.1" }),
    );
    expect(right.status).toBe(400);
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body).toMatchObject({ error: "expired_token" });
    // A login started afterwards is not burnt by the guesses before it.
    const next = await startLogin(app.http, "tv-box");
    const fresh = await callApproval(
      app,
      "lookup",
      { user_code: next.userCode },
      asPage(app, person, { "x-forwarded-for": "192.168.3.2" }),
    );
    expect(fresh.status).toBe(200);
    expectNoSecretsInOutput();
  }, 30_000);
});
