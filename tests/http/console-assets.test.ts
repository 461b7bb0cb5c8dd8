/**
 * The console page and its assets over real sockets: served through the gate's route table, so
 * the Host allow-list applies to them, and every answer carries the page's security headers.
 * (tests/browser.test.ts checks in Chromium that the CSP holds and does not break the page.)
 */
import { describe, expect, test } from "bun:test";
import { CONSOLE_CSP } from "../../auth/http/console-assets.ts";
import { rawRequest, startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";

/** The same-origin files the page loads (`src` and `href` attributes), e.g. `/index.js`. */
function assetPathsOf(html: string): string[] {
  const paths = [...html.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((match) => match[1]!).filter((value) => !value.startsWith("data:"));
  return paths.map((value) => new URL(value, "http://console.test/").pathname);
}

async function consolePaths(app: TestApp): Promise<string[]> {
  const paths = assetPathsOf(await (await fetch(`${app.http}/`)).text());
  expect(paths.length).toBeGreaterThanOrEqual(2);
  return ["/", ...paths];
}

const PAGE_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

function expectPageHeaders(headers: Headers): void {
  for (const [name, value] of Object.entries(PAGE_HEADERS)) expect(`${name}: ${headers.get(name)}`).toBe(`${name}: ${value}`);
}

describe("the console through the gate", () => {
  test("the CSP allows only the page's own files and forbids framing", () => {
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ]) {
      expect(CONSOLE_CSP.split("; ")).toContain(directive);
    }
  });

  test("the page and every file it loads: 200, the security headers, a content type, cache rules", async () => {
    await using app = await startTestApp();
    const types = new Map<string, string>();
    for (const path of await consolePaths(app)) {
      const response = await fetch(`${app.http}${path}`);
      expect(`${path} ${response.status}`).toBe(`${path} 200`);
      expectPageHeaders(response.headers);
      expect(response.headers.get("etag")).toMatch(/^"[^"]+"$/);
      expect(response.headers.get("cache-control")).toMatch(/^(no-cache|public, max-age=31536000, immutable)$/);
      types.set(path, response.headers.get("content-type") ?? "");
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    expect(types.get("/")).toStartWith("text/html");
    expect([...types.values()].some((type) => type.startsWith("text/javascript"))).toBe(true);
    expect([...types.values()].some((type) => type.startsWith("text/css"))).toBe(true);
  });

  test("a revalidation with the ETag gets 304, with the headers and no body", async () => {
    await using app = await startTestApp();
    for (const path of await consolePaths(app)) {
      const etag = (await fetch(`${app.http}${path}`)).headers.get("etag")!;
      const again = await fetch(`${app.http}${path}`, { headers: { "if-none-match": etag } });
      expect(again.status).toBe(304);
      expectPageHeaders(again.headers);
      expect(await again.text()).toBe("");
    }
  });

  test("Host: evil.com (DNS rebinding) gets 421 for the page and for each asset, never the page", async () => {
    await using app = await startTestApp();
    const port = app.app.listener.server.port!;
    for (const path of await consolePaths(app)) {
      const answer = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: evil.com\r\nConnection: close\r\n\r\n`);
      expect(`${path} ${answer.status}`).toBe(`${path} 421`);
      expect(JSON.parse(answer.body)).toMatchObject({ code: "misdirected_request" });
      expect(answer.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(answer.headers.get("x-frame-options")).toBe("DENY");
      // An allowed name still gets the page.
      const allowed = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: testbox.local:${port}\r\nConnection: close\r\n\r\n`);
      expect(`${path} ${allowed.status}`).toBe(`${path} 200`);
    }
  });

  test("a form posted to the page before its script ran: 303 back to the page, nothing echoed", async () => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "token=not-a-real-token-but-still-not-echoed",
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/");
    expectPageHeaders(response.headers);
    expect(await response.text()).toBe("");
    // Assets take no body at all.
    const [, asset] = await consolePaths(app);
    expect((await fetch(`${app.http}${asset}`, { method: "POST", body: "x" })).status).toBe(405);
  });

  test("a page on a foreign origin cannot post to the console route", async () => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/`, {
      method: "POST",
      redirect: "manual",
      headers: { origin: "http://evil.example" },
      body: "",
    });
    expect(response.status).toBe(403);
  });

  test("HEAD: the page's headers, no body", async () => {
    await using app = await startTestApp();
    const response = await fetch(`${app.http}/`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expectPageHeaders(response.headers);
    expect(await response.text()).toBe("");
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
