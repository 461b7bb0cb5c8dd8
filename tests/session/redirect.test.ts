/**
 * Where a sign-in may send the browser (`rd`): only back to a host we serve. The table is what an
 * attacker would try for an open redirect; each must fall back to `/`. Then the same through the
 * real login endpoint, where the answer's Location is what a browser follows.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { safeRedirect } from "../../auth/session/redirect.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const rules = { host: "gate.lan:8000", servesHost: (host: string) => host === "grafana.lan" };

describe("safeRedirect", () => {
  test.each([
    ["/secure-data", "/secure-data"],
    ["/app/?tab=2#x", "/app/?tab=2#x"],
    ["http://gate.lan:8000/x", "http://gate.lan:8000/x"],
    ["https://grafana.lan/d/abc", "https://grafana.lan/d/abc"],
    ["", "/"],
    ["//evil.com", "/"],
    ["//evil.com/path", "/"],
    ["https://evil.com", "/"],
    ["http://evil.com/secure-data", "/"],
    ["https://gate.lan.evil.com/", "/"],
    ["https://evil.com#@gate.lan:8000", "/"],
    ["https://gate.lan:8000@evil.com/", "/"],
    ["https://user:pw@grafana.lan/", "/"],
    ["/\\evil.com", "/"],
    ["\\\\evil.com", "/"],
    ["/\\/evil.com", "/"],
    ["/%2F%2Fevil.com", "/"],
    ["/%2f/evil.com", "/"],
    ["/%5Cevil.com", "/"],
    ["%2F%2Fevil.com", "/"],
    ["javascript:alert(1)", "/"],
    ["data:text/html,hi", "/"],
    [" /x", "/"],
    ["/x\r\nSet-Cookie: a=b", "/"],
    ["/x\tevil", "/"],
    ["http:evil.com", "/"],
    ["https:/evil.com", "/"],
    ["ftp://grafana.lan/", "/"],
    ["https://grafana.lan:444/ok", "https://grafana.lan:444/ok"],
    ["/" + "a".repeat(3000), "/"],
  ])("rd=%j → %j", (rd, expected) => {
    expect(safeRedirect(rd, rules)).toBe(expected);
  });

  test.each([
    ["https://grafana.lan/d/1", "https://grafana.lan/d/1"],
    ["http://grafana.lan/d/1", "/"],
    ["http://gate.lan:8000/x", "/"],
    ["/x", "/x"],
  ])("signed in over TLS, rd=%j → %j (never down to plain HTTP)", (rd, expected) => {
    expect(safeRedirect(rd, { ...rules, secure: true })).toBe(expected);
  });
});

describe("rd through the login endpoint", () => {
  const dir = mkdtempSync(join(tmpdir(), "tokengate-rd-"));
  let app: TestApp;
  const password = "correct horse battery staple";

  beforeAll(async () => {
    const file = join(dir, "routes.toml");
    writeFileSync(
      file,
      `[[route]]\nname = "grafana"\nmatch = { host = "grafana.lan" }\nupstream = "http://127.0.0.1:9"\nscope = "grafana"\n`,
    );
    app = await startTestApp({ ROUTES_FILE: file });
    await app.store.insertUser({ username: "jo", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
  });
  afterAll(async () => {
    await app[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    ["//evil.com", "/"],
    ["https://evil.com/", "/"],
    ["/\\evil.com", "/"],
    ["http://grafana.lan/d/1", "http://grafana.lan/d/1"],
    ["/secure-data?x=1", "/secure-data?x=1"],
    ["SELF/x", "SELF/x"],
  ])("rd=%j → Location %j", async (rd, expected) => {
    const response = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ username: "jo", password, rd: rd.replace("SELF", app.http) }),
    });
    expect(response.status).toBe(303);
    trackSecret(response.headers.get("set-cookie")!.split(";")[0]!.slice(4));
    expect(response.headers.get("location")).toBe(expected.replace("SELF", app.http));
  });

  test("no secret reached any output", () => {
    expectNoSecretsInOutput();
  });
});
