/**
 * In-band re-authentication on open WebSockets: the expiry warning, a fresh token extending the
 * socket's life, and every way a re-auth can be refused. Time is moved with setSystemTime.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { generateToken } from "../../auth/secrets/tokens.ts";
import { parseControlMessage } from "../../auth/ws/sockets.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

afterEach(() => setSystemTime());

const PASSWORDS = { carol: trackSecret("carol's long password"), dave: trackSecret("dave's long password!") };

async function tokens(app: TestApp, username: "carol" | "dave") {
  if ((await app.store.getUser(username)) === undefined) {
    await app.store.insertUser({
      username,
      passwordHash: await hashPassword(PASSWORDS[username]),
      roles: ["viewer"],
      createdAt: Date.now(),
    });
  }
  const response = await fetch(`${app.http}/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "password", username, password: PASSWORDS[username] }).toString(),
  });
  const body = (await response.json()) as { access_token: string; refresh_token: string };
  trackSecret(body.access_token);
  trackSecret(body.refresh_token);
  return body;
}

function open(app: TestApp, accessToken: string): WsProbe {
  return new WsProbe(`${app.ws}/ws`, { protocols: ["tokengate", `tokengate.bearer.${Buffer.from(accessToken).toString("base64url")}`] });
}

const json = async (probe: WsProbe, index: number) => JSON.parse(String(await probe.nextMessage(index))) as Record<string, unknown>;

describe("in-band re-authentication", () => {
  test("warned before expiry; a fresh token for the same user keeps the socket open past the first token", async () => {
    await using app = await startTestApp();
    const first = await tokens(app, "carol");
    const probe = open(app, first.access_token);
    await probe.nextMessage(0);
    const start = Date.now();
    setSystemTime(new Date(start + 870_000));
    const warning = await json(probe, 1);
    expect(warning.type).toBe("auth_expiring");
    expect(warning.expires_in).toBeGreaterThan(20);
    expect(warning.expires_in).toBeLessThanOrEqual(60);

    const fresh = await tokens(app, "carol");
    probe.socket.send(JSON.stringify({ type: "auth", token: fresh.access_token }));
    const ok = await json(probe, 2);
    expect(ok).toMatchObject({ type: "auth_ok" });
    expect(ok.expires_in).toBeGreaterThan(800);

    setSystemTime(new Date(start + 910_000));
    await Bun.sleep(400);
    probe.socket.send("still here");
    expect(await probe.nextMessage(3)).toBe("still here");
    setSystemTime(new Date(start + 870_000 + 901_000));
    expect(await probe.closed).toEqual({ code: 4401, reason: "The token has expired" });
  });

  test.each([
    // The same answer as a forged token: the socket must not tell valid-but-someone-else's from invalid.
    [
      "another user's token",
      async (app: TestApp) => JSON.stringify({ type: "auth", token: (await tokens(app, "dave")).access_token }),
      "invalid_token",
    ],
    ["a forged token", async () => JSON.stringify({ type: "auth", token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln" }), "invalid_token"],
    ["no token", async () => JSON.stringify({ type: "auth" }), "invalid_request"],
    ["a token with spaces", async () => JSON.stringify({ type: "auth", token: "a b" }), "invalid_request"],
  ])("%s → auth_error, the socket keeps its old principal and expiry", async (_name, makeMessage, code) => {
    await using app = await startTestApp();
    const first = await tokens(app, "carol");
    const probe = open(app, first.access_token);
    await probe.nextMessage(0);
    probe.socket.send(await makeMessage(app));
    expect(await json(probe, 1)).toMatchObject({ type: "auth_error", code });
    probe.socket.send("echo");
    expect(await probe.nextMessage(2)).toBe("echo");
    setSystemTime(new Date(Date.now() + 901_000));
    expect((await probe.closed).code).toBe(4401);
  });
});

describe("parseControlMessage", () => {
  test.each<[string, string, unknown]>([
    ["auth with token", '{"type":"auth","token":"abc.def.ghi"}', { type: "auth", token: "abc.def.ghi" }],
    ["auth without token", '{"type":"auth"}', { type: "auth", token: undefined }],
    ["auth with a non-string token", '{"type":"auth","token":42}', { type: "auth", token: undefined }],
    ["other JSON is ordinary data", '{"type":"chat","text":"auth"}', undefined],
    ["broken JSON is ordinary data", '{"type":"auth"', undefined],
    ["plain text", "hello auth", undefined],
    ["JSON array", '["auth"]', undefined],
  ])("%s", (_name, text, expected) => {
    expect(parseControlMessage(text)).toEqual(expected as never);
  });
});

test("no password or token reached any server output", () => {
  expectNoSecretsInOutput();
});

describe("in-band re-authentication is guarded like HTTP (no oracle, counted, audited, banned)", () => {
  async function addKey(app: TestApp, name: string, scopes: string[]): Promise<{ id: string; token: string }> {
    const key = await insertApiKey(app.store, { name, scopes });
    await app.app.keyring.refresh();
    return { id: key.id, token: key.token };
  }
  const openWithKey = (app: TestApp, token: string) =>
    new WsProbe(`${app.ws}/ws`, { protocols: ["tokengate", encodeSubprotocolToken(token)] });
  const guessFor = (id: string) => `tg_${id}_${generateToken()}`;

  test("a valid token of another principal and a wrong one get the same answer", async () => {
    await using app = await startTestApp();
    const low = await addKey(app, "lamp", ["ws:connect"]);
    const admin = await addKey(app, "admin", ["*"]);
    const probe = openWithKey(app, low.token);
    await probe.nextMessage(0);
    probe.socket.send(JSON.stringify({ type: "auth", token: admin.token }));
    probe.socket.send(JSON.stringify({ type: "auth", token: guessFor(admin.id) }));
    expect(await probe.nextMessage(2)).toBe(await probe.nextMessage(1));
    expect(await json(probe, 1)).toEqual({
      type: "auth_error",
      code: "invalid_token",
      description: "The token is not valid for this connection",
    });
    probe.socket.close();
    expectNoSecretsInOutput();
  });

  test("more than 5 auth messages a minute on one socket close it with 4429", async () => {
    await using app = await startTestApp();
    const low = await addKey(app, "lamp", ["ws:connect"]);
    const probe = openWithKey(app, low.token);
    await probe.nextMessage(0);
    for (let index = 0; index < 6; index++) probe.socket.send(JSON.stringify({ type: "auth" }));
    expect(await probe.closed).toEqual({ code: 4429, reason: "Too many auth messages on this connection; open a new one" });
    expect(probe.messages.filter((message) => String(message).includes("auth_error"))).toHaveLength(5);
  });

  test("guesses count toward the same ban as HTTP: audited, the 10th closes the socket 4429, then HTTP and upgrades get 429", async () => {
    // Loopback is exempt by default; here it is the attacker.
    await using app = await startTestApp({ BAN_EXEMPT: "" });
    const low = await addKey(app, "lamp", ["ws:connect"]);
    const admin = await addKey(app, "admin", ["*"]);
    const sockets: WsProbe[] = [];
    for (let round = 0; round < 2; round++) {
      const probe = openWithKey(app, low.token);
      sockets.push(probe);
      await probe.nextMessage(0);
      for (let guess = 0; guess < 5; guess++) probe.socket.send(JSON.stringify({ type: "auth", token: guessFor(admin.id) }));
      if (round === 0) await probe.nextMessage(5);
    }
    expect(await sockets[1]!.closed).toMatchObject({ code: 4429 });
    const failures = app.audit
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.audit === "auth.failure" && line.path === "/ws");
    expect(failures.length).toBeGreaterThanOrEqual(10);
    expect(failures[0]).toMatchObject({ key_id: admin.id, address: "127.0.0.1", reason: "invalid_token" });
    expect((await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": low.token } })).status).toBe(429);
    const again = openWithKey(app, low.token);
    expect(await again.opened).toBe(false);
    sockets[0]!.socket.close();
    expectNoSecretsInOutput();
  });
});
