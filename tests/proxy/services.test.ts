/**
 * The built-in reverse proxy over HTTP, end to end: a real gate (startApp on port 0) in front of a
 * real recording service (tests/support/upstream.ts). Every case checks what the client got and
 * what the service received, or that the service received nothing at all.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSubprotocolToken } from "../../auth/authn/credentials.ts";
import { closedPort, rawRequest, startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

const dir = mkdtempSync(join(tmpdir(), "tokengate-proxy-"));
let upstream: Upstream;
let app: TestApp;
let key: { id: string; token: string };
let otherScope: { id: string; token: string };

function routesToml(upstreamUrl: string): string {
  return `
[[route]]
name = "app"
match = { path_prefix = "/app/" }
upstream = "${upstreamUrl}/base"
scope = "app"
strip_prefix = true

[[route]]
name = "kept"
match = { path_prefix = "/kept/" }
upstream = "${upstreamUrl}"
scope = "app"
identity_headers = false

[[route]]
name = "tight"
match = { path_prefix = "/tight/" }
upstream = "${upstreamUrl}"
scope = "app"
strip_prefix = true
timeout_seconds = 1
max_body_bytes = 1000

[[route]]
name = "gone"
match = { path_prefix = "/gone/" }
upstream = "http://127.0.0.1:${closedPort()}"
scope = "app"

[[route]]
name = "camera"
match = { host = "cam.example" }
upstream = "${upstreamUrl}"
scope = "app"
`;
}

beforeAll(async () => {
  upstream = startUpstream();
  const file = join(dir, "routes.toml");
  writeFileSync(file, routesToml(upstream.url));
  app = await startTestApp({ ROUTES_FILE: file, ACCESS_LOG: "all" });
  key = await insertApiKey(app.store, { name: "kitchen tablet", scopes: ["app"] });
  otherScope = await insertApiKey(app.store, { name: "doorbell", scopes: ["camera:view"] });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** How many requests the service has received so far: a refusal must not add one. */
const seen = () => upstream.received.length;
const last = () => upstream.received.at(-1)!;

