/**
 * Host and Origin checks: DNS rebinding (421 before any auth work), cross-site WebSocket
 * hijacking (foreign Origin refused before the upgrade), CORS for allowed origins with an
 * unauthenticated preflight, and security headers on every response.
 */
import { describe, expect, test } from "bun:test";
import { createHostPolicy, createOriginPolicy, hostOf, parseOrigin } from "../../auth/core/origins.ts";
import { rawRequest, startTestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";

describe("hostOf / parseOrigin", () => {
  test.each<[string, string | undefined]>([
    ["Gate.LAN:8000", "gate.lan"],
    ["192.168.1.20:8000", "192.168.1.20"],
    ["[fe80::1]:8000", "[fe80::1]"],
    ["localhost", "localhost"],
    ["evil.example.", "evil.example"],
    ["a b", undefined],
    ["host:99999999", undefined],
    ["[zz]", undefined],
    ["", undefined],
  ])("hostOf(%p)", (header, host) => {
    expect(hostOf(header)).toBe(host);
  });

  test.each<[string, string | undefined]>([
    ["https://dash.lan:8443", "https://dash.lan:8443"],
    ["http://dash.lan/", "http://dash.lan"],
    ["https://dash.lan/app", undefined],
    ["ftp://dash.lan", undefined],
    ["null", undefined],
    ["*", undefined],
  ])("parseOrigin(%p)", (text, origin) => {
    expect(parseOrigin(text)).toBe(origin);
  });
});

describe("host policy defaults", () => {
  const policy = createHostPolicy({ machineHostname: "pi-gate", patterns: ["gate.example.org", "*.home.arpa"] });
  test.each<[string | null, boolean]>([
    ["192.168.1.20:8000", true],
    ["127.0.0.1", true],
    ["[::1]:8000", true],
    ["localhost:8000", true],
    ["pi-gate:8000", true],
    ["pi-gate.local", true],
    ["printer.local", true],
    ["gate.example.org", true],
    ["nas.home.arpa", true],
    ["evil.example", false],
    ["rebind.attacker.test:8000", false],
    ["home.arpa.evil.test", false],
    ["a b", false],
    [null, true],
  ])("%p → %p", (header, allowed) => {
    expect(policy.allows(header)).toBe(allowed);
  });

  test("origin policy: non-browser and same-origin allowed, listed allowed, others refused", () => {
    const origins = createOriginPolicy(["https://dash.lan:8443"]);
    expect(origins.allows(null, "gate.lan:8000")).toBe(true);
    expect(origins.allows("http://gate.lan:8000", "gate.lan:8000")).toBe(true);
    expect(origins.allows("https://dash.lan:8443", "gate.lan:8000")).toBe(true);
    expect(origins.allows("https://evil.test", "gate.lan:8000")).toBe(false);
    expect(origins.allows("null", "gate.lan:8000")).toBe(false);
    expect(origins.allows("http://gate.lan:8001", "gate.lan:8000")).toBe(false);
  });
});

describe("on the wire", () => {
  const upgrade = (target: string, extra: string) =>
    `GET ${target} HTTP/1.1\r\n${extra}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

  test("a foreign Host gets 421 before any auth work, even with a valid token", async () => {
    await using app = await startTestApp();
    const response = await rawRequest(
      app.app.listener.server.port!,
      `GET /secure-data HTTP/1.1\r\nHost: rebind.attacker.test:8000\r\nX-Auth-Token: ${app.token}\r\nConnection: close\r\n\r\n`,
    );
    expect(response.status).toBe(421);
    expect(JSON.parse(response.body)).toMatchObject({ code: "misdirected_request" });
    expect(app.lines.join("")).not.toContain('"principal":"bootstrap"');
  });

  test("ALLOWED_HOSTS extends the list", async () => {
    await using app = await startTestApp({ ALLOWED_HOSTS: "gate.example.org" });
    const response = await rawRequest(
      app.app.listener.server.port!,
      `GET /healthz HTTP/1.1\r\nHost: gate.example.org\r\nConnection: close\r\n\r\n`,
    );
    expect(response.status).toBe(200);
  });

  test.each<[string, string, number]>([
    ["foreign Origin", "Origin: https://evil.test\r\n", 403],
    ["sandboxed page (Origin: null)", "Origin: null\r\n", 403],
    ["same-origin page", "Origin: http://127.0.0.1:PORT\r\n", 101],
    ["no Origin (not a browser)", "", 101],
  ])("WebSocket upgrade with %s → %d", async (_name, originLine, status) => {
    await using app = await startTestApp();
    const port = app.app.listener.server.port!;
    const response = await rawRequest(
      port,
      upgrade(`/ws?token=${app.token}`, `Host: 127.0.0.1:${port}\r\n${originLine.replace("PORT", String(port))}`),
    );
    expect(response.status).toBe(status);
    if (status === 403) expect(JSON.parse(response.body)).toMatchObject({ code: "forbidden_origin" });
  });

  test("CORS: an allowed origin gets a preflight without auth, then readable responses with challenges exposed", async () => {
    await using app = await startTestApp({ ALLOWED_ORIGINS: "https://dash.lan:8443" });
    const preflight = await fetch(`${app.http}/secure-data`, {
      method: "OPTIONS",
      headers: {
        Origin: "https://dash.lan:8443",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://dash.lan:8443");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("Authorization");
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET, HEAD");

    const refused = await fetch(`${app.http}/secure-data`, { headers: { Origin: "https://dash.lan:8443" } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("https://dash.lan:8443");
    expect(refused.headers.get("access-control-expose-headers")).toContain("WWW-Authenticate");
    const ok = await fetch(`${app.http}/secure-data`, {
      headers: { Origin: "https://dash.lan:8443", Authorization: `Bearer ${app.token}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("vary")).toBe("Origin");
  });

  test("CORS: a foreign origin's preflight and requests are refused with 403", async () => {
    await using app = await startTestApp({ ALLOWED_ORIGINS: "https://dash.lan:8443" });
    const preflight = await fetch(`${app.http}/secure-data`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.test", "Access-Control-Request-Method": "GET" },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    const form = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { Origin: "https://evil.test", "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=password&username=a&password=b",
    });
    expect(form.status).toBe(403);
  });

  test.each(["/secure-data", "/healthz", "/nope", "/.well-known/jwks.json"])("security headers on %s", async (path) => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}${path}`);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
  });
});

test("no secret reached any server output", () => {
  expectNoSecretsInOutput();
});
