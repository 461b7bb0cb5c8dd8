/**
 * What an outside review of the issue-15 mends found, each as it was reproduced (every one failed
 * before its mend): secrets typed into name fields, credentials in the path, a JWT whose claims have
 * the wrong types, a public client's secret in the form, a banned client's other sockets, one IPv6
 * /64 for a whole link, and a ticket redeemed right after a revocation made by another process.
 */
import { insertApiKey } from "./support/keys.ts";
import { describe, expect, test } from "bun:test";
import { importJWK, SignJWT, type JWK } from "jose";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { hashPassword } from "../auth/secrets/passwords.ts";
import { makeTempDir, rawRequest, ServerProcess, startTestApp, WsProbe, type TestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";
import { join } from "node:path";

const PROXIED = { BAN_EXEMPT: "", TRUSTED_PROXIES: "127.0.0.1" };
const form = (params: Record<string, string>) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams(params).toString(),
});

async function liveKey(app: TestApp, scopes = ["data:read", "ws:connect"]) {
  const key = await insertApiKey(app.store, { name: "lamp", scopes });
  await app.app.keyring.refresh();
  return key;
}

describe("F1: secrets typed into identifier fields reach the audit log and the bans table", () => {
  test('a key sent as the Basic username (curl -u "$KEY:") or as client_id is never written out', async () => {
    await using app = await startTestApp({ ...PROXIED, BASIC_AUTH: "true" });
    const key = await liveKey(app);
    const password = trackSecret("a password typed in the wrong box");
    const headers = { "X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https" };
    for (let i = 0; i < 10; i++) {
      await fetch(`${app.http}/secure-data`, {
        headers: { ...headers, authorization: `Basic ${Buffer.from(`${key.token}:`).toString("base64")}` },
      });
    }
    await fetch(`${app.http}/auth/token`, {
      ...form({ grant_type: "password", username: password, password: "alice" }),
      headers: { ...form({}).headers, ...headers },
    });
    await fetch(`${app.http}/auth/token`, {
      ...form({ grant_type: "client_credentials", client_id: key.token, client_secret: "x" }),
      headers: { ...form({}).headers, ...headers },
    });
    await Bun.sleep(100);
    const bans = await app.store.listBans(Date.now());
    expect(bans.some((ban) => ban.subject.includes(key.secret))).toBe(false);
    expectNoSecretsInOutput();
  });
});

describe("F2: credentials in the request path are logged verbatim", () => {
  test.each(["/ws;token=", "/ws%3Ftoken=", "/ws/;token=", "/secure-data/"])(
    "GET %s<secret> keeps the secret out of the access log",
    async (prefix) => {
      await using app = await startTestApp();
      const secret = newSecret();
      const response = await rawRequest(Number(new URL(app.http).port), `GET ${prefix}${secret} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      expect(response.status).toBeLessThan(500);
      await Bun.sleep(20);
      expect(app.lines.some((line) => line.includes(secret))).toBe(false);
    },
  );
});

describe("F3: a validly signed JWT with a non-string sub", () => {
  test("is refused (401) on HTTP and in-band, and the server process keeps running", async () => {
    using dir = makeTempDir();
    const token = newSecret();
    const server = new ServerProcess({ PORT: "0", HOST: "127.0.0.1", AUTH_TOKEN: token, DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const { Database } = await import("bun:sqlite");
    const db = new Database(join(dir.path, "tokengate.db"), { readonly: true });
    const row = db.query("SELECT kid, private_jwk FROM signing_keys WHERE retired_at IS NULL").get() as {
      kid: string;
      private_jwk: string;
    };
    db.close();
    const now = Math.floor(Date.now() / 1000);
    const leaked = trackSecret(
      await new SignJWT({ scope: "ws:connect", client_id: "x", sub: 42 as unknown as string })
        .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: row.kid })
        .setIssuer("tokengate")
        .setAudience("tokengate")
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .setJti(crypto.randomUUID())
        .sign(await importJWK(JSON.parse(row.private_jwk) as JWK, "EdDSA")),
    );
    const probe = new WsProbe(`ws://127.0.0.1:${port}/ws`, { headers: new Headers({ "X-Auth-Token": token }) });
    await probe.nextMessage(0);
    probe.socket.send(JSON.stringify({ type: "auth", token: leaked }));
    expect(JSON.parse(String(await probe.nextMessage(1)))).toMatchObject({ type: "auth_error", code: "invalid_token" });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const http = await fetch(`http://127.0.0.1:${port}/secure-data`, { headers: { authorization: `Bearer ${leaked}` } });
    expect(http.status).toBe(401);
    probe.socket.close();
    expect(await server.stop()).toBe(0);
  });
});

describe("F9: a public client's secret in the form", () => {
  test("grant_type=password with client_secret in the form is refused like Basic with a secret", async () => {
    await using app = await startTestApp();
    const pw = trackSecret("ivy's long password");
    await app.store.insertUser({ username: "ivy", passwordHash: await hashPassword(pw), roles: ["viewer"], createdAt: Date.now() });
    const basic = await fetch(`${app.http}/auth/token`, {
      ...form({ grant_type: "password", username: "ivy", password: pw }),
      headers: { ...form({}).headers, authorization: `Basic ${btoa("app:s3cret")}` },
    });
    expect(basic.status).toBe(401);
    const inForm = await fetch(
      `${app.http}/auth/token`,
      form({ grant_type: "password", username: "ivy", password: pw, client_id: "app", client_secret: "s3cret" }),
    );
    expect(inForm.status).toBe(401);
  });
});

describe("F10: other sockets of a banned client", () => {
  test("every open socket of the banned address is closed 4429, not just the one that guessed", async () => {
    await using app = await startTestApp({ BAN_EXEMPT: "" });
    const key = await liveKey(app);
    const idle = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "X-Auth-Token": key.token }) });
    const guesser = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "X-Auth-Token": key.token }) });
    const guesser2 = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "X-Auth-Token": key.token }) });
    await Promise.all([idle.nextMessage(0), guesser.nextMessage(0), guesser2.nextMessage(0)]);
    for (let i = 0; i < 5; i++) guesser.socket.send(JSON.stringify({ type: "auth", token: trackSecret(generateApiKey().token) }));
    await Bun.sleep(100);
    for (let i = 0; i < 5; i++) guesser2.socket.send(JSON.stringify({ type: "auth", token: trackSecret(generateApiKey().token) }));
    expect((await guesser2.closed).code).toBe(4429);
    const outcome = await Promise.race([idle.closed, Bun.sleep(1500).then(() => ({ code: -1, reason: "still open" }))]);
    expect(outcome.code).toBe(4429);
  });
});

