/**
 * Browsers and scripts in front of the user's services, decided per request: a request with a
 * token is judged as a token and never redirected; a browser navigation without one is sent to the
 * sign-in page (302 with `rd`); anything else gets its 401 JSON. The session cookie opens the
 * service and never reaches it. Through the built-in proxy, `/auth/verify` asked directly, and
 * real nginx (`?login=header` + `error_page 401`) and Caddy (`forward_auth` passes the 302 on).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import {
  browserCaddyConfig,
  browserNginxConfig,
  hasProxy,
  requireProxyBinaries,
  startReverseProxy,
  type ProxyKind,
  type RunningProxy,
} from "../support/reverse-proxies.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { startUpstream } from "../support/upstream.ts";

requireProxyBinaries();

const PASSWORD = "correct horse battery staple";
const dir = mkdtempSync(join(tmpdir(), "tokengate-navigation-"));
const upstream = startUpstream();
let app: TestApp;
let key: { id: string; token: string };

const NAVIGATE = { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "sec-fetch-mode": "navigate" };
const FETCH = { accept: "application/json", "sec-fetch-mode": "cors" };

beforeAll(async () => {
  const file = join(dir, "routes.toml");
  writeFileSync(
    file,
    `[[route]]
name = "app"
match = { path_prefix = "/app/" }
upstream = "${upstream.url}"
scope = "data:read"
websocket = true
`,
  );
  app = await startTestApp({ ROUTES_FILE: file, TRUSTED_PROXIES: "127.0.0.1" });
  await app.store.insertUser({ username: "jo", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
  key = await insertApiKey(app.store, { name: "script", scopes: ["data:read"] });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** Signs in at `base` (the gate itself, or a proxy that routes /auth/ to it) and returns the cookie pair. */
async function signIn(base: string): Promise<string> {
  const response = await fetch(`${base}/auth/login`, {
    method: "POST",
    redirect: "manual",
    headers: { origin: base },
    body: new URLSearchParams({ username: "jo", password: PASSWORD, rd: "/app/home" }),
  });
  expect(response.status).toBe(303);
  const pair = response.headers.get("set-cookie")!.split(";")[0]!;
  trackSecret(pair.slice(pair.indexOf("=") + 1));
  return pair;
}

/** What the service received since `before`, as one string to search. */
const receivedSince = (before: number) => JSON.stringify(upstream.received.slice(before));

