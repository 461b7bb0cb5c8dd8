/**
 * Hostile inputs, one table: every credential form and every endpoint, sent as exact bytes over
 * a real socket to the whole application, each with its exact expected status, code and header.
 * Nothing here may produce a 5xx, a hang, or an accepted request.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { importJWK, SignJWT, UnsecuredJWT, type JWK } from "jose";
import { encodeSubprotocolToken } from "../auth/authn/credentials.ts";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { hashPassword } from "../auth/secrets/passwords.ts";
import { digestToken } from "../auth/secrets/tokens.ts";
import { rawRequest, startTestApp, WsProbe, type TestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "./support/secrets.ts";

interface Context {
  readonly token: string;
  readonly jwt: string;
  readonly revokedKey: string;
  readonly expiredKey: string;
  readonly liveKey: string;
  readonly port: number;
}

let app: TestApp;
let ctx: Context;
const ORIGIN = "https://dash.lan:8443";
const PASSWORD = trackSecret("hank's long password");

beforeAll(async () => {
  app = await startTestApp({ BASIC_AUTH: "true", ALLOWED_ORIGINS: ORIGIN });
  await app.store.insertUser({ username: "hank", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
  const keys = [generateApiKey(), generateApiKey(), generateApiKey()];
  for (const key of keys) trackSecret(key.token);
  const [revoked, expired, live] = keys as [
    ReturnType<typeof generateApiKey>,
    ReturnType<typeof generateApiKey>,
    ReturnType<typeof generateApiKey>,
  ];
  const insert = (key: typeof revoked, expiresAt: number | null) =>
    app.store.insertKey({
      id: key.id,
      name: "hostile",
      scopes: ["data:read", "ws:connect"],
      secretHash: digestToken(key.secret),
      createdAt: Date.now() - 10_000,
      expiresAt,
    });
  await insert(revoked, null);
  await insert(expired, Date.now() - 1_000);
  await insert(live, null);
  await app.store.revokeKey(revoked.id, Date.now());
  await app.app.keyring.refresh();
  const issued = (await (
    await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username: "hank", password: PASSWORD }).toString(),
    })
  ).json()) as { access_token: string; refresh_token: string };
  trackSecret(issued.access_token);
  trackSecret(issued.refresh_token);
  ctx = {
    token: app.token,
    jwt: issued.access_token,
    revokedKey: revoked.token,
    expiredKey: expired.token,
    liveKey: live.token,
    port: app.app.listener.server.port!,
  };
});
afterAll(() => app[Symbol.asyncDispose]());

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString("base64");
const segments = (jwt: string) => jwt.split(".") as [string, string, string];
const get = (path: string, headers = "") => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n`;
const post = (path: string, contentType: string | null, body: string, headers = "") =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${contentType === null ? "" : `Content-Type: ${contentType}\r\n`}Content-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`;
const upgrade = (target: string, headers = "", key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n") =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${key}${headers}\r\n`;
const form = "application/x-www-form-urlencoded";

type Expect = { status: number; code?: string; header?: [string, string] };
type Case = [string, (c: Context) => string | Uint8Array | Promise<string>, Expect];

const tamperedJwt = (c: Context) => {
  const [header, payload, signature] = segments(c.jwt);
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
  return [header, Buffer.from(JSON.stringify({ ...claims, scope: "*" })).toString("base64url"), signature].join(".");
};

const cases: Case[] = [
  // X-Auth-Token
  [
    "no credentials",
    () => get("/secure-data"),
    { status: 401, code: "missing_token", header: ["www-authenticate", 'Bearer realm="tokengate"'] },
  ],
  [
    "X-Auth-Token wrong",
    () => get("/secure-data", `X-Auth-Token: ${"w".repeat(20)}${"x".repeat(23)}\r\n`),
    { status: 401, code: "invalid_token", header: ["www-authenticate", 'error="invalid_token"'] },
  ],
  ["X-Auth-Token empty", () => get("/secure-data", "X-Auth-Token:\r\n"), { status: 400, code: "invalid_request" }],
  [
    "X-Auth-Token twice, same",
    (c) => get("/secure-data", `X-Auth-Token: ${c.token}\r\nX-Auth-Token: ${c.token}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "X-Auth-Token twice, different",
    (c) => get("/secure-data", `X-Auth-Token: ${c.token}\r\nX-Auth-Token: ${c.liveKey}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  ["X-Auth-Token with a space", () => get("/secure-data", "X-Auth-Token: abc def\r\n"), { status: 400, code: "invalid_request" }],
  ["X-Auth-Token with a comma", () => get("/secure-data", "X-Auth-Token: abc,def\r\n"), { status: 400, code: "invalid_request" }],
  ["X-Auth-Token with SOH", (c) => get("/secure-data", `X-Auth-Token: ${c.token}\x01\r\n`), { status: 400 }],
  ["X-Auth-Token with NUL", () => get("/secure-data", "X-Auth-Token: ab\x00cd\r\n"), { status: 400 }],
  ["X-Auth-Token with DEL", (c) => get("/secure-data", `X-Auth-Token: ${c.token}\x7f\r\n`), { status: 400, code: "invalid_request" }],
  [
    "X-Auth-Token with a latin-1 byte",
    (c) => Buffer.from(get("/secure-data", `X-Auth-Token: ${c.token}\xe9\r\n`), "latin1"),
    { status: 400, code: "invalid_request" },
  ],
  [
    "X-Auth-Token with UTF-8",
    (c) => Buffer.from(get("/secure-data", `X-Auth-Token: ${c.token}✓\r\n`), "utf8"),
    { status: 400, code: "invalid_request" },
  ],
  [
    "X-Auth-Token of 5000 characters",
    () => get("/secure-data", `X-Auth-Token: ${"a".repeat(5000)}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  ["a 20 KB header", () => get("/secure-data", `X-Auth-Token: ${"a".repeat(20_000)}\r\n`), { status: 431 }],
  ["a ?token= on an HTTP route", (c) => get(`/secure-data?token=${c.token}`), { status: 400, code: "invalid_request" }],
  // Authorization
  ["Bearer without a token", () => get("/secure-data", "Authorization: Bearer\r\n"), { status: 400, code: "invalid_request" }],
  ["Bearer with only spaces", () => get("/secure-data", "Authorization: Bearer   \r\n"), { status: 400, code: "invalid_request" }],
  [
    "Bearer with two tokens",
    (c) => get("/secure-data", `Authorization: Bearer ${c.token} ${c.token}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "bearer (lower case) wrong",
    () => get("/secure-data", `Authorization: bearer ${"z".repeat(43)}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  ["Authorization garbage", () => get("/secure-data", "Authorization: ::::\r\n"), { status: 400, code: "invalid_request" }],
  [
    "Authorization twice",
    (c) => get("/secure-data", `Authorization: Bearer ${c.token}\r\nAuthorization: Bearer ${c.token}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "an unknown scheme (Digest)",
    () => get("/secure-data", 'Authorization: Digest username="x"\r\n'),
    { status: 401, code: "missing_token", header: ["www-authenticate", 'Basic realm="tokengate"'] },
  ],
  [
    "both headers, different tokens",
    (c) => get("/secure-data", `X-Auth-Token: ${c.token}\r\nAuthorization: Bearer ${c.liveKey}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  // Basic
  ["Basic, bad base64", () => get("/secure-data", "Authorization: Basic !!!!\r\n"), { status: 400, code: "invalid_request" }],
  ["Basic, no colon", () => get("/secure-data", `Authorization: Basic ${b64("hank")}\r\n`), { status: 400, code: "invalid_request" }],
  [
    "Basic, invalid UTF-8",
    () => get("/secure-data", `Authorization: Basic ${b64(new Uint8Array([0x68, 0x3a, 0xc3, 0x28]))}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "Basic, control byte",
    () => get("/secure-data", `Authorization: Basic ${b64("hank:p\u0007w")}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  ["Basic, empty", () => get("/secure-data", "Authorization: Basic\r\n"), { status: 400, code: "invalid_request" }],
  [
    "Basic, wrong password",
    () => get("/secure-data", `Authorization: Basic ${b64("hank:not it at all")}\r\n`),
    { status: 401, code: "invalid_credentials", header: ["www-authenticate", "Basic"] },
  ],
  [
    "Basic, unknown user",
    () => get("/secure-data", `Authorization: Basic ${b64("nobody:whatever-pass")}\r\n`),
    { status: 401, code: "invalid_credentials" },
  ],
  // JWTs
  [
    "JWT truncated to two segments",
    (c) => get("/secure-data", `Authorization: Bearer ${segments(c.jwt).slice(0, 2).join(".")}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with a tampered payload",
    (c) => get("/secure-data", `Authorization: Bearer ${tamperedJwt(c)}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with the signature stripped",
    (c) => get("/secure-data", `Authorization: Bearer ${segments(c.jwt).slice(0, 2).join(".")}.\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT alg none",
    async () =>
      get(
        "/secure-data",
        `Authorization: Bearer ${new UnsecuredJWT({ scope: "*" }).setSubject("user:hank").setExpirationTime("1h").encode()}\r\n`,
      ),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT signed with a guessed HS256 secret",
    async () => {
      const forged = await new SignJWT({ scope: "*", client_id: "x" })
        .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: "x" })
        .setSubject("user:hank")
        .setIssuer("tokengate")
        .setAudience("tokengate")
        .setIssuedAt()
        .setExpirationTime("1h")
        .setJti("j")
        .sign(new TextEncoder().encode("secret"));
      return get("/secure-data", `Authorization: Bearer ${forged}\r\n`);
    },
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT whose signature is re-spelled (same bytes, non-canonical base64url)",
    (c) => {
      const [header, payload, signature] = segments(c.jwt);
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const last = alphabet.indexOf(signature.at(-1)!);
      return get(
        "/secure-data",
        `Authorization: Bearer ${header}.${payload}.${signature.slice(0, -1)}${alphabet[(last & 0b110000) | (~last & 0b001111)]}\r\n`,
      );
    },
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with a swapped header (typ JWT)",
    (c) => {
      const [, payload, signature] = segments(c.jwt);
      return get(
        "/secure-data",
        `Authorization: Bearer ${Buffer.from('{"alg":"EdDSA","typ":"JWT"}').toString("base64url")}.${payload}.${signature}\r\n`,
      );
    },
    { status: 401, code: "invalid_token" },
  ],
  // API keys
  [
    "an unknown API key",
    () => get("/secure-data", `X-Auth-Token: ${trackSecret(generateApiKey().token)}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "a known key id with a wrong secret",
    (c) => get("/secure-data", `X-Auth-Token: ${c.liveKey.slice(0, 16)}${"A".repeat(43)}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "a revoked key",
    (c) => get("/secure-data", `X-Auth-Token: ${c.revokedKey}\r\n`),
    { status: 401, code: "invalid_token", header: ["www-authenticate", "has been revoked"] },
  ],
  [
    "an expired key",
    (c) => get("/secure-data", `X-Auth-Token: ${c.expiredKey}\r\n`),
    { status: 401, code: "invalid_token", header: ["www-authenticate", "has expired"] },
  ],
  // Methods and paths
  [
    "POST /secure-data",
    () => post("/secure-data", form, "x=1"),
    { status: 405, code: "method_not_allowed", header: ["allow", "GET, HEAD"] },
  ],
  [
    "DELETE /secure-data",
    () => `DELETE /secure-data HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    { status: 405, code: "method_not_allowed" },
  ],
  ["an unknown path", () => get("/admin"), { status: 404, code: "not_found" }],
  ["a trailing slash", () => get("/secure-data/"), { status: 404, code: "not_found" }],
  // Bun normalizes dot segments (WHATWG URL), so this reaches /secure-data and still needs the token.
  ["an encoded dot-dot", () => get("/%2e%2e/secure-data"), { status: 401, code: "missing_token" }],
  // Host and Origin
  [
    "a foreign Host (DNS rebinding)",
    (c) => `GET /secure-data HTTP/1.1\r\nHost: rebind.attacker.test\r\nX-Auth-Token: ${c.token}\r\nConnection: close\r\n\r\n`,
    { status: 421, code: "misdirected_request" },
  ],
  [
    "a foreign Origin",
    (c) => get("/secure-data", `Origin: https://evil.test\r\nX-Auth-Token: ${c.token}\r\n`),
    { status: 403, code: "forbidden_origin" },
  ],
  ["Origin: null", (c) => get("/secure-data", `Origin: null\r\nX-Auth-Token: ${c.token}\r\n`), { status: 403, code: "forbidden_origin" }],
  [
    "a preflight from an allowed origin",
    () =>
      `OPTIONS /secure-data HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n`,
    { status: 204, header: ["access-control-allow-origin", ORIGIN] },
  ],
  [
    "a preflight from a foreign origin",
    () =>
      `OPTIONS /secure-data HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.test\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n`,
    { status: 403, code: "forbidden_origin" },
  ],
  // Token endpoint
  [
    "token endpoint with JSON",
    () => post("/auth/token", "application/json", '{"grant_type":"password"}'),
    { status: 400, code: "invalid_request" },
  ],
  [
    "token endpoint without a content type",
    () => post("/auth/token", null, "grant_type=password"),
    { status: 400, code: "invalid_request" },
  ],
  [
    "token endpoint with a 100 KB form",
    () => post("/auth/token", form, `grant_type=password&password=${"x".repeat(100_000)}`),
    { status: 413 },
  ],
  [
    "token endpoint, grant_type twice",
    () => post("/auth/token", form, "grant_type=password&grant_type=client_credentials"),
    { status: 400, code: "invalid_request" },
  ],
  [
    "token endpoint, unknown grant",
    () => post("/auth/token", form, "grant_type=implicit"),
    { status: 400, code: "unsupported_grant_type" },
  ],
  ["token endpoint, no grant", () => post("/auth/token", form, "username=hank"), { status: 400, code: "invalid_request" }],
  [
    "password grant, wrong password",
    () => post("/auth/token", form, "grant_type=password&username=hank&password=wrong-wrong"),
    { status: 400, code: "invalid_grant" },
  ],
  [
    "client_credentials without client auth",
    () => post("/auth/token", form, "grant_type=client_credentials"),
    { status: 401, code: "invalid_client", header: ["www-authenticate", "Basic"] },
  ],
  [
    "client_credentials with a revoked key",
    (c) => post("/auth/token", form, `grant_type=client_credentials&client_id=${c.revokedKey.slice(3, 15)}&client_secret=${c.revokedKey}`),
    { status: 401, code: "invalid_client" },
  ],
  [
    "refresh_token garbage",
    () => post("/auth/token", form, "grant_type=refresh_token&refresh_token=tgr_garbage"),
    { status: 400, code: "invalid_grant" },
  ],
  ["refresh_token missing", () => post("/auth/token", form, "grant_type=refresh_token"), { status: 400, code: "invalid_request" }],
  [
    "a malformed scope",
    () => post("/auth/token", form, "grant_type=password&username=hank&password=x&scope=Bad%21"),
    { status: 400, code: "invalid_scope" },
  ],
  ["GET /auth/token", () => get("/auth/token"), { status: 405, code: "method_not_allowed", header: ["allow", "POST"] }],
  ["revoke without a token", () => post("/auth/revoke", form, "token_type_hint=refresh_token"), { status: 400, code: "invalid_request" }],
  ["revoke with JSON", () => post("/auth/revoke", "application/json", "{}"), { status: 400, code: "invalid_request" }],
  // WebSocket upgrades
  ["upgrade without Sec-WebSocket-Key", (c) => upgrade(`/ws?token=${c.token}`, "", "Sec-WebSocket-Version: 13\r\n"), { status: 400 }],
  [
    "upgrade with WebSocket version 8",
    (c) => upgrade(`/ws?token=${c.token}`, "", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"),
    { status: 426 },
  ],
  [
    "a POST upgrade",
    (c) =>
      `POST /ws?token=${c.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n`,
    { status: 405, code: "method_not_allowed", header: ["allow", "GET"] },
  ],
  ["upgrade without a token", () => upgrade("/ws"), { status: 401, code: "missing_token" }],
  ["upgrade with a wrong token", () => upgrade(`/ws?token=${"q".repeat(43)}`), { status: 401, code: "invalid_token" }],
  ["upgrade with a revoked key", (c) => upgrade(`/ws?token=${c.revokedKey}`), { status: 401, code: "invalid_token" }],
  [
    "upgrade from a foreign Origin",
    (c) => upgrade(`/ws?token=${c.token}`, "Origin: https://evil.test\r\n"),
    { status: 403, code: "forbidden_origin" },
  ],
  [
    "upgrade with a bearer subprotocol but no marker",
    (c) => upgrade("/ws", `Sec-WebSocket-Protocol: ${encodeSubprotocolToken(c.token)}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "upgrade offering an unknown subprotocol",
    (c) => upgrade(`/ws?token=${c.token}`, "Sec-WebSocket-Protocol: chat\r\n"),
    { status: 400, code: "invalid_request" },
  ],
  [
    "upgrade with the token twice in the query",
    (c) => upgrade(`/ws?token=${c.token}&token=${c.token}`),
    { status: 400, code: "invalid_request" },
  ],
  [
    "upgrade with Basic credentials",
    () => upgrade("/ws", `Authorization: Basic ${b64(`hank:${PASSWORD}`)}\r\n`),
    { status: 401, code: "missing_token" },
  ],
  [
    "upgrade with a tampered JWT",
    (c) => upgrade("/ws", `Sec-WebSocket-Protocol: tokengate, ${encodeSubprotocolToken(tamperedJwt(c))}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "GET /ws without an upgrade",
    (c) => get(`/ws?token=${c.token}`),
    { status: 426, code: "upgrade_required", header: ["upgrade", "websocket"] },
  ],
  // Odd spellings of a query credential: the reader and the log redactor read the query the same
  // way, so each is refused (400) and its value never reaches the log.
  ["upgrade with /ws??token=", (c) => upgrade(`/ws??token=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws??ticket=", () => upgrade(`/ws??ticket=${"t".repeat(43)}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws??%74oken=", (c) => upgrade(`/ws??%74oken=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?&?token=", (c) => upgrade(`/ws?&?token=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?%3Ftoken=", (c) => upgrade(`/ws?%3Ftoken=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?#token=", (c) => upgrade(`/ws?#token=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?TOKEN=", (c) => upgrade(`/ws?TOKEN=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?access_token=", (c) => upgrade(`/ws?access_token=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  ["upgrade with /ws?to%6Ben= (decodes to token: accepted)", (c) => upgrade(`/ws?to%6Ben=${c.liveKey}`), { status: 101 }],
  [
    "/secure-data?api_key=",
    (c) => get(`/secure-data?api_key=${c.liveKey}`, `X-Auth-Token: ${c.liveKey}\r\n`),
    { status: 400, code: "invalid_request" },
  ],
  ["/secure-data??token=", (c) => get(`/secure-data??token=${c.liveKey}`), { status: 400, code: "invalid_request" }],
  // A JWT signed with the real key whose numbers are absurd: refused, never a 500.
  [
    "JWT with exp 1e20",
    async () => get("/secure-data", `Authorization: Bearer ${await signWithRealKey({ exp: 1e20 })}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with exp beyond the longest lifetime",
    async () =>
      get("/secure-data", `Authorization: Bearer ${await signWithRealKey({ exp: Math.floor(Date.now() / 1000) + 10 * 86_400 })}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with a fractional exp",
    async () => get("/secure-data", `Authorization: Bearer ${await signWithRealKey({ exp: Math.floor(Date.now() / 1000) + 60.5 })}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "JWT with iat far in the future",
    async () =>
      get("/secure-data", `Authorization: Bearer ${await signWithRealKey({ iat: Math.floor(Date.now() / 1000) + 86_400 * 365 })}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
  [
    "whoami with a JWT whose exp is 1e20",
    async () => get("/auth/whoami", `Authorization: Bearer ${await signWithRealKey({ exp: 1e20 })}\r\n`),
    { status: 401, code: "invalid_token" },
  ],
];

/** A token signed with the server's own signing key, as a leaked key (or a bug) would produce. */
async function signWithRealKey(claims: Record<string, number>): Promise<string> {
  const [record] = await app.store.listSigningKeys();
  const key = await importJWK(JSON.parse(record!.privateJwk) as JWK, "EdDSA");
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ scope: "data:read", client_id: "tokengate", roles: ["viewer"], iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: record!.kid })
    .setSubject("user:hank")
    .setIssuer("tokengate")
    .setAudience("tokengate")
    .setJti(crypto.randomUUID());
  return trackSecret(await jwt.sign(key));
}

describe("hostile inputs", () => {
  test("the table has at least 60 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  test.each(cases)("%s", async (_name, build, expected) => {
    const response = await rawRequest(ctx.port, await build(ctx));
    expect(response.status).toBe(expected.status);
    if (expected.code !== undefined) expect((JSON.parse(response.body) as { code: string }).code).toBe(expected.code);
    if (expected.header !== undefined) expect(response.headers.get(expected.header[0]) ?? "").toContain(expected.header[1]);
    expect(response.status).toBeLessThan(500);
  });

  test("a message over the payload limit closes the socket with 1009; the server stays up", async () => {
    const probe = new WsProbe(`ws://127.0.0.1:${ctx.port}/ws?token=${ctx.token}`);
    await probe.nextMessage(0);
    probe.socket.send("x".repeat(70_000));
    expect((await probe.closed).code).toBe(1009);
    expect((await fetch(`${app.http}/healthz`)).status).toBe(200);
  });
});

test("no secret used in the hostile table reached any output", () => {
  expectNoSecretsInOutput();
});