describe("allowed requests reach the service, without the gate's credential", () => {
  test.each([
    ["X-Auth-Token", (token: string) => ({ url: "/app/items?a=1", headers: { "x-auth-token": token } })],
    ["Authorization: Bearer", (token: string) => ({ url: "/app/items?a=1", headers: { authorization: `Bearer ${token}` } })],
    ["?token= (removed from the forwarded URL)", (token: string) => ({ url: `/app/items?a=1&token=${token}`, headers: {} })],
    ["?to%6Ben= (percent-encoded name)", (token: string) => ({ url: `/app/items?to%6Ben=${token}&a=1`, headers: {} })],
  ])("%s", async (_name, build) => {
    const { url, headers } = build(key.token);
    const response = await fetch(`${app.http}${url}`, { headers });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ target: "/base/items?a=1" });
    const { headers: got, target } = last();
    expect(target).toBe("/base/items?a=1");
    expect(got["x-auth-token"]).toBeUndefined();
    expect(got.authorization).toBeUndefined();
    expect(got).toMatchObject({ "x-auth-user": "kitchen tablet", "x-auth-id": key.id, "x-auth-scopes": "app", "x-auth-kind": "key" });
  });

  test("the service's own Authorization passes untouched when the gate's token came in X-Auth-Token", async () => {
    const response = await fetch(`${app.http}/app/api`, {
      headers: { "x-auth-token": key.token, authorization: "Bearer grafana-api-key-1" },
    });
    expect(response.status).toBe(200);
    expect(last().headers.authorization).toBe("Bearer grafana-api-key-1");
    expect(last().headers["x-auth-token"]).toBeUndefined();
  });

  test("the service's own Basic credentials pass when the gate's token came by ?token=", async () => {
    const basic = `Basic ${btoa("admin:router-password")}`;
    const response = await fetch(`${app.http}/app/api?token=${key.token}`, { headers: { authorization: basic } });
    expect(response.status).toBe(200);
    expect(last().headers.authorization).toBe(basic);
    expect(last().target).toBe("/base/api");
  });

  test.each([
    ["Bearer", (token: string) => `Bearer ${token}`],
    ["Basic, as the password", (token: string) => `Basic ${btoa(`me:${token}`)}`],
  ])("the gate's token repeated in Authorization (%s) is still the gate's and is removed", async (_name, spell) => {
    const response = await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": key.token, authorization: spell(key.token) } });
    expect(response.status).toBe(200);
    expect(last().headers.authorization).toBeUndefined();
  });

  test("the service's own query parameters (access_token, api_key, code) pass; only ?token= is the gate's", async () => {
    const response = await fetch(`${app.http}/app/cb?access_token=app1&api_key=app2&code=xyz&token=${key.token}`);
    expect(response.status).toBe(200);
    expect(last().target).toBe("/base/cb?access_token=app1&api_key=app2&code=xyz");
  });

  test("spoofed identity headers are replaced by the gate's, or removed where it sets none", async () => {
    const spoofed = {
      "x-auth-token": key.token,
      "x-auth-user": "admin",
      "X-Auth-Scopes": "*",
      "x-auth-kind": "bootstrap",
      "x-auth-admin": "yes",
      "remote-user": "admin",
      "Remote-Groups": "admins",
      "x-forwarded-user": "admin",
      "x-webauth-user": "admin",
    };
    await fetch(`${app.http}/app/x`, { headers: spoofed });
    expect(last().headers).toMatchObject({ "x-auth-user": "kitchen tablet", "x-auth-scopes": "app", "x-auth-kind": "key" });
    for (const name of ["x-auth-admin", "remote-user", "remote-groups", "x-forwarded-user", "x-webauth-user"])
      expect(last().headers[name]).toBeUndefined();
    await fetch(`${app.http}/kept/x`, { headers: spoofed });
    for (const name of Object.keys(spoofed)) expect(last().headers[name.toLowerCase()]).toBeUndefined();
    expect(last().target).toBe("/kept/x");
  });

  test("X-Forwarded-For/-Proto/-Host and Forwarded are the gate's view; a client's own are not believed", async () => {
    await fetch(`${app.http}/app/x`, {
      headers: {
        "x-auth-token": key.token,
        "x-forwarded-for": "6.6.6.6",
        forwarded: "for=6.6.6.6",
        "x-real-ip": "6.6.6.6",
        "x-forwarded-proto": "https",
      },
    });
    const { headers } = last();
    const host = new URL(app.http).host;
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers["x-forwarded-proto"]).toBe("http");
    expect(headers["x-forwarded-host"]).toBe(host);
    expect(headers.forwarded).toBe(`for=127.0.0.1;proto=http;host="${host}"`);
    expect(headers["x-real-ip"]).toBeUndefined();
  });

  test("hop-by-hop headers are removed both ways; repeated Set-Cookie lines survive intact", async () => {
    const response = await fetch(`${app.http}/app/x`, {
      headers: {
        "x-auth-token": key.token,
        connection: "keep-alive, x-secret-hop",
        "x-secret-hop": "for this hop only",
        te: "trailers",
        "proxy-authorization": "Basic eA==",
      },
    });
    const { headers } = last();
    for (const name of ["x-secret-hop", "te", "proxy-authorization", "keep-alive"]) expect(headers[name]).toBeUndefined();
    // The service's answer named x-hop in its Connection header, and sent keep-alive.
    expect(response.headers.get("x-hop")).toBeNull();
    expect(response.headers.get("keep-alive")).toBeNull();
    expect(response.headers.getSetCookie()).toEqual(["app=1; Path=/; Expires=Wed, 09 Jun 2100 10:18:14 GMT", "other=2; Path=/"]);
  });

  test.each(["POST", "PUT", "PATCH", "DELETE"])("%s with a body is forwarded as sent", async (method) => {
    const response = await fetch(`${app.http}/app/created`, {
      method,
      headers: { "x-auth-token": key.token, "content-type": "text/plain" },
      body: `body of ${method}`,
    });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ method, target: "/base/created", body: `body of ${method}` });
  });

  test.each([
    ["/app/redirect?to=/base/login", "/app/login"],
    ["/app/redirect?to=/base", "/app"],
    ["/kept/redirect?to=/kept/login%3Fnext%3D1", "/kept/login?next=1"],
    ["/app/redirect?to=/elsewhere", "/app/redirect?to=/elsewhere"],
  ])("a redirect to the service's own address comes back through the gate: %s", async (path, expected) => {
    const response = await fetch(`${app.http}${path}`, { headers: { "x-auth-token": key.token }, redirect: "manual" });
    expect(response.status).toBe(302);
    const location = response.headers.get("location")!;
    if (expected.includes("elsewhere")) expect(location).toBe(`${upstream.url}/elsewhere`);
    else expect(location).toBe(expected);
  });

  test("a Referer naming the page's ?token= reaches the service without it", async () => {
    const referer = `${app.http}/app/page?tab=2&token=${key.token}#top`;
    await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": key.token, referer } });
    expect(last().headers.referer).toBe(`${app.http}/app/page?tab=2`);
  });

  test("CORS: the gate adds Origin to the service's Vary and its own names to the exposed headers, keeping the service's", async () => {
    const response = await fetch(`${app.http}/app/vary`, { headers: { "x-auth-token": key.token, origin: app.http } });
    expect(response.headers.get("vary")).toBe("Accept-Encoding, Origin");
    expect(response.headers.get("access-control-expose-headers")).toBe("X-Total-Count, WWW-Authenticate, Retry-After");
    expect(response.headers.get("access-control-allow-origin")).toBe(app.http);
  });

  test("a host route serves every path of its host, even one the console answers elsewhere", async () => {
    const response = await fetch(`${app.http}/?token=${key.token}`, { headers: { host: "cam.example" } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ target: "/" });
    expect(last().headers["x-forwarded-host"]).toBe("cam.example");
    // The gate's own paths stay the gate's on that host.
    const own = await fetch(`${app.http}/healthz`, { headers: { host: "cam.example" } });
    expect(await own.json()).toEqual({ status: "ok" });
  });

  test("the access log line names the route, the service's status and its latency, never the token", async () => {
    await fetch(`${app.http}/app/logged?token=${key.token}`);
    const line = app.lines.map((text) => JSON.parse(text) as Record<string, unknown>).findLast((entry) => entry.msg === "request");
    expect(line).toMatchObject({ path: "/app/logged?token=REDACTED", status: 200, route: "app", upstream_status: 200, principal: key.id });
    expect(typeof line?.upstream_ms).toBe("number");
  });
});