describe("F6: one IPv6 /64 for the whole link", () => {
  test("a guesser at fe80::bad does not lock out a genuine key at fe80::1 (another device on the link)", async () => {
    await using app = await startTestApp(PROXIED);
    const key = await liveKey(app);
    for (let i = 0; i < 10; i++) {
      await fetch(`${app.http}/secure-data`, {
        headers: { "X-Forwarded-For": "fe80::bad", "X-Auth-Token": trackSecret(generateApiKey().token) },
      });
    }
    const owner = await fetch(`${app.http}/secure-data`, { headers: { "X-Forwarded-For": "fe80::1", "X-Auth-Token": key.token } });
    expect(owner.status).toBe(200);
  });
});

describe("F7: ticket redeemed right after `keys revoke`", () => {
  test("a ticket minted before the revocation never opens a socket once the store says revoked", async () => {
    await using app = await startTestApp();
    const key = await liveKey(app);
    const { ticket } = (await (
      await fetch(`${app.http}/auth/ws-ticket`, { method: "POST", headers: { "X-Auth-Token": key.token } })
    ).json()) as { ticket: string };
    trackSecret(ticket);
    await app.store.revokeKey(key.id, Date.now()); // what `cli keys revoke` does, from "another process"
    const probe = new WsProbe(`${app.ws}/ws?ticket=${ticket}`);
    expect(await probe.opened).toBe(false);
  });
});

test("no secret used by these attacks reached any output", () => {
  expectNoSecretsInOutput();
});

describe("F11: a client's own Forwarded header next to the proxy's X-Forwarded-Proto", () => {
  test("Forwarded: proto=https does not stand for TLS when the proxy says http", async () => {
    await using app = await startTestApp({ ...PROXIED, BASIC_AUTH: "true" });
    const pw = trackSecret("jo's long password!");
    await app.store.insertUser({ username: "jo", passwordHash: await hashPassword(pw), roles: ["viewer"], createdAt: Date.now() });
    const headers = {
      "X-Forwarded-For": "198.51.100.5",
      "X-Forwarded-Proto": "http",
      Forwarded: "for=198.51.100.5;proto=https",
      authorization: `Basic ${Buffer.from(`jo:${pw}`).toString("base64")}`,
    };
    const response = await fetch(`${app.http}/secure-data`, { headers });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      code: "invalid_request",
      detail: expect.stringContaining("Passwords are accepted only over HTTPS"),
    });
  });
});
