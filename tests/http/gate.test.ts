import { afterAll, describe, expect, test } from "bun:test";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { INVALID_TOKEN } from "../../auth/core/errors.ts";
import type { Principal } from "../../auth/core/principal.ts";
import { createSeedRoutes, SECURE_DATA_BODY, type Route } from "../../auth/http/routes.ts";
import type { GateServer } from "../../auth/ws/data.ts";
import { rawRequest, startTestGate } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret } from "../support/secrets.ts";

// The real seed routes, with /secure-data's handler counted so every refusal can prove it never ran.
let handlerRuns = 0;
const countedRoutes: Route[] = createSeedRoutes().map((route) =>
  route.kind === "http" && route.scope !== null && route.path === "/secure-data"
    ? {
        ...route,
        handle: (request: Request, principal: Principal, server: GateServer) => (
          (handlerRuns += 1),
          route.handle(request, principal, server)
        ),
      }
    : route,
);

const gate = startTestGate({ routes: countedRoutes });
const T = gate.token;
const OTHER = newSecret();
afterAll(() => gate.listener.shutdown());

async function get(path: string, headers: Record<string, string> = {}, method = "GET") {
  const before = handlerRuns;
  const response = await fetch(`${gate.http}${path}`, { method, headers });
  const text = await response.text();
  return { response, text, ran: handlerRuns - before };
}

describe("seed compatibility", () => {
  test("X-Auth-Token: the seed's exact 200 body", async () => {
    const { response, text, ran } = await get("/secure-data", { "X-Auth-Token": T });
    expect(response.status).toBe(200);
    expect(text).toBe('{"message":"✅ Access granted","data":"Here is your secret data!"}');
    expect(text).toBe(SECURE_DATA_BODY);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(ran).toBe(1);
  });

  test("no token: 401 with the seed's detail, a stable code and a bare challenge", async () => {
    const { response, text, ran } = await get("/secure-data");
    expect(response.status).toBe(401);
    expect(JSON.parse(text)).toMatchObject({ detail: "Invalid or missing token", code: "missing_token" });
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="tokengate"');
    expect(ran).toBe(0);
  });
});

describe("header variants on /secure-data", () => {
  const bearer = (scheme: string) => ({ Authorization: `${scheme} ${T}` });
  test.each<[string, Record<string, string>, number, string | null, string | null]>([
    // name, headers, status, body code, RFC 6750 error attribute
    ["Bearer", bearer("Bearer"), 200, null, null],
    ["bearer (lower case)", bearer("bearer"), 200, null, null],
    ["BEARER (upper case)", bearer("BEARER"), 200, null, null],
    ["both headers, same token", { "X-Auth-Token": T, Authorization: `Bearer ${T}` }, 200, null, null],
    ["wrong X-Auth-Token", { "X-Auth-Token": OTHER }, 401, "invalid_token", "invalid_token"],
    ["wrong Bearer", { Authorization: `Bearer ${OTHER}` }, 401, "invalid_token", "invalid_token"],
    ["token prefix", { "X-Auth-Token": T.slice(0, -1) }, 401, "invalid_token", "invalid_token"],
    ["token with suffix", { "X-Auth-Token": `${T}x` }, 401, "invalid_token", "invalid_token"],
    ["the seed's well-known token", { "X-Auth-Token": "my-super-secret-token" }, 401, "invalid_token", "invalid_token"],
    ["Basic instead of Bearer", { Authorization: "Basic dXNlcjpwYXNz" }, 401, "missing_token", null],
    ["empty X-Auth-Token", { "X-Auth-Token": "" }, 400, "invalid_request", "invalid_request"],
    ["space inside token", { "X-Auth-Token": "abc def" }, 400, "invalid_request", "invalid_request"],
    ["comma inside token", { "X-Auth-Token": `${T},${T}` }, 400, "invalid_request", "invalid_request"],
    ["joined duplicate values", { "X-Auth-Token": `${T}, ${T}` }, 400, "invalid_request", "invalid_request"],
    ["both headers, different tokens", { "X-Auth-Token": T, Authorization: `Bearer ${OTHER}` }, 400, "invalid_request", "invalid_request"],
    ["Bearer without token", { Authorization: "Bearer" }, 400, "invalid_request", "invalid_request"],
    ["Bearer with two tokens", { Authorization: `Bearer ${T} ${T}` }, 400, "invalid_request", "invalid_request"],
    ["malformed Authorization", { Authorization: "::::" }, 400, "invalid_request", "invalid_request"],
  ])("%s", async (_name, headers, status, code, bearerError) => {
    const { response, text, ran } = await get("/secure-data", headers);
    expect(response.status).toBe(status);
    if (status === 200) {
      expect(text).toBe(SECURE_DATA_BODY);
      expect(ran).toBe(1);
      return;
    }
    expect(ran).toBe(0);
    const body = JSON.parse(text) as { code: string; detail: string };
    expect(body.code).toBe(code!);
    if (status === 401) expect(body.detail).toBe("Invalid or missing token");
    const challenge = response.headers.get("www-authenticate")!;
    expect(challenge.startsWith('Bearer realm="tokengate"')).toBe(true);
    if (bearerError === null) expect(challenge).not.toContain("error=");
    else expect(challenge).toContain(`error="${bearerError}"`);
    expect(text).not.toContain(T);
    expect(challenge).not.toContain(T);
  });
});