describe("refused requests never reach the service", () => {
  const cases: Array<[string, () => RequestInit & { url: string }, number, string]> = [
    ["no credential", () => ({ url: "/app/x" }), 401, "missing_token"],
    ["a wrong token", () => ({ url: "/app/x", headers: { "x-auth-token": "tg_wrong_0000000000000000000000" } }), 401, "invalid_token"],
    [
      "a key without the route's scope",
      () => ({ url: "/app/x", headers: { "x-auth-token": otherScope.token } }),
      403,
      "insufficient_scope",
    ],
    [
      "two different tokens",
      () => ({ url: `/app/x?token=${otherScope.token}`, headers: { "x-auth-token": key.token } }),
      400,
      "invalid_request",
    ],
    ["?token= twice", () => ({ url: `/app/x?token=${key.token}&token=${key.token}` }), 400, "invalid_request"],
    ["a misspelt ?TOKEN=", () => ({ url: `/app/x?TOKEN=${key.token}` }), 400, "invalid_request"],
    ["?? before token", () => ({ url: `/app/x??token=${key.token}` }), 400, "invalid_request"],
    [
      "a subprotocol token on plain HTTP",
      () => ({ url: "/app/x", headers: { "sec-websocket-protocol": `tokengate, ${encodeSubprotocolToken(key.token)}` } }),
      401,
      "missing_token",
    ],
    ["TRACE", () => ({ url: "/app/x", method: "TRACE", headers: { "x-auth-token": key.token } }), 405, "method_not_allowed"],
  ];

  test.each(cases)("%s", async (_name, build, status, code) => {
    const before = seen();
    const { url, ...init } = build();
    const response = await fetch(`${app.http}${url}`, init);
    expect(response.status).toBe(status);
    // A TRACE answer carries no body (Bun's client drops it): its status and Allow say enough.
    if (init.method === "TRACE") expect(response.headers.get("allow")).not.toContain("TRACE");
    else expect(await response.json()).toMatchObject({ code });
    if (status === 401) expect(response.headers.get("www-authenticate")).toStartWith("Bearer realm=");
    expect(seen()).toBe(before);
  });

  test("a revoked key is refused at once", async () => {
    const revoked = await insertApiKey(app.store, { name: "old phone", scopes: ["app"] });
    await app.app.keyring.refresh();
    expect((await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": revoked.token } })).status).toBe(200);
    await app.store.revokeKey(revoked.id, Date.now());
    await app.app.keyring.refresh();
    const before = seen();
    const response = await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": revoked.token } });
    expect(response.status).toBe(401);
    expect(seen()).toBe(before);
  });

  test("a CORS preflight is answered by the gate, without the service, allowing the headers the page asks for", async () => {
    const before = seen();
    const response = await fetch(`${app.http}/app/x`, {
      method: "OPTIONS",
      headers: {
        origin: app.http,
        "access-control-request-method": "PUT",
        "access-control-request-headers": "x-grafana-org-id, x-auth-token",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-methods")).toContain("PUT");
    expect(response.headers.get("access-control-allow-headers")).toBe("x-grafana-org-id, x-auth-token");
    expect(seen()).toBe(before);
  });
});

describe("when the service fails", () => {
  test("unreachable: 502 naming the route, never its address", async () => {
    const response = await fetch(`${app.http}/gone/x`, { headers: { "x-auth-token": key.token } });
    expect(response.status).toBe(502);
    const body = (await response.json()) as { detail: string; code: string };
    expect(body.code).toBe("bad_gateway");
    expect(body.detail).toContain('"gone"');
    expect(JSON.stringify(body)).not.toContain("127.0.0.1");
    // The operator learns why from the log (once a second per route at most).
    const line = app.lines
      .map((text) => JSON.parse(text) as Record<string, unknown>)
      .findLast((entry) => entry.route === "gone" && entry.level === "warn");
    expect(line).toMatchObject({ msg: "service cannot be reached; answering 502", error: "ECONNREFUSED" });
  });

  test("unreachable, but the client is unauthenticated: the 401 comes first", async () => {
    const response = await fetch(`${app.http}/gone/x`);
    expect(response.status).toBe(401);
  });

  test("slower than the route's timeout: 504 after about the timeout", async () => {
    const started = performance.now();
    const response = await fetch(`${app.http}/tight/slow?ms=4000`, { headers: { "x-auth-token": key.token } });
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({ code: "gateway_timeout" });
    expect(performance.now() - started).toBeLessThan(3500);
  });

  test("breaking off mid-answer ends the client's connection; the gate keeps serving", async () => {
    const response = await fetch(`${app.http}/app/break`, { headers: { "x-auth-token": key.token } });
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    const next = await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": key.token } });
    expect(next.status).toBe(200);
  });

  test("a declared body past the route's limit: 413 before the service is asked", async () => {
    const before = seen();
    const response = await fetch(`${app.http}/tight/upload`, {
      method: "POST",
      headers: { "x-auth-token": key.token },
      body: "x".repeat(1001),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ code: "payload_too_large" });
    expect(seen()).toBe(before);
  });

  test("a chunked body past the route's limit: 413, the upload stopped at the limit", async () => {
    const chunks = ["x".repeat(600), "y".repeat(600)];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const response = await fetch(`${app.http}/tight/upload`, { method: "POST", headers: { "x-auth-token": key.token }, body });
    expect(response.status).toBe(413);
    expect(upstream.uploads.every((size) => size <= 1000)).toBe(true);
  });

  test("the route's timeout starts once the upload is sent: a slow upload within it is answered", async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 3) return controller.close();
        await Bun.sleep(600);
        sent += 1;
        controller.enqueue(new TextEncoder().encode("x".repeat(200)));
      },
    });
    // timeout_seconds = 1, the upload takes about 1.8 s.
    const response = await fetch(`${app.http}/tight/upload`, { method: "POST", headers: { "x-auth-token": key.token }, body });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: 600 });
  });

  test("a body within the limit is delivered whole", async () => {
    const response = await fetch(`${app.http}/tight/upload`, {
      method: "POST",
      headers: { "x-auth-token": key.token },
      body: "z".repeat(999),
    });
    expect(await response.json()).toEqual({ received: 999 });
  });

  test("the gate's own endpoints keep their 64 KiB limit when the proxy's is raised", async () => {
    const response = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `grant_type=password&password=${"x".repeat(100_000)}`,
    });
    expect(response.status).toBe(413);
  });
});

