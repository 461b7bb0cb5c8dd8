import { afterAll, describe, expect, test } from "bun:test";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { WS_GREETING } from "../../auth/http/routes.ts";
import { rawRequest, startTestGate, WsProbe } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret } from "../support/secrets.ts";

const gate = startTestGate({ wsMaxPayload: 1024 });
const T = gate.token;
const OTHER = newSecret();
afterAll(() => gate.listener.shutdown());

const handshake = (target: string, extra = "") =>
  `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe("transports", () => {
  test("?token= (the seed): greeting, then echo", async () => {
    const probe = new WsProbe(`${gate.ws}/ws?token=${encodeURIComponent(T)}`);
    expect(await probe.opened).toBe(true);
    expect(await probe.nextMessage(0)).toBe(WS_GREETING);
    probe.socket.send("ping ✓");
    expect(await probe.nextMessage(1)).toBe("ping ✓");
    probe.socket.close();
  });

  test("subprotocol: the server selects only the marker, never the token", async () => {
    const probe = new WsProbe(`${gate.ws}/ws`, { protocols: ["tokengate", encodeSubprotocolToken(T)] });
    expect(await probe.opened).toBe(true);
    expect(probe.socket.protocol).toBe("tokengate");
    expect(await probe.nextMessage(0)).toBe(WS_GREETING);
    probe.socket.close();
  });

  test("subprotocol on the wire: the 101 carries exactly 'tokengate'", async () => {
    const response = await rawRequest(gate.port, handshake("/ws", `Sec-WebSocket-Protocol: ${encodeSubprotocolToken(T)}, tokengate\r\n`));
    expect(response.status).toBe(101);
    expect(response.headers.get("sec-websocket-protocol")).toBe("tokengate");
    expect(response.raw).not.toContain(encodeSubprotocolToken(T));
  });

  test.each([
    ["X-Auth-Token", new Headers({ "X-Auth-Token": T })],
    ["Authorization: Bearer", new Headers({ Authorization: `Bearer ${T}` })],
  ])("%s header (non-browser clients)", async (_name, headers) => {
    const probe = new WsProbe(`${gate.ws}/ws`, { headers });
    expect(await probe.opened).toBe(true);
    expect(await probe.nextMessage(0)).toBe(WS_GREETING);
    probe.socket.close();
  });

  test("binary messages are echoed as binary", async () => {
    const probe = new WsProbe(`${gate.ws}/ws?token=${T}`);
    await probe.nextMessage(0);
    probe.socket.send(new Uint8Array([0, 1, 2, 255]));
    const echoed = await probe.nextMessage(1);
    expect(echoed).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(echoed as ArrayBuffer)]).toEqual([0, 1, 2, 255]);
    probe.socket.close();
  });

  test("principal lives in ws.data and is logged at close without the token", async () => {
    const before = gate.lines.length;
    const probe = new WsProbe(`${gate.ws}/ws?token=${T}`);
    await probe.nextMessage(0);
    probe.socket.close(4000, "bye");
    await probe.closed;
    await Bun.sleep(20);
    const lines = gate.lines.slice(before).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((line) => line.msg === "request")).toMatchObject({
      status: 101,
      principal: "bootstrap",
      path: "/ws?token=REDACTED",
      remote: "127.0.0.1",
    });
    expect(lines.find((line) => line.msg === "ws.close" && line.code === 4000)).toMatchObject({ code: 4000, principal: "bootstrap" });
  });
});

describe("refusals happen before the upgrade, with an HTTP answer", () => {
  test.each<[string, string, string, number, string]>([
    ["no token", "/ws", "", 401, "missing_token"],
    ["wrong query token", `/ws?token=${OTHER}`, "", 401, "invalid_token"],
    ["wrong subprotocol token", "/ws", `Sec-WebSocket-Protocol: tokengate, ${encodeSubprotocolToken(OTHER)}\r\n`, 401, "invalid_token"],
    ["token twice in the query", `/ws?token=${T}&token=${T}`, "", 400, "invalid_request"],
    ["empty query token", "/ws?token=", "", 400, "invalid_request"],
    [
      "query and subprotocol disagree",
      `/ws?token=${T}`,
      `Sec-WebSocket-Protocol: tokengate, ${encodeSubprotocolToken(OTHER)}\r\n`,
      400,
      "invalid_request",
    ],
    ["bearer subprotocol without the marker", "/ws", `Sec-WebSocket-Protocol: ${encodeSubprotocolToken(T)}\r\n`, 400, "invalid_request"],
    [
      "two bearer subprotocols",
      "/ws",
      `Sec-WebSocket-Protocol: tokengate, ${encodeSubprotocolToken(T)}, ${encodeSubprotocolToken(T)}\r\n`,
      400,
      "invalid_request",
    ],
    ["a subprotocol we do not speak", `/ws?token=${T}`, "Sec-WebSocket-Protocol: chat\r\n", 400, "invalid_request"],
    ["header and query disagree", `/ws?token=${T}`, `X-Auth-Token: ${OTHER}\r\n`, 400, "invalid_request"],
  ])("%s", async (_name, target, extra, status, code) => {
    const response = await rawRequest(gate.port, handshake(target, extra));
    expect(response.status).toBe(status);
    const body = JSON.parse(response.body) as { code: string; detail: string };
    expect(body.code).toBe(code);
    if (status === 401) expect(body.detail).toBe("Invalid or missing token");
    expect(response.headers.get("www-authenticate")).toStartWith('Bearer realm="tokengate"');
    expect(response.raw).not.toContain(T);
  });

  test("Bun's WebSocket client sees the refusal as a failed connection", async () => {
    const probe = new WsProbe(`${gate.ws}/ws?token=${OTHER}`);
    expect(await probe.opened).toBe(false);
    expect(probe.messages).toEqual([]);
  });

  test("a handshake without Sec-WebSocket-Key is refused with 400", async () => {
    const response = await rawRequest(
      gate.port,
      `GET /ws?token=${T} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    );
    expect(response.status).toBe(400);
  });

  test("a wrong WebSocket version is refused (426), never upgraded", async () => {
    const response = await rawRequest(gate.port, handshake(`/ws?token=${T}`).replace("Version: 13", "Version: 8"));
    expect([400, 426]).toContain(response.status);
  });
});