test("a ?token= query is not a credential on HTTP routes (it would end up in logs and history): 400, not ignored", async () => {
  const { response, text, ran } = await get(`/secure-data?token=${T}`);
  expect(response.status).toBe(400);
  expect(JSON.parse(text)).toMatchObject({ code: "invalid_request", detail: expect.stringContaining("not accepted in the query string") });
  expect(ran).toBe(0);
});

describe("raw requests (bytes no fetch client would send)", () => {
  const request = (headerLines: string) =>
    Buffer.from(`GET /secure-data HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headerLines}\r\n`, "latin1");
  test.each<[string, string, number]>([
    ["X-Auth-Token twice, same value", `X-Auth-Token: ${T}\r\nX-Auth-Token: ${T}\r\n`, 400],
    ["X-Auth-Token twice, different values", `X-Auth-Token: ${T}\r\nX-Auth-Token: ${OTHER}\r\n`, 400],
    ["Authorization twice", `Authorization: Bearer ${T}\r\nAuthorization: Bearer ${T}\r\n`, 400],
    ["control byte in value", `X-Auth-Token: ${T}\x01\r\n`, 400],
    ["NUL in value", `X-Auth-Token: ab\x00cd\r\n`, 400],
    ["DEL in value", `X-Auth-Token: ${T}\x7f\r\n`, 400],
    ["tab inside value", `X-Auth-Token: ab\tcd\r\n`, 400],
    ["latin-1 byte in value", `X-Auth-Token: ${T}\xe9\r\n`, 400],
    ["empty value", "X-Auth-Token:\r\n", 400],
    ["oversized header", `X-Auth-Token: ${"a".repeat(20_000)}\r\n`, 431],
    ["valid token (control case)", `X-Auth-Token: ${T}\r\n`, 200],
  ])("%s", async (_name, headerLines, status) => {
    const before = handlerRuns;
    const response = await rawRequest(gate.port, request(headerLines));
    expect(response.status).toBe(status);
    expect(handlerRuns - before).toBe(status === 200 ? 1 : 0);
    expect(response.body).not.toContain(T);
  });
});

describe("routing", () => {
  test("/healthz needs no token and says nothing about the build", async () => {
    const { response, text } = await get("/healthz");
    expect(response.status).toBe(200);
    expect(JSON.parse(text)).toEqual({ status: "ok" });
    expect(response.headers.get("server")).toBeNull();
  });

  test("unknown path: 404 JSON", async () => {
    const { response, text } = await get("/secure-data/");
    expect(response.status).toBe(404);
    expect(JSON.parse(text)).toEqual({ detail: "Not Found", code: "not_found" });
  });

  test.each([
    ["POST", "/secure-data", "GET, HEAD"],
    ["DELETE", "/secure-data", "GET, HEAD"],
    ["PUT", "/healthz", "GET, HEAD"],
    ["POST", "/ws", "GET"],
  ])("%s %s: 405 with Allow, before any auth", async (method, path, allow) => {
    const { response, text, ran } = await get(path, { "X-Auth-Token": T }, method);
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe(allow);
    expect(JSON.parse(text)).toMatchObject({ code: "method_not_allowed" });
    expect(ran).toBe(0);
  });

  test("HEAD /secure-data is authenticated like GET and has no body", async () => {
    const ok = await get("/secure-data", { "X-Auth-Token": T }, "HEAD");
    expect(ok.response.status).toBe(200);
    expect(ok.text).toBe("");
    const refused = await get("/secure-data", {}, "HEAD");
    expect(refused.response.status).toBe(401);
  });

  test("GET /ws without an upgrade: 426, never a hang", async () => {
    const { response, text } = await get("/ws", { "X-Auth-Token": T });
    expect(response.status).toBe(426);
    expect(response.headers.get("upgrade")).toBe("websocket");
    expect(JSON.parse(text)).toMatchObject({ code: "upgrade_required" });
  });
});