describe("with passwords on the gate (BASIC_AUTH=true)", () => {
  test("a Basic login is the gate's: never forwarded, even when the gate's token came in X-Auth-Token; no Basic challenge on proxied 401s", async () => {
    using service = startUpstream();
    const file = join(dir, "basic.toml");
    writeFileSync(file, `[[route]]\nname = "app"\nmatch = { path_prefix = "/app/" }\nupstream = "${service.url}"\nscope = "app"\n`);
    await using gate = await startTestApp({ ROUTES_FILE: file, BASIC_AUTH: "true" });
    const tablet = await insertApiKey(gate.store, { name: "tablet", scopes: ["app"] });
    await gate.app.keyring.refresh();
    const login = `Basic ${btoa("alice:gate-password")}`;
    const response = await fetch(`${gate.http}/app/x`, { headers: { "x-auth-token": tablet.token, authorization: login } });
    expect(response.status).toBe(200);
    expect(service.received.at(-1)!.headers.authorization).toBeUndefined();
    const refused = await fetch(`${gate.http}/app/x`);
    expect(refused.headers.get("www-authenticate")).not.toContain("Basic");
    const own = await fetch(`${gate.http}/secure-data`);
    expect(own.headers.get("www-authenticate")).toContain("Basic");
    trackSecret(tablet.token);
  });
});

