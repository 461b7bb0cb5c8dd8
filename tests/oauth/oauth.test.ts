/**
 * The token endpoint (RFC 6749) and JWT access tokens end to end: the whole application
 * in-process (startApp) with a real store, real argon2id, real HTTP and WebSocket clients.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { curl, startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

afterEach(() => setSystemTime());

const PASSWORD = trackSecret("alice's long password");

async function withUsers(app: TestApp) {
  const now = Date.now();
  await app.store.insertUser({ username: "alice", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: now });
  const key = await insertApiKey(app.store, { name: "backup job", scopes: ["data:read"], createdAt: now });
  return { key };
}

function form(fields: Record<string, string>): RequestInit {
  return { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() };
}

async function token(app: TestApp, fields: Record<string, string>, init: RequestInit = {}) {
  const base = form(fields);
  const response = await fetch(`${app.http}/auth/token`, {
    ...base,
    ...init,
    headers: { ...(base.headers as Record<string, string>), ...(init.headers as Record<string, string>) },
  });
  const body = (await response.json()) as Record<string, unknown>;
  if (typeof body.access_token === "string") trackSecret(body.access_token);
  return { response, body };
}

const bearer = (accessToken: string) => ({ headers: { Authorization: `Bearer ${accessToken}` } });

describe("grant_type=password", () => {
  test("issues a Bearer JWT (no-store) that works on protected routes and in whoami", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { response, body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("pragma")).toBe("no-cache");
    expect(body).toMatchObject({ token_type: "Bearer", expires_in: 900, scope: "data:read ws:connect" });
    const at = body.access_token as string;
    expect((await fetch(`${app.http}/secure-data`, bearer(at))).status).toBe(200);
    const whoami = (await (await fetch(`${app.http}/auth/whoami`, bearer(at))).json()) as Record<string, unknown>;
    expect(whoami).toMatchObject({ id: "user:alice", kind: "user", name: "alice", scopes: ["data:read", "ws:connect"] });
  });

  test("scope narrows what the token may do", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD, scope: "ws:connect" });
    expect(body.scope).toBe("ws:connect");
    const refused = await fetch(`${app.http}/secure-data`, bearer(body.access_token as string));
    expect(refused.status).toBe(403);
    expect(refused.headers.get("www-authenticate")).toContain('scope="data:read"');
  });

  test.each([
    ["wrong password", { username: "alice", password: "nope nope nope" }, 400, "invalid_grant"],
    ["unknown user", { username: "mallory", password: PASSWORD }, 400, "invalid_grant"],
    ["missing password", { username: "alice" }, 400, "invalid_request"],
    ["scope beyond the account", { username: "alice", password: PASSWORD, scope: "admin:all" }, 400, "invalid_scope"],
    ["malformed scope", { username: "alice", password: PASSWORD, scope: "Data Read!" }, 400, "invalid_scope"],
  ])("%s → %d %s", async (_name, fields, status, error) => {
    await using app = await startTestApp();
    await withUsers(app);
    const { response, body } = await token(app, { grant_type: "password", ...fields });
    expect(response.status).toBe(status);
    expect(body).toMatchObject({ error });
    expect(body.access_token).toBeUndefined();
  });

  test("PASSWORD_GRANT=false turns the grant off", async () => {
    await using app = await startTestApp({ PASSWORD_GRANT: "false" });
    await withUsers(app);
    const { response, body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    expect(response.status).toBe(400);
    expect(body).toMatchObject({ error: "unsupported_grant_type" });
  });

  test("the real curl binary, as the seed's FastAPI form client would post it", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const result = await curl([
      "-d",
      "grant_type=password",
      "-d",
      "username=alice",
      "--data-urlencode",
      `password=${PASSWORD}`,
      `${app.http}/auth/token`,
    ]);
    expect(result.status).toBe(200);
    trackSecret((JSON.parse(result.body) as { access_token: string }).access_token);
  });
});

describe("grant_type=client_credentials (an API key as the client secret)", () => {
  test.each(["basic", "form"] as const)("client authentication via %s", async (how) => {
    await using app = await startTestApp();
    const { key } = await withUsers(app);
    const init = how === "basic" ? { headers: { Authorization: `Basic ${Buffer.from(`${key.id}:${key.token}`).toString("base64")}` } } : {};
    const fields: Record<string, string> =
      how === "basic"
        ? { grant_type: "client_credentials" }
        : { grant_type: "client_credentials", client_id: key.id, client_secret: key.token };
    const { response, body } = await token(app, fields, init);
    expect(response.status).toBe(200);
    expect(body.scope).toBe("data:read");
    const whoami = (await (await fetch(`${app.http}/auth/whoami`, bearer(body.access_token as string))).json()) as Record<string, unknown>;
    expect(whoami).toMatchObject({ id: key.id, kind: "key", scopes: ["data:read"] });
  });

  test.each([
    ["no client authentication", () => ({ fields: {}, init: {} }), 401, "invalid_client"],
    [
      "client_id of another key",
      (key: { id: string; token: string }) => ({ fields: { client_id: "0123456789ab", client_secret: key.token }, init: {} }),
      401,
      "invalid_client",
    ],
    [
      "not a key as secret",
      (key: { id: string; token: string }) => ({ fields: { client_id: key.id, client_secret: "x".repeat(40) }, init: {} }),
      401,
      "invalid_client",
    ],
    [
      "both Basic and form",
      (key: { id: string; token: string }) => ({
        fields: { client_id: key.id, client_secret: key.token },
        init: { headers: { Authorization: `Basic ${Buffer.from(`${key.id}:${key.token}`).toString("base64")}` } },
      }),
      400,
      "invalid_request",
    ],
  ])("%s → %d %s", async (_name, make, status, error) => {
    await using app = await startTestApp();
    const { key } = await withUsers(app);
    const { fields, init } = make(key);
    const { response, body } = await token(app, { grant_type: "client_credentials", ...fields }, init);
    expect(response.status).toBe(status);
    expect(body).toMatchObject({ error });
    if (status === 401) expect(response.headers.get("www-authenticate")).toContain("Basic");
  });

  test("a revoked key is refused as a client, and its JWTs and sockets stop working", async () => {
    await using app = await startTestApp();
    const { key } = await withUsers(app);
    await app.store.insertKey({
      ...{ id: "aaaaaaaaaaaa" },
      name: "ws",
      scopes: ["data:read", "ws:connect"],
      secretHash: digestToken("unused-secret"),
      createdAt: Date.now(),
      expiresAt: null,
    });
    const { body } = await token(app, { grant_type: "client_credentials", client_id: key.id, client_secret: key.token });
    const at = body.access_token as string;
    expect((await fetch(`${app.http}/secure-data`, bearer(at))).status).toBe(200);
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    const refused = await fetch(`${app.http}/secure-data`, bearer(at));
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ description: "The token has been revoked" });
    const again = await token(app, { grant_type: "client_credentials", client_id: key.id, client_secret: key.token });
    expect(again.response.status).toBe(401);
    expect(again.body).toMatchObject({
      error: "invalid_client",
      error_description: "Client authentication failed: the token has been revoked",
    });
  });
});

describe("request errors (RFC 6749 §5.2)", () => {
  test.each<[string, RequestInit, number, string]>([
    ["JSON instead of a form", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }, 400, "invalid_request"],
    ["no grant_type", form({ username: "alice" }), 400, "invalid_request"],
    ["unknown grant", form({ grant_type: "implicit" }), 400, "unsupported_grant_type"],
    [
      "repeated parameter",
      { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=password&grant_type=password" },
      400,
      "invalid_request",
    ],
  ])("%s", async (_name, init, status, error) => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/auth/token`, init);
    expect(response.status).toBe(status);
    expect(await response.json()).toMatchObject({ error });
    expect(response.headers.get("cache-control")).toBe("no-store");
  });

  test("GET /auth/token: 405 with Allow: POST", async () => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/auth/token`);
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
  });

  test("a form larger than the body limit is refused by Bun with 413 before any work", async () => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/auth/token`, form({ grant_type: "password", username: "a", password: "x".repeat(100_000) }));
    expect(response.status).toBe(413);
  });
});

describe("JWTs on the gate", () => {
  test("the JWKS publishes the key whose kid signs the tokens", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    const kid = (JSON.parse(Buffer.from((body.access_token as string).split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const jwks = (await (await fetch(`${app.http}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string; d?: string }> };
    expect(jwks.keys.map((key) => key.kid)).toContain(kid);
    expect(jwks.keys.every((key) => key.d === undefined)).toBe(true);
  });

  test("a JWT opens /ws by subprotocol; it is closed with 4401 when the token expires", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    const at = body.access_token as string;
    const probe = new WsProbe(`${app.ws}/ws`, { protocols: ["tokengate", `tokengate.bearer.${Buffer.from(at).toString("base64url")}`] });
    expect(await probe.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    setSystemTime(new Date(Date.now() + 901_000));
    expect(await probe.closed).toEqual({ code: 4401, reason: "The token has expired" });
    const late = await fetch(`${app.http}/secure-data`, bearer(at));
    expect(late.status).toBe(401);
    expect(await late.json()).toMatchObject({ description: "The token has expired" });
  });

  test("disabling the user stops their JWTs at once, even cached ones", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    const at = body.access_token as string;
    expect((await fetch(`${app.http}/secure-data`, bearer(at))).status).toBe(200);
    await app.store.setDisabled("alice", Date.now(), Date.now());
    await app.app.keyring.refresh();
    expect((await fetch(`${app.http}/secure-data`, bearer(at))).status).toBe(401);
  });

  test("a tampered JWT is an invalid_token, never a 500", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    const [header, payload, signature] = (body.access_token as string).split(".");
    const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, "base64url").toString()), scope: "*" })).toString(
      "base64url",
    );
    const response = await fetch(`${app.http}/secure-data`, bearer(`${header}.${widened}.${signature}`));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "invalid_token" });
  });

  test("a static AUTH_TOKEN shaped like a JWT (it may contain dots) still authenticates", async () => {
    const dotted = trackSecret("my-long.static-passphrase.for-the-gate-2026");
    await using app = await startTestApp({ AUTH_TOKEN: dotted });
    expect((await fetch(`${app.http}/secure-data`, bearer(dotted))).status).toBe(200);
    expect((await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": dotted } })).status).toBe(200);
  });

  test("an HS256 deployment verifies its own tokens and publishes no key", async () => {
    await using app = await startTestApp({ JWT_ALG: "HS256" });
    await withUsers(app);
    const { body } = await token(app, { grant_type: "password", username: "alice", password: PASSWORD });
    expect((await fetch(`${app.http}/secure-data`, bearer(body.access_token as string))).status).toBe(200);
    expect(await (await fetch(`${app.http}/.well-known/jwks.json`)).json()).toEqual({ keys: [] });
  });
});

test("no password, key or access token reached any server output", () => {
  expectNoSecretsInOutput();
});

describe("public clients: client_id by HTTP Basic (RFC 6749 §2.3.1) or by the form, the same on every grant", () => {
  const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

  test("curl -u 'thermostat-app:' (requests-oauthlib's default), then the library's auto-refresh with client_id in the form", async () => {
    await using app = await startTestApp();
    await withUsers(app);
    // What requests-oauthlib sends for the password grant: Basic base64("thermostat-app:").
    const signIn = await curl([
      "-u",
      "thermostat-app:",
      "--data-urlencode",
      "grant_type=password",
      "--data-urlencode",
      "username=alice",
      "--data-urlencode",
      `password=${PASSWORD}`,
      `${app.http}/auth/token`,
    ]);
    expect(signIn.status).toBe(200);
    const issued = JSON.parse(signIn.body) as { access_token: string; refresh_token: string };
    trackSecret(issued.access_token);
    trackSecret(issued.refresh_token);
    expect(claimsOf(issued.access_token).client_id).toBe("thermostat-app");
    // Its documented auto-refresh sends client_id in the form: same client, so it works.
    const renewed = await token(app, { grant_type: "refresh_token", refresh_token: issued.refresh_token, client_id: "thermostat-app" });
    expect(renewed.response.status).toBe(200);
    trackSecret(renewed.body.refresh_token as string);
    expect(claimsOf(renewed.body.access_token as string).client_id).toBe("thermostat-app");
    // And by Basic on the refresh too.
    const again = await curl([
      "-u",
      "thermostat-app:",
      "--data-urlencode",
      "grant_type=refresh_token",
      "--data-urlencode",
      `refresh_token=${renewed.body.refresh_token as string}`,
      `${app.http}/auth/token`,
    ]);
    expect(again.status).toBe(200);
    const last = JSON.parse(again.body) as { access_token: string; refresh_token: string };
    trackSecret(last.access_token);
    trackSecret(last.refresh_token);
    // Another client presenting the same refresh token is refused.
    const stolen = await token(app, { grant_type: "refresh_token", refresh_token: last.refresh_token, client_id: "other-app" });
    expect(stolen.body).toMatchObject({ error: "invalid_grant", error_description: "The refresh token was issued to another client" });
    expectNoSecretsInOutput();
  });

  test.each<[string, Record<string, string>, string, number, string]>([
    ["a secret for a public client", {}, `Basic ${Buffer.from("app:s3cret").toString("base64")}`, 401, "invalid_client"],
    ["Basic and form disagree", { client_id: "other" }, `Basic ${Buffer.from("app:").toString("base64")}`, 400, "invalid_request"],
    [
      "a client_secret in the form next to Basic",
      { client_secret: "x" },
      `Basic ${Buffer.from("app:").toString("base64")}`,
      401,
      "invalid_client",
    ],
    ["a Bearer header instead of client auth", {}, "Bearer abc", 401, "invalid_client"],
  ])("password grant: %s → %d %s", async (_name, extra, authorization, status, error) => {
    await using app = await startTestApp();
    await withUsers(app);
    const { response, body } = await token(
      app,
      { grant_type: "password", username: "alice", password: PASSWORD, ...extra },
      { headers: { Authorization: authorization } },
    );
    expect(response.status).toBe(status);
    expect(body.error).toBe(error);
  });
});