describe("scopes", () => {
  test("a principal without data:read gets 403 insufficient_scope with the scope named", async () => {
    const limited: Principal = {
      id: "limited",
      kind: "bootstrap",
      name: "limited",
      scopes: ["ws:connect"],
      expiresAt: null,
      roles: [],
      session: null,
      tokenId: null,
    };
    const secret = newSecret();
    await using scoped = startTestGate({ routes: countedRoutes, authenticate: (token) => (token === secret ? limited : INVALID_TOKEN) });
    const before = handlerRuns;
    const response = await fetch(`${scoped.http}/secure-data`, { headers: { "X-Auth-Token": secret } });
    expect(response.status).toBe(403);
    expect(response.headers.get("www-authenticate")).toBe(
      'Bearer realm="tokengate", error="insufficient_scope", error_description="This resource needs the data:read scope", scope="data:read"',
    );
    expect(await response.json()).toMatchObject({ code: "insufficient_scope" });
    expect(handlerRuns).toBe(before);
  });
});

describe("request log", () => {
  test("one line per request with status, latency, principal and address, never the token", async () => {
    const before = gate.lines.length;
    await get("/secure-data", { "X-Auth-Token": T });
    await get("/secure-data", { "X-Auth-Token": OTHER });
    const lines = gate.lines.slice(before).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      msg: "request",
      method: "GET",
      path: "/secure-data",
      status: 200,
      principal: "bootstrap",
      remote: "127.0.0.1",
    });
    expect(lines[1]).toMatchObject({ status: 401, principal: "-" });
    expect(typeof lines[0]!.ms).toBe("number");
  });

  test("ACCESS_LOG=refused skips successful HTTP lines but keeps refusals and upgrades", async () => {
    await using quiet = startTestGate({ accessLog: "refused" });
    await fetch(`${quiet.http}/secure-data`, { headers: { "X-Auth-Token": quiet.token } });
    await fetch(`${quiet.http}/healthz`);
    await fetch(`${quiet.http}/secure-data`, { headers: { "X-Auth-Token": OTHER } });
    const ws = new WebSocket(`${quiet.ws}/ws?token=${quiet.token}`);
    await new Promise((resolve) => ws.addEventListener("message", resolve));
    ws.close();
    const statuses = quiet.lines
      .map((line) => JSON.parse(line) as { msg: string; status?: number })
      .filter((line) => line.msg === "request")
      .map((line) => line.status);
    expect(statuses).toEqual([401, 101]);
  });

  test("credential query parameters are redacted", async () => {
    const before = gate.lines.length;
    await get(`/ws?token=${T}&x=1`);
    const line = JSON.parse(gate.lines[before]!) as { path: string };
    expect(line.path).toBe("/ws?token=REDACTED&…=REDACTED");
  });

  test("a subprotocol-carried token is not logged either", async () => {
    const before = gate.lines.length;
    const ws = new WebSocket(`${gate.ws}/ws`, ["tokengate", encodeSubprotocolToken(T)]);
    await new Promise((resolve) => ws.addEventListener("open", resolve));
    ws.close();
    await new Promise((resolve) => ws.addEventListener("close", resolve));
    expect(gate.lines.slice(before).join("")).not.toContain(T);
  });
});

test("no secret used in this file reached any server output", () => {
  expectNoSecretsInOutput();
});