describe("request smuggling", () => {
  const port = () => Number(new URL(app.http).port);
  const smuggled = (framing: string) =>
    `POST /app/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: ${key.token}\r\n${framing}\r\n\r\n0\r\n\r\nGET /app/admin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

  test.each([
    ["Content-Length with Transfer-Encoding: chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked"],
    ["Transfer-Encoding with Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 60"],
    ["two different Content-Lengths", "Content-Length: 5\r\nContent-Length: 60"],
    ["an obfuscated Transfer-Encoding", "Transfer-Encoding: xchunked\r\nContent-Length: 5"],
    ["Transfer-Encoding with a space before the colon", "Transfer-Encoding : chunked\r\nContent-Length: 5"],
  ])("%s: the hidden request never reaches the service", async (_name, framing) => {
    const response = await rawRequest(port(), smuggled(framing), 1500);
    expect(response.status === 400 || response.status === 200 || response.status === 413).toBe(true);
    expect(upstream.received.some((request) => request.target.includes("admin"))).toBe(false);
    // The gate still answers normally on a fresh connection.
    expect((await fetch(`${app.http}/app/x`, { headers: { "x-auth-token": key.token } })).status).toBe(200);
  });
});

test("no token reached the service or the logs", () => {
  trackSecret(key.token);
  trackSecret(otherScope.token);
  const everything = JSON.stringify(upstream.received);
  for (const token of [key.token, otherScope.token]) {
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(encodeSubprotocolToken(token).slice("tokengate.bearer.".length));
  }
  expectNoSecretsInOutput();
});
