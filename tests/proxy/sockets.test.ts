/**
 * The built-in reverse proxy for WebSockets, end to end: Bun's WebSocket client → the gate → a
 * real WebSocket echo service. Subprotocols, binary frames, close codes both ways, a burst that
 * needs backpressure, revocation closing both sides within the same bound as /ws, and refusals
 * that never open a socket to the service.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { closedPort, startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

const dir = mkdtempSync(join(tmpdir(), "tokengate-proxy-ws-"));
let upstream: Upstream;
let app: TestApp;
let key: { id: string; token: string };

beforeAll(async () => {
  upstream = startUpstream();
  const file = join(dir, "routes.toml");
  writeFileSync(
    file,
    `[[route]]
name = "live"
match = { path_prefix = "/live/" }
upstream = "${upstream.url}"
scope = "live"
strip_prefix = true
websocket = true

[[route]]
name = "plain"
match = { path_prefix = "/plain/" }
upstream = "${upstream.url}"
scope = "live"

[[route]]
name = "gone"
match = { path_prefix = "/gone/" }
upstream = "http://127.0.0.1:${closedPort()}"
scope = "live"
websocket = true
`,
  );
  app = await startTestApp({ ROUTES_FILE: file, ACCESS_LOG: "all" });
  key = await insertApiKey(app.store, { name: "sensor hub", scopes: ["live"] });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

const handshakes = () => upstream.received.filter((request) => request.websocket);

async function waitUntil(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check() && performance.now() < deadline) await Bun.sleep(5);
}

describe("a proxied socket", () => {
  test("opens with ?token=, pipes text and binary frames both ways, and the service never sees the token", async () => {
    const probe = new WsProbe(`${app.ws}/live/feed?room=1&token=${key.token}`);
    expect(await probe.opened).toBe(true);
    expect(await probe.nextMessage(0)).toBe("upstream hello ");
    probe.socket.send("ping 1");
    probe.socket.send(new Uint8Array([1, 2, 3, 250]));
    expect(await probe.nextMessage(1)).toBe("ping 1");
    expect(new Uint8Array((await probe.nextMessage(2)) as ArrayBuffer)).toEqual(new Uint8Array([1, 2, 3, 250]));
    const handshake = handshakes().at(-1)!;
    expect(handshake.target).toBe("/feed?room=1");
    expect(handshake.headers).toMatchObject({ "x-auth-user": "sensor hub", "x-auth-scopes": "live", "x-forwarded-for": "127.0.0.1" });
    probe.socket.close(1000);
    await probe.closed;
  });

  test.each([
    [
      "the service's protocol is chosen; tokengate entries never reach it",
      ["tokengate", "chat.v1", "chat.v2"],
      "chat.v1",
      "chat.v1, chat.v2",
    ],
    ["the plain marker is answered when the service chose none", ["tokengate"], "tokengate", undefined],
  ])("subprotocols: %s", async (_name, offered, answered, serviceSaw) => {
    const protocols = [...offered, encodeSubprotocolToken(key.token)];
    const probe = new WsProbe(`${app.ws}/live/sub`, { protocols });
    expect(await probe.opened).toBe(true);
    expect(probe.socket.protocol).toBe(answered);
    expect(handshakes().at(-1)!.headers["sec-websocket-protocol"]).toBe(serviceSaw as string);
    probe.socket.close();
    await probe.closed;
  });

  test("close codes and reasons cross from the service to the client", async () => {
    const probe = new WsProbe(`${app.ws}/live/c?token=${key.token}`);
    await probe.opened;
    probe.socket.send("close:4321:service done");
    expect(await probe.closed).toEqual({ code: 4321, reason: "service done" });
  });

  test("close codes and reasons cross from the client to the service", async () => {
    const probe = new WsProbe(`${app.ws}/live/c?token=${key.token}`);
    await probe.opened;
    await probe.nextMessage(0);
    const before = upstream.closes.length;
    probe.socket.close(4000, "client done");
    await probe.closed;
    await waitUntil(() => upstream.closes.length > before);
    expect(upstream.closes.at(-1)).toEqual({ code: 4000, reason: "client done" });
  });

  test("a service that drops the connection without a close frame: the client gets 1014", async () => {
    const probe = new WsProbe(`${app.ws}/live/c?token=${key.token}`);
    await probe.opened;
    probe.socket.send("terminate");
    expect((await probe.closed).code).toBe(1014);
  });

  test("a burst larger than the buffers arrives whole and in order", async () => {
    const probe = new WsProbe(`${app.ws}/live/burst?token=${key.token}`);
    await probe.opened;
    await probe.nextMessage(0);
    const frame = "x".repeat(60 * 1024);
    const count = 120;
    for (let index = 0; index < count; index += 1) probe.socket.send(`${index}:${frame}`);
    await probe.nextMessage(count, 15_000);
    const indexes = probe.messages.slice(1).map((message) => Number(String(message).split(":")[0]));
    expect(indexes).toEqual([...Array(count).keys()]);
    probe.socket.close();
    await probe.closed;
  });

  test("a key about to expire gets no auth_expiring frame on a proxied socket (it would be the service's protocol)", async () => {
    const soon = await insertApiKey(app.store, { name: "visitor", scopes: ["live"], expiresAt: Date.now() + 30_000 });
    await app.app.keyring.refresh();
    const probe = new WsProbe(`${app.ws}/live/e?token=${soon.token}`);
    await probe.opened;
    await probe.nextMessage(0);
    await Bun.sleep(700);
    expect(probe.messages.map(String)).toEqual(["upstream hello "]);
    probe.socket.close();
    await probe.closed;
    trackSecret(soon.token);
  });

  test("revoking the key closes the client with 4403 and the service's socket too, within a second", async () => {
    const doomed = await insertApiKey(app.store, { name: "lost phone", scopes: ["live"] });
    await app.app.keyring.refresh();
    const probe = new WsProbe(`${app.ws}/live/r?token=${doomed.token}`);
    await probe.opened;
    await probe.nextMessage(0);
    const open = upstream.openSockets;
    const started = performance.now();
    await app.store.revokeKey(doomed.id, Date.now());
    const closed = await probe.closed;
    const latency = performance.now() - started;
    expect(closed.code).toBe(4403);
    console.log(`revocation to 4403 on a proxied socket: ${latency.toFixed(0)} ms`);
    expect(latency).toBeLessThan(1000);
    await waitUntil(() => upstream.openSockets < open);
    expect(upstream.openSockets).toBe(open - 1);
    trackSecret(doomed.token);
  });
});

describe("refused upgrades never open a socket to the service", () => {
  test.each([
    ["no credential", () => `/live/x`, 401],
    ["a wrong token", () => `/live/x?token=tg_wrong_00000000000000000000000`, 401],
    ["a misspelt ?Token=", () => `/live/x?Token=${key.token}`, 400],
  ])("%s", async (_name, path, status) => {
    const before = handshakes().length;
    const response = await fetch(`${app.http}${path()}`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(response.status).toBe(status);
    expect(handshakes().length).toBe(before);
  });

  test("a route without websocket = true refuses the upgrade after authentication, and says how to allow it", async () => {
    const probe = new WsProbe(`${app.ws}/plain/x?token=${key.token}`);
    expect(await probe.opened).toBe(false);
    const response = await fetch(`${app.http}/plain/x?token=${key.token}`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain("websocket = true");
  });

  test("a service that cannot be reached: 502 to the upgrade, naming the route", async () => {
    const response = await fetch(`${app.http}/gone/x?token=${key.token}`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { detail: string }).detail).toContain('"gone"');
  });
});

test("no token reached the service or the logs", () => {
  trackSecret(key.token);
  const everything = JSON.stringify(upstream.received);
  expect(everything).not.toContain(key.token);
  expect(everything).not.toContain(encodeSubprotocolToken(key.token).slice("tokengate.bearer.".length));
  expectNoSecretsInOutput();
});