describe("the built-in proxy", () => {
  test.each([
    ["a navigation (Sec-Fetch-Mode: navigate)", NAVIGATE, 302],
    ["an old browser's navigation (Accept prefers text/html)", { accept: "text/html,*/*" }, 302],
    ["a fetch() from a page", FETCH, 401],
    ["curl (Accept: */*)", { accept: "*/*" }, 401],
    ["no Accept at all", {}, 401],
    ["Accept preferring JSON over HTML", { accept: "application/json, text/html" }, 401],
  ])("%s without a credential → %d, and the service is not asked", async (_name, headers, status) => {
    const before = upstream.received.length;
    const response = await fetch(`${app.http}/app/d/home?tab=2`, { headers, redirect: "manual" });
    expect(response.status).toBe(status);
    if (status === 302) expect(response.headers.get("location")).toBe("/auth/login?rd=%2Fapp%2Fd%2Fhome%3Ftab%3D2");
    else expect(response.headers.get("www-authenticate")).toStartWith("Bearer");
    expect(upstream.received.length).toBe(before);
  });

  test("a POST navigation (a form) is never redirected: it would lose its body", async () => {
    const response = await fetch(`${app.http}/app/form`, { method: "POST", headers: NAVIGATE, redirect: "manual", body: "a=1" });
    expect(response.status).toBe(401);
  });

  test("a navigation that carries a token is judged as a token: a wrong one is 401, never a redirect", async () => {
    const response = await fetch(`${app.http}/app/d/home`, {
      headers: { ...NAVIGATE, "x-auth-token": "tg_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
      redirect: "manual",
    });
    expect(response.status).toBe(401);
  });

  test("with the cookie the page loads; the service gets the page's other cookies, never the session", async () => {
    const cookie = await signIn(app.http);
    const before = upstream.received.length;
    const response = await fetch(`${app.http}/app/d/home`, { headers: { ...NAVIGATE, cookie: `theme=dark; ${cookie}; lang=en` } });
    expect(response.status).toBe(200);
    const got = upstream.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.headers.cookie).toBe("theme=dark; lang=en");
    expect(receivedSince(before)).not.toContain(cookie.slice(4));
  });

  test("only the session cookie: the service gets no Cookie header at all", async () => {
    const cookie = await signIn(app.http);
    const before = upstream.received.length;
    expect((await fetch(`${app.http}/app/x`, { headers: { cookie } })).status).toBe(200);
    expect(upstream.received[before]!.headers.cookie).toBeUndefined();
  });

  test("a service cannot set or clear the gate's sign-in cookie (fixation through a service); its own cookies pass", async () => {
    const cookie = await signIn(app.http);
    const response = await fetch(`${app.http}/app/plant-cookie`, { headers: { cookie } });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual(["app=1; Path=/"]);
  });

  test("an ended session's cookie on a navigation: back to the sign-in page, and the cookie is cleared", async () => {
    const cookie = await signIn(app.http);
    await fetch(`${app.http}/auth/logout`, { method: "POST", headers: { cookie, origin: app.http } });
    const response = await fetch(`${app.http}/app/d/home`, { headers: { ...NAVIGATE, cookie }, redirect: "manual" });
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/auth/login?rd=%2Fapp%2Fd%2Fhome");
    expect(response.headers.get("set-cookie")).toBe("tgs=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    const api = await fetch(`${app.http}/app/d/home`, { headers: { ...FETCH, cookie }, redirect: "manual" });
    expect(api.status).toBe(401);
  });

  test.each([
    ["without Origin", {}, 403],
    ["from a foreign page", { origin: "http://evil.example" }, 403],
    ["from its own page", { origin: "SELF" }, 200],
  ])("a cookie POST to the service %s → %d", async (_name, extra, status) => {
    const cookie = await signIn(app.http);
    const before = upstream.received.length;
    const headers: Record<string, string> = { cookie };
    for (const [name, value] of Object.entries(extra)) headers[name] = value === "SELF" ? app.http : value;
    const response = await fetch(`${app.http}/app/save`, { method: "POST", headers, body: "x=1" });
    expect(response.status).toBe(status);
    expect(upstream.received.length).toBe(before + (status === 200 ? 1 : 0));
  });

  test("a proxied WebSocket opened with the cookie is closed 4403 when the session is revoked", async () => {
    const cookie = await signIn(app.http);
    const before = upstream.received.length;
    const probe = new WsProbe(`${app.ws}/app/live`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    expect(receivedSince(before)).not.toContain(cookie.slice(4));
    const who = (await (await fetch(`${app.http}/auth/whoami`, { headers: { cookie } })).json()) as { id: string };
    expect(who.id).toBe("user:jo");
    const sessions = await app.store.listSessions(Date.now());
    const id = sessions.find((session) => cookie.includes(session.id))!.id;
    const started = performance.now();
    await app.store.revokeSession(id, Date.now());
    expect((await probe.closed).code).toBe(4403);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  test("a proxied WebSocket with the cookie and no Origin is refused before the service is contacted", async () => {
    const cookie = await signIn(app.http);
    const before = upstream.received.length;
    const probe = new WsProbe(`${app.ws}/app/live`, { headers: new Headers({ cookie }) });
    expect(await probe.opened).toBe(false);
    expect(upstream.received.length).toBe(before);
  });
});

describe("/auth/verify asked directly (as a trusted proxy)", () => {
  const verify = (headers: Record<string, string>, query = "") =>
    fetch(`${app.http}/auth/verify${query}`, {
      redirect: "manual",
      headers: { "x-forwarded-host": "127.0.0.1", "x-forwarded-uri": "/app/d/home?tab=2", ...headers },
    });

  test("a navigation without a credential → 302 to the sign-in page on the same host", async () => {
    const response = await verify(NAVIGATE);
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/auth/login?rd=%2Fapp%2Fd%2Fhome%3Ftab%3D2");
  });

  test("?login=header (nginx): 401 with the sign-in address in X-Tokengate-Login", async () => {
    const response = await verify(NAVIGATE, "?login=header");
    expect(response.status).toBe(401);
    expect(response.headers.get("x-tokengate-login")).toBe("/auth/login?rd=%2Fapp%2Fd%2Fhome%3Ftab%3D2");
  });

  test("an API call without a credential → 401 with the challenge and no login address", async () => {
    const response = await verify(FETCH, "?login=header");
    expect(response.status).toBe(401);
    expect(response.headers.get("x-tokengate-login")).toBeNull();
  });

  test("with the cookie → 200 with the identity, and X-Tokengate-Cookie without the session", async () => {
    const cookie = await signIn(app.http);
    const response = await verify({ ...NAVIGATE, cookie: `a=1; ${cookie}` });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-auth-user")).toBe("jo");
    expect(response.headers.get("x-tokengate-cookie")).toBe("a=1");
  });

  test("with a token, X-Tokengate-Cookie is the browser's Cookie unchanged (an empty one when there is none)", async () => {
    const withCookies = await verify({ "x-auth-token": key.token, cookie: "a=1; b=2" });
    expect(withCookies.headers.get("x-tokengate-cookie")).toBe("a=1; b=2");
    const without = await verify({ "x-auth-token": key.token });
    expect(without.headers.get("x-tokengate-cookie")).toBe("");
  });

  test.each([
    ["POST without Origin", { "x-forwarded-method": "POST" }, 403],
    ["POST from its own page", { "x-forwarded-method": "POST", origin: "http://127.0.0.1" }, 200],
    ["GET without Origin", { "x-forwarded-method": "GET" }, 200],
  ])("CSRF is judged on the original request: %s → %d", async (_name, extra, status) => {
    const cookie = await signIn(app.http);
    const response = await verify({ cookie, ...extra });
    expect(response.status).toBe(status);
  });
});

for (const kind of ["nginx", "caddy"] as const satisfies readonly ProxyKind[]) {
  describe.skipIf(!hasProxy(kind))(`behind real ${kind}`, () => {
    let proxy: RunningProxy;
    beforeAll(async () => {
      const gatePort = app.app.listener.server.port!;
      proxy = await startReverseProxy(kind, dir, (work, port) =>
        kind === "nginx" ? browserNginxConfig(work, port, gatePort, upstream.port) : browserCaddyConfig(port, gatePort, upstream.port),
      );
    });
    afterAll(() => proxy.stop());

    test("a navigation without a credential is sent to the sign-in page, which the proxy serves from the gate", async () => {
      const before = upstream.received.length;
      const response = await fetch(`${proxy.url}/app/d/home?tab=2`, { headers: NAVIGATE, redirect: "manual" });
      expect(response.status).toBe(302);
      const location = new URL(response.headers.get("location")!, proxy.url);
      expect(`${location.pathname}${location.search}`).toBe("/auth/login?rd=%2Fapp%2Fd%2Fhome%3Ftab%3D2");
      const page = await fetch(location);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<title>");
      expect(upstream.received.length).toBe(before);
    });

    test("an API call without a credential gets 401, never a redirect", async () => {
      const response = await fetch(`${proxy.url}/app/d/home`, { headers: FETCH, redirect: "manual" });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toStartWith("Bearer");
    });

    test("sign in through the proxy, then the page loads with the cookie, which the service never sees", async () => {
      const cookie = await signIn(proxy.url);
      const before = upstream.received.length;
      const response = await fetch(`${proxy.url}/app/d/home`, { headers: { ...NAVIGATE, cookie: `theme=dark; ${cookie}` } });
      expect(response.status).toBe(200);
      const got = upstream.received.slice(before);
      expect(got).toHaveLength(1);
      expect(got[0]!.headers["x-auth-user"]).toBe("jo");
      expect(got[0]!.headers.cookie).toBe("theme=dark");
      expect(receivedSince(before)).not.toContain(cookie.slice(4));
    });

    test("a token still works as before, and the page's own cookies reach the service", async () => {
      const before = upstream.received.length;
      const response = await fetch(`${proxy.url}/app/api`, { headers: { "x-auth-token": key.token, cookie: "theme=dark" } });
      expect(response.status).toBe(200);
      expect(upstream.received[before]!.headers.cookie).toBe("theme=dark");
    });
  });
}

test("no secret reached any output or the service", () => {
  expectNoSecretsInOutput();
  const everything = JSON.stringify(upstream.received);
  expect(everything).not.toContain("tgs_");
  expect(everything).not.toContain(key.token);
});
