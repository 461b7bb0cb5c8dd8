/**
 * The typed client (client/tokengate.ts) in Bun against the real application: transports,
 * explained refusals, terminal closes, reconnect after a restart, in-band refresh.
 */
import { insertApiKey } from "./support/keys.ts";
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { backoffDelay, bearerProtocol, describeClose, TokengateClient, type ClientEvent } from "../client/tokengate.ts";
import { encodeSubprotocolToken } from "../auth/authn/credentials.ts";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { hashPassword } from "../auth/secrets/passwords.ts";
import { digestToken } from "../auth/secrets/tokens.ts";
import { startTestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";

afterEach(() => setSystemTime());

function record(client: TokengateClient): ClientEvent[] {
  const events: ClientEvent[] = [];
  client.on((event) => events.push(event));
  return events;
}

async function until(events: ClientEvent[], predicate: (event: ClientEvent) => boolean, timeoutMs = 5_000): Promise<ClientEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(predicate);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no such event; saw ${events.map((event) => event.type).join(",")}`);
    await Bun.sleep(10);
  }
}

describe("pure helpers", () => {
  test("backoff grows exponentially, is capped, and is fully jittered", () => {
    expect(backoffDelay(0, 500, 30_000, () => 0.999)).toBe(499);
    expect(backoffDelay(3, 500, 30_000, () => 0.5)).toBe(2_000);
    expect(backoffDelay(20, 500, 30_000, () => 0.999)).toBe(29_970);
    expect(backoffDelay(5, 500, 30_000, () => 0)).toBe(0);
  });

  test("the browser encoding of the bearer subprotocol matches the server's", () => {
    const token = newSecret();
    expect(bearerProtocol(token)).toBe(encodeSubprotocolToken(token));
  });

  test.each([
    [4403, true, /revoked/],
    [4401, true, /expired/],
    [1001, false, /restarting/],
    [1006, false, /refused/],
  ])("close %d: terminal %p", (code, terminal, words) => {
    const described = describeClose(code, "");
    expect(described.terminal).toBe(terminal);
    expect(described.explanation).toMatch(words);
  });

  test.each([1000, 1013, 4400, 4421, 4429, 4999])("close %d is explained in words, without the number", (code) => {
    expect(describeClose(code, "").explanation).not.toContain(String(code));
  });
});

describe("against the application", () => {
  test("subprotocol transport: open, greeting, echo", async () => {
    await using app = await startTestApp();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: app.token });
    const events = record(client);
    client.connect();
    expect(await until(events, (event) => event.type === "open")).toMatchObject({ protocol: "tokengate" });
    await until(events, (event) => event.type === "message" && event.data === "✅ WebSocket connected with valid token");
    client.send("hello");
    await until(events, (event) => event.type === "message" && event.data === "hello");
    client.close();
  });

  test("an echoed message that only looks like a control message is delivered, not thrown on", async () => {
    await using app = await startTestApp();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: app.token });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "open");
    client.send('{"type":"auth');
    client.send('{"type":"authx","note":"user data"}');
    await until(events, (event) => event.type === "message" && event.data === '{"type":"auth');
    await until(events, (event) => event.type === "message" && event.data === '{"type":"authx","note":"user data"}');
    client.close();
  });

  test("ticket transport", async () => {
    await using app = await startTestApp();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: app.token, useTicket: true });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "message");
    client.close();
    expect(app.lines.some((line) => line.includes("/ws?ticket=REDACTED"))).toBe(true);
  });

  test("a wrong token is explained (not a bare 1006) and not retried", async () => {
    await using app = await startTestApp();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: newSecret(), reconnect: { baseMs: 10 } });
    const events = record(client);
    client.connect();
    const refused = await until(events, (event) => event.type === "refused");
    expect(refused).toMatchObject({
      status: 401,
      code: "invalid_token",
      explanation: "This credential is not valid (wrong or unknown token).",
    });
    await Bun.sleep(200);
    expect(events.filter((event) => event.type === "connecting")).toHaveLength(1);
  });

  test("a revoked key closes with 4403, explained, and the client stays down", async () => {
    await using app = await startTestApp();
    const key = await insertApiKey(app.store, { name: "tablet", scopes: ["ws:connect", "data:read"] });
    await app.app.keyring.refresh();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: key.token, reconnect: { baseMs: 10 } });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "open");
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    const closed = await until(events, (event) => event.type === "close");
    expect(closed).toMatchObject({ code: 4403, terminal: true });
    await Bun.sleep(200);
    expect(events.filter((event) => event.type === "reconnecting")).toHaveLength(0);
  });

  test("reconnects with backoff after a server restart on the same port", async () => {
    const token = newSecret();
    const first = await startTestApp({ AUTH_TOKEN: token });
    const port = first.app.listener.server.port!;
    const client = new TokengateClient({ url: `ws://127.0.0.1:${port}/ws`, token, reconnect: { baseMs: 50, maxMs: 400 } });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "open");
    await first[Symbol.asyncDispose]();
    expect(await until(events, (event) => event.type === "close")).toMatchObject({ code: 1001, terminal: false });
    await until(events, (event) => event.type === "reconnecting");
    await Bun.sleep(300);
    await using second = await startTestApp({ AUTH_TOKEN: token, PORT: String(port) });
    const opens = () => events.filter((event) => event.type === "open").length;
    const deadline = Date.now() + 5_000;
    while (opens() < 2 && Date.now() < deadline) await Bun.sleep(20);
    expect(opens()).toBe(2);
    client.close();
    void second;
  });

  test("refreshes a JWT in-band when warned, and outlives the first token", async () => {
    await using app = await startTestApp();
    const password = trackSecret("refreshing user password");
    await app.store.insertUser({ username: "jo", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
    const signIn = async () => {
      const response = await fetch(`${app.http}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username: "jo", password }).toString(),
      });
      const body = (await response.json()) as { access_token: string; refresh_token: string };
      trackSecret(body.refresh_token);
      return trackSecret(body.access_token);
    };
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: signIn });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "open");
    setSystemTime(new Date(Date.now() + 870_000));
    await until(events, (event) => event.type === "auth_expiring");
    expect(await until(events, (event) => event.type === "auth_ok")).toMatchObject({ type: "auth_ok" });
    expect(events.filter((event) => event.type === "auth_expiring")).toEqual([expect.objectContaining({ renewing: true })]);
    client.close();
  });

  test.each([
    ["a fixed key", (key: string) => key],
    ["a function that can only give the same key", (key: string) => () => key],
  ])("an API key about to expire (%s): one warning, not renewable, nothing sent in-band", async (_case, source) => {
    await using app = await startTestApp();
    const key = generateApiKey();
    trackSecret(key.token);
    // 61 s ahead: the server's 60 s warning comes within about a second.
    await app.store.insertKey({
      id: key.id,
      name: "sensor",
      scopes: ["ws:connect"],
      secretHash: digestToken(key.secret),
      createdAt: Date.now(),
      expiresAt: Date.now() + 61_000,
    });
    await app.app.keyring.refresh();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: source(key.token) });
    const events = record(client);
    client.connect();
    expect(await until(events, (event) => event.type === "auth_expiring", 5_000)).toMatchObject({ renewing: false });
    // Before the mend the same key went back in-band and the server warned again, 4 times a second.
    await Bun.sleep(1_500);
    expect(events.filter((event) => event.type === "auth_expiring")).toHaveLength(1);
    expect(events.filter((event) => event.type === "auth_ok" || event.type === "auth_error")).toEqual([]);
    expect(app.lines.filter((line) => line.includes("ws.reauth"))).toEqual([]);
    client.close();
  });

  test("close() is reported as the client's own doing, in words, and never retried", async () => {
    await using app = await startTestApp();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: app.token, reconnect: { baseMs: 10 } });
    const events = record(client);
    client.connect();
    await until(events, (event) => event.type === "open");
    client.close();
    expect(await until(events, (event) => event.type === "close")).toMatchObject({
      byClient: true,
      explanation: "Disconnected.",
      terminal: true,
    });
    await Bun.sleep(200);
    expect(events.filter((event) => event.type === "reconnecting" || event.type === "connecting")).toHaveLength(1);
  });

  test("close() while the token is still being fetched opens no socket", async () => {
    await using app = await startTestApp();
    const { promise: asked, resolve: answer } = Promise.withResolvers<string>();
    const client = new TokengateClient({ url: `${app.ws}/ws`, token: () => asked });
    const events = record(client);
    client.connect();
    client.close();
    answer(app.token);
    await Bun.sleep(200);
    expect(events.map((event) => event.type)).toEqual(["connecting"]);
    expect(app.app.listener.sockets.size).toBe(0);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