describe("limits", () => {
  test("a message over WS_MAX_PAYLOAD_BYTES closes the socket with 1009", async () => {
    const probe = new WsProbe(`${gate.ws}/ws?token=${T}`);
    await probe.nextMessage(0);
    probe.socket.send("x".repeat(2048));
    const closed = await probe.closed;
    expect(closed.code).toBe(1009);
  });

  test("a message at the limit is still echoed", async () => {
    const probe = new WsProbe(`${gate.ws}/ws?token=${T}`);
    await probe.nextMessage(0);
    probe.socket.send("y".repeat(1024));
    expect(await probe.nextMessage(1)).toBe("y".repeat(1024));
    probe.socket.close();
  });
});

describe("shutdown", () => {
  test("open sockets are closed with 1001 and the listener stops", async () => {
    const local = startTestGate();
    const probes = [0, 1, 2].map(() => new WsProbe(`${local.ws}/ws?token=${local.token}`));
    await Promise.all(probes.map((probe) => probe.nextMessage(0)));
    expect(local.listener.sockets.size).toBe(3);
    const started = performance.now();
    await local.listener.shutdown();
    const closes = await Promise.all(probes.map((probe) => probe.closed));
    expect(closes.map((close) => close.code)).toEqual([1001, 1001, 1001]);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(local.listener.sockets.size).toBe(0);
    expect(
      await fetch(`${local.http}/healthz`).then(
        () => "answered",
        () => "refused",
      ),
    ).toBe("refused");
  });
});

test("no secret used in this file reached any server output", () => {
  expectNoSecretsInOutput();
});
