/**
 * Attacks on browser sessions, over real sockets against the whole app (startApp) with a routes
 * file and a recording service behind it: login CSRF; fixation through cookie syntax, the
 * transport's cookie name and a service's Set-Cookie; CSRF bypasses (Origin and Sec-Fetch-Site
 * variants, method overrides, preflights, WebSocket upgrades, forward auth as a trusted proxy, an
 * untrusted peer, real nginx and real Caddy pass it on); open redirects in `rd`; leaks of the
 * session token; reuse after sign-out, revocation, disabling and key revocation; idle and absolute
 * expiry; guessing; cross-user confusion; what may open a session; passkey ceremonies; malformed
 * input. Every case is written as the gate should behave.
 */
import { SoftAuthenticator } from "../support/soft-authenticator.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PublicKeyCredentialRequestOptionsJSON } from "@simplewebauthn/server";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { parseSessionToken } from "../../auth/secrets/sessions.ts";
import { cliWithInput } from "../support/cli.ts";
import { rawRequest, startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
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

const PASSWORD = trackSecret("correct horse battery staple");
const EVIL = "http://evil.example";
const NAVIGATE = { accept: "text/html,application/xhtml+xml,*/*;q=0.8", "sec-fetch-mode": "navigate" };
const FETCH = { accept: "application/json", "sec-fetch-mode": "cors" };
const JSON_ACCEPT = { accept: "application/json" };
/** Well-formed, never issued. */
const FORGED_SESSION = "tgs_00000000000000aa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

const dir = mkdtempSync(join(tmpdir(), "tokengate-attacks-"));
const upstream = startUpstream();

/** A service that answers with the Set-Cookie headers its query names (`?c=…`, repeated). */
const cookieService = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(request) {
    const headers = new Headers({ "content-type": "text/plain" });
    for (const value of new URL(request.url).searchParams.getAll("c")) headers.append("set-cookie", value);
    return new Response("cookies", { headers });
  },
});

let app: TestApp;
let base: string;
let port: number;
let viewerKey: { id: string; token: string };
let attackerKey: { id: string; token: string };

beforeAll(async () => {
  const routes = join(dir, "routes.toml");
  writeFileSync(
    routes,
    `[[route]]
name = "app"
match = { path_prefix = "/app/" }
upstream = "${upstream.url}"
scope = "data:read"
websocket = true

[[route]]
name = "cookies"
match = { path_prefix = "/cookies/" }
upstream = "http://127.0.0.1:${cookieService.port}"
scope = "data:read"

[[route]]
name = "cam"
match = { host = "cam.local" }
upstream = "${upstream.url}"
scope = "data:read"
`,
  );
  app = await startTestApp({ ROUTES_FILE: routes, TRUSTED_PROXIES: "127.0.0.1", WEBAUTHN_RP_ID: "localhost" });
  base = app.http;
  port = Number(new URL(base).port);
  const passwordHash = await hashPassword(PASSWORD);
  for (const [username, roles] of [
    ["jo", ["viewer"]],
    ["ann", ["admin"]],
    ["pat", ["viewer"]],
    ["lee", ["viewer"]],
    ["max", ["viewer"]],
    ["pkuser", ["viewer"]],
    ["pkother", ["viewer"]],
  ] as const) {
    await app.store.insertUser({ username, passwordHash, roles, createdAt: Date.now() });
  }
  viewerKey = await insertApiKey(app.store, { name: "jo", scopes: ["data:read", "ws:connect"] });
  attackerKey = await insertApiKey(app.store, { name: "attacker", scopes: ["data:read", "ws:connect"] });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  void cookieService.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

interface Session {
  /** `tgs=…` (or `__Host-tgs=…`) as a browser sends it back. */
  readonly cookie: string;
  readonly token: string;
  readonly id: string;
  readonly response: Response;
}

/** The session out of a sign-in's Set-Cookie, registered with the leak scan before anything can print it. */
function sessionOf(response: Response): Session {
  const header = response.headers.get("set-cookie");
  if (header === null) throw new Error(`no Set-Cookie (status ${response.status})`);
  const cookie = header.split(";")[0]!;
  const token = trackSecret(cookie.slice(cookie.indexOf("=") + 1));
  return { cookie, token, id: parseSessionToken(token)?.id ?? "", response };
}

async function signIn(fields: Record<string, string>, headers: Record<string, string> = {}, at = base): Promise<Session> {
  const response = await fetch(`${at}/auth/login`, { method: "POST", redirect: "manual", headers, body: new URLSearchParams(fields) });
  return sessionOf(response);
}

const asUser = (username: string) => ({ username, password: PASSWORD });
const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers, redirect: "manual" });
const codeOf = async (response: Response) => ((await response.json()) as { code?: string }).code;
const whoami = (cookie: string, headers: Record<string, string> = {}) => get("/auth/whoami", { cookie, ...headers });

/** `SELF` is the gate's own page, `OTHER_PORT` another port of the same host. */
function resolveHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers))
    out[name] = value === "SELF" ? base : value === "OTHER_PORT" ? `http://127.0.0.1:${port + 1}` : value;
  return out;
}

/** A client somewhere on the LAN, as the trusted proxy (the test's loopback peer) says: counted by the guard. */
const lanClient = (n: number) => ({ "x-forwarded-for": `192.0.2.${n}` });

const upstreamSaw = () => JSON.stringify(upstream.received);

describe("login CSRF: another page cannot sign the victim's browser in as the attacker", () => {
  test.each([
    ["a foreign page", { origin: EVIL }],
    ["an opaque origin (sandboxed frame, data: URL, redirect chain)", { origin: "null" }],
    ["another port of the same host (same site, other origin)", { origin: "OTHER_PORT" }],
    ["a sibling host the gate also serves", { origin: "http://cam.local" }],
    ["the same host on the default port", { origin: "http://127.0.0.1" }],
    ["a foreign page that also says Sec-Fetch-Site: same-origin", { origin: EVIL, "sec-fetch-site": "same-origin" }],
    ["a foreign page with an uppercase, trailing-dot spelling", { origin: "HTTP://EVIL.EXAMPLE." }],
  ])("%s → 403 forbidden_origin, no cookie, no session", async (_name, headers) => {
    const before = (await app.store.listSessions(Date.now())).length;
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      redirect: "manual",
      headers: resolveHeaders(headers),
      body: new URLSearchParams({ api_key: attackerKey.token, rd: "/secure-data" }),
    });
    expect(response.status).toBe(403);
    expect(await codeOf(response)).toBe("forbidden_origin");
    expect(response.headers.get("set-cookie")).toBeNull();
    expect((await app.store.listSessions(Date.now())).length).toBe(before);
  });

  test("a text/plain form (the other enctype a page may post without asking) opens nothing", async () => {
    const before = (await app.store.listSessions(Date.now())).length;
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "text/plain" },
      body: `api_key=${attackerKey.token}`,
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/auth/login?rd=%2F&error=invalid_request");
    expect(response.headers.get("set-cookie")).toBeNull();
    expect((await app.store.listSessions(Date.now())).length).toBe(before);
  });

  test("GET /auth/login never signs in, even with credentials in the query", async () => {
    const response = await get(`/auth/login?api_key=${attackerKey.token}`);
    expect(response.status).toBe(400);
    expect(response.headers.get("set-cookie")).toBeNull();
  });
});

describe("CSRF: a cookie-authenticated change of state needs the gate's own page", () => {
  let victim: Session;
  const refused = { count: 0 };
  beforeAll(async () => {
    victim = await signIn(asUser("jo"));
  });

  const targets = [
    ["POST /auth/ws-ticket", "POST", "/auth/ws-ticket"],
    ["POST /auth/passkeys/register/options", "POST", "/auth/passkeys/register/options"],
    ["POST /auth/logout everywhere=1", "POST", "/auth/logout"],
    ["POST to a service", "POST", "/app/save"],
    ["PUT to a service", "PUT", "/app/item"],
    ["PATCH to a service", "PATCH", "/app/item"],
    ["DELETE to a service", "DELETE", "/app/item"],
  ] as const;
  const variants: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["no Origin, no Sec-Fetch-Site", {}],
    ["Origin: null", { origin: "null" }],
    ["a foreign Origin", { origin: EVIL }],
    ["another port of the same host", { origin: "OTHER_PORT" }],
    ["a sibling host", { origin: "http://cam.local" }],
    ["a foreign Origin + Sec-Fetch-Site: same-origin", { origin: EVIL, "sec-fetch-site": "same-origin" }],
    ["Sec-Fetch-Site: same-site (a sibling's page)", { "sec-fetch-site": "same-site" }],
    ["Sec-Fetch-Site: cross-site", { "sec-fetch-site": "cross-site" }],
    ["Sec-Fetch-Site: none", { "sec-fetch-site": "none" }],
    ["a method override to GET", { "x-http-method-override": "GET", "x-method-override": "GET" }],
    ["X-Forwarded-Method: GET from the (trusted) peer", { "x-forwarded-method": "GET", "x-original-method": "GET" }],
  ];
  const cases = targets.flatMap(([target, method, path]) =>
    variants.map(([variant, headers]) => [`${target} with ${variant}`, method, path, headers] as const),
  );

  test.each(cases)("%s → 403 forbidden_origin; nothing runs", async (_name, method, path, headers) => {
    const before = upstream.received.length;
    const response = await fetch(`${base}${path}`, {
      method,
      redirect: "manual",
      headers: { ...resolveHeaders(headers), cookie: victim.cookie, "content-type": "application/x-www-form-urlencoded" },
      body: "everywhere=1",
    });
    expect(response.status).toBe(403);
    expect(await codeOf(response)).toBe("forbidden_origin");
    expect(response.headers.get("set-cookie")).toBeNull();
    expect(upstream.received.length).toBe(before);
    refused.count += 1;
  });

  test("after all of that the victim's session is still alive (no forged sign-out), and every refusal (but sign-out's) was audited", async () => {
    expect(refused.count).toBe(cases.length);
    expect((await whoami(victim.cookie)).status).toBe(200);
    // Each refusal of a cookie without an Origin was audited as a cross-site use of the cookie.
    const audited = targets.filter(([, , path]) => path !== "/auth/logout").length;
    const withoutOrigin = variants.filter(([, headers]) => !("origin" in headers)).length * audited;
    const refusals = app.audit.filter((line) => line.includes('"reason":"forbidden_origin"') && line.includes("sign-in cookie"));
    expect(refusals.length).toBeGreaterThanOrEqual(withoutOrigin);
  });

  test("a cookie request from a foreign Origin is refused by the Origin screen before the cookie is read (README), no ticket", async () => {
    const before = app.audit.length;
    const response = await fetch(`${base}/auth/ws-ticket`, { method: "POST", headers: { cookie: victim.cookie, origin: EVIL } });
    expect(response.status).toBe(403);
    const body = (await response.json()) as { code: string; ticket?: string };
    expect(body.code).toBe("forbidden_origin");
    expect(body.ticket).toBeUndefined();
    expect(app.audit.slice(before).join("")).not.toContain(victim.token);
  });

  test("a refused cookie sign-out (CSRF) is audited like any other cookie refusal", async () => {
    const before = app.audit.length;
    const response = await fetch(`${base}/auth/logout`, {
      method: "POST",
      headers: { cookie: victim.cookie, "sec-fetch-site": "cross-site" },
    });
    expect(response.status).toBe(403);
    expect(app.audit.slice(before).filter((line) => line.includes('"reason":"forbidden_origin"'))).toHaveLength(1);
  });

  test("the gate's own page may (sanity): ws-ticket and a POST to a service with Origin or Sec-Fetch-Site: same-origin", async () => {
    const ticket = await fetch(`${base}/auth/ws-ticket`, { method: "POST", headers: { cookie: victim.cookie, origin: base } });
    expect(ticket.status).toBe(200);
    trackSecret(((await ticket.json()) as { ticket: string }).ticket);
    const service = await fetch(`${base}/app/save`, {
      method: "POST",
      headers: { cookie: victim.cookie, "sec-fetch-site": "same-origin" },
      body: "x=1",
    });
    expect(service.status).toBe(200);
  });

  test("a preflight from a foreign page (asking for a method-override header) is refused and never reaches the service", async () => {
    const before = upstream.received.length;
    const response = await fetch(`${base}/app/item`, {
      method: "OPTIONS",
      headers: { origin: EVIL, "access-control-request-method": "GET", "access-control-request-headers": "x-http-method-override" },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(upstream.received.length).toBe(before);
  });

  test.each([
    ["GET with a method override", "GET", { "x-http-method-override": "DELETE" }],
    ["OPTIONS (not a preflight)", "OPTIONS", {}],
    ["HEAD", "HEAD", {}],
  ])("a foreign page's cookie %s to a service → 403, the service is not asked", async (_name, method, headers) => {
    const before = upstream.received.length;
    const response = await fetch(`${base}/app/item`, { method, headers: { ...headers, origin: EVIL, cookie: victim.cookie } });
    expect(response.status).toBe(403);
    expect(upstream.received.length).toBe(before);
  });

  test("TRACE (which would echo the cookie back) is refused before the service", async () => {
    const before = upstream.received.length;
    const response = await rawRequest(port, `TRACE /app/item HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${victim.cookie}\r\n\r\n`);
    expect(response.status).toBe(405);
    expect(response.raw).not.toContain(victim.token);
    expect(upstream.received.length).toBe(before);
  });
});

describe("cross-site WebSockets (CSWSH) with the cookie", () => {
  let victim: Session;
  beforeAll(async () => {
    victim = await signIn(asUser("jo"));
  });

  const variants: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["no Origin", {}],
    ["Origin: null", { origin: "null" }],
    ["a foreign Origin", { origin: EVIL }],
    ["another port of the same host", { origin: "OTHER_PORT" }],
    ["a foreign Origin + Sec-Fetch-Site: same-origin", { origin: EVIL, "sec-fetch-site": "same-origin" }],
    ["Sec-Fetch-Site: same-site", { "sec-fetch-site": "same-site" }],
  ];
  const cases = ["/ws", "/app/live"].flatMap((path) => variants.map(([name, headers]) => [`${path} with ${name}`, path, headers] as const));

  test.each(cases)("%s → never opened, the service never asked", async (_name, path, headers) => {
    const before = upstream.received.length;
    const probe = new WsProbe(`${app.ws}${path}`, { headers: new Headers({ ...resolveHeaders(headers), cookie: victim.cookie }) });
    expect(await probe.opened).toBe(false);
    expect(upstream.received.length).toBe(before);
  });

  test("the gate's own page opens both (sanity), and the service's handshake carries no session", async () => {
    const before = upstream.received.length;
    for (const path of ["/ws", "/app/live"]) {
      const probe = new WsProbe(`${app.ws}${path}`, { headers: new Headers({ origin: base, cookie: `theme=dark; ${victim.cookie}` }) });
      expect(await probe.opened).toBe(true);
      probe.socket.close();
    }
    const handshake = upstream.received.slice(before).find((entry) => entry.websocket);
    expect(handshake?.headers.cookie).toBe("theme=dark");
    expect(JSON.stringify(upstream.received.slice(before))).not.toContain("tgs_");
  });
});

describe("forward auth (/auth/verify) and CSRF", () => {
  let victim: Session;
  beforeAll(async () => {
    victim = await signIn(asUser("jo"));
  });
  const verify = (headers: Record<string, string>, init: RequestInit = {}) =>
    fetch(`${base}/auth/verify`, {
      redirect: "manual",
      ...init,
      headers: { "x-forwarded-host": "127.0.0.1", "x-forwarded-uri": "/app/live", ...headers },
    });

  test("a WebSocket handshake as nginx's auth_request passes it (Upgrade is hop-by-hop, so absent) from a foreign page → 403", async () => {
    const response = await verify({
      cookie: victim.cookie,
      origin: EVIL,
      "x-original-method": "GET",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      "sec-fetch-mode": "websocket",
      "sec-fetch-site": "cross-site",
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("x-auth-user")).toBeNull();
  });

  test("the same with Upgrade: websocket still there (Caddy, Traefik) → 403", async () => {
    const response = await verify({ cookie: victim.cookie, origin: EVIL, upgrade: "websocket", connection: "Upgrade" });
    expect(response.status).toBe(403);
  });

  test("a foreign page's POST as the trusted proxy describes it → 403", async () => {
    const response = await verify({ cookie: victim.cookie, origin: EVIL, "x-forwarded-method": "POST" });
    expect(response.status).toBe(403);
  });

  test.each([
    ["the session between other cookies", (cookie: string) => `a=1; ${cookie}; b=2`, "a=1; b=2"],
    ["the same session twice", (cookie: string) => `${cookie}; a=1; ${cookie}`, "a=1"],
    ["`tgs =` with a space", (cookie: string) => `${cookie.replace("=", " =")}; a=1`, "a=1"],
    ["an __Host-tgs beside it", (cookie: string) => `${cookie}; __Host-tgs=${FORGED_SESSION}; a=1`, "a=1"],
  ])("X-Tokengate-Cookie never carries the session: %s", async (_name, build, expected) => {
    const response = await verify({ ...NAVIGATE, cookie: build(victim.cookie) });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-tokengate-cookie")).toBe(expected);
    expect(JSON.stringify([...response.headers])).not.toContain("tgs_");
  });

  test("a comma-joined Cookie (a value with a comma is never read as the session): the sign-in page, nothing carried", async () => {
    const response = await verify({ ...NAVIGATE, cookie: `a=1, ${victim.cookie}` });
    expect(response.status).toBe(302);
    expect(response.headers.get("x-tokengate-cookie")).toBeNull();
    expect(JSON.stringify([...response.headers])).not.toContain("tgs_");
  });

  test("a navigation with an ended session: 302 to the sign-in page with a clean rd, the cookie cleared, never the token in Location", async () => {
    const ended = await signIn(asUser("jo"));
    await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: ended.cookie, origin: base } });
    const response = await verify({ ...NAVIGATE, cookie: ended.cookie, "x-forwarded-uri": "/app/d?x=1" });
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/auth/login?rd=%2Fapp%2Fd%3Fx%3D1");
    expect(response.headers.get("set-cookie")).toBe("tgs=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
  });

  test.each(["//evil.example/x", "/\\evil.example", "/app/%2e%2e/%2e%2e/secure", "https://evil.example/"])(
    "an original URI the browser could read elsewhere (%s) is refused, never turned into a Location",
    async (uri) => {
      const response = await verify({ ...NAVIGATE, "x-forwarded-uri": uri });
      expect(response.status).toBe(400);
      expect(response.headers.get("location")).toBeNull();
    },
  );
});

describe("forward auth asked by a peer that is not a trusted proxy", () => {
  let direct: TestApp;
  let victim: Session;
  beforeAll(async () => {
    direct = await startTestApp();
    await direct.store.insertUser({ username: "jo", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
    await direct.app.keyring.refresh();
    victim = await signIn(asUser("jo"), {}, direct.http);
  });
  afterAll(() => direct[Symbol.asyncDispose]());

  test.each([
    ["X-Forwarded-Method: GET on a POST", { "x-forwarded-method": "GET" }],
    ["X-Original-Method: GET on a POST", { "x-original-method": "GET" }],
    ["X-Forwarded-Host naming the foreign page's host", { "x-forwarded-host": "evil.example", origin: EVIL }],
  ])("%s with the cookie and no allowed Origin → 403 (its forwarding headers are not believed)", async (_name, headers) => {
    const response = await fetch(`${direct.http}/auth/verify?scope=data:read`, {
      method: "POST",
      headers: { ...headers, cookie: victim.cookie },
    });
    expect(response.status).toBe(403);
  });
});

for (const kind of ["nginx", "caddy"] as const satisfies readonly ProxyKind[]) {
  describe.skipIf(!hasProxy(kind))(`cookie CSRF and WebSockets through real ${kind}`, () => {
    let proxy: RunningProxy;
    let victim: Session;
    beforeAll(async () => {
      proxy = await startReverseProxy(kind, dir, (work, listen) =>
        kind === "nginx"
          ? browserNginxConfig(work, listen, port, upstream.port, { websockets: true })
          : browserCaddyConfig(listen, port, upstream.port),
      );
      victim = await signIn(asUser("jo"), { origin: proxy.url }, proxy.url);
    });
    afterAll(() => proxy.stop());

    test("a foreign page's WebSocket with the victim's cookie is refused; the service never sees the handshake", async () => {
      const before = upstream.received.length;
      const probe = new WsProbe(`ws://127.0.0.1:${proxy.port}/app/live`, {
        headers: new Headers({ origin: EVIL, cookie: victim.cookie, "sec-fetch-site": "same-site" }),
      });
      const opened = await probe.opened;
      if (opened) probe.socket.close();
      expect(opened).toBe(false);
      expect(upstream.received.slice(before).filter((entry) => entry.websocket)).toHaveLength(0);
    });

    test("the service's own page (same origin through the proxy, on its port) may still POST with the cookie", async () => {
      const before = upstream.received.length;
      const response = await fetch(`${proxy.url}/app/save`, {
        method: "POST",
        headers: { origin: proxy.url, cookie: victim.cookie },
        body: "x=1",
      });
      expect(response.status).toBe(200);
      expect(upstream.received.length).toBe(before + 1);
    });

    test("a foreign page's cookie POST is refused before the service", async () => {
      const before = upstream.received.length;
      const response = await fetch(`${proxy.url}/app/save`, {
        method: "POST",
        headers: { origin: EVIL, cookie: victim.cookie },
        body: "x=1",
      });
      expect(response.status).toBe(403);
      expect(upstream.received.length).toBe(before);
    });
  });
}

describe("open redirects in rd", () => {
  const own = () => `127.0.0.1:${port}`;
  const cases: ReadonlyArray<readonly [string, string | ((p: number) => string)]> = [
    ["protocol-relative", "//evil.example/x"],
    ["three slashes", "///evil.example"],
    ["backslash after the slash", "/\\evil.example"],
    ["backslash then slash", "\\/evil.example"],
    ["two backslashes", "\\\\evil.example"],
    ["encoded backslash", "/%5Cevil.example"],
    ["encoded slashes", "/%2F%2Fevil.example"],
    ["lower-case encoded slash", "/%2f/evil.example"],
    ["a tab between the slashes", "/\t/evil.example"],
    ["a newline between the slashes", "/\n/evil.example"],
    ["a leading space", " //evil.example"],
    ["scheme without slashes", "https:evil.example"],
    ["scheme with one slash", "https:/evil.example"],
    ["scheme with backslashes", "https:\\\\evil.example"],
    ["an absolute foreign URL", "https://evil.example/"],
    ["upper case", "HTTPS://EVIL.EXAMPLE/"],
    ["javascript:", "javascript:alert(document.cookie)"],
    ["data:", "data:text/html,<script>alert(1)</script>"],
    ["userinfo before a foreign host", (p) => `http://127.0.0.1:${p}@evil.example/`],
    ["userinfo with our host", (p) => `http://evil.example@127.0.0.1:${p}/`],
    ["a fragment before @", (p) => `http://evil.example#@127.0.0.1:${p}`],
    ["a query before @", (p) => `http://evil.example?@127.0.0.1:${p}`],
    ["our host as a subdomain of theirs", (p) => `http://127.0.0.1:${p}.evil.example/`],
    ["a served host as a subdomain of theirs", "http://cam.local.evil.example/"],
    ["a fullwidth protocol-relative URL", "／／evil.example"],
    ["an IDN homograph of a served host", "http://cаm.local/"],
    ["a served host's name as a path prefix of theirs", "http://evil.example/cam.local"],
    ["too long", `/${"a".repeat(3000)}`],
  ];

  test.each(cases)("%s → back to /", async (_name, rd) => {
    const target = typeof rd === "function" ? rd(port) : rd;
    const { response } = await signIn({ api_key: viewerKey.token, rd: target });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/");
  });

  test.each([
    ["a path", "/app/d/home?tab=2", "/app/d/home?tab=2"],
    ["a path with dot segments (resolves on this host)", "/.//evil.example", "/.//evil.example"],
    ["our own absolute URL", "OWN", "OWN"],
    ["a host a route serves", "http://cam.local/x", "http://cam.local/x"],
  ])("%s is kept", async (_name, rd, expected) => {
    const target = rd === "OWN" ? `http://${own()}/secure-data` : rd;
    const { response } = await signIn({ api_key: viewerKey.token, rd: target });
    const location = response.headers.get("location")!;
    expect(location).toBe(expected === "OWN" ? `http://${own()}/secure-data` : expected);
    const resolved = new URL(location, base);
    expect([own(), "cam.local"]).toContain(resolved.host);
  });

  test.each([
    ["CJK characters", "/app/日本"],
    ["a line separator (U+2028)", "/app/\u2028x"],
    ["an emoji", "/app/🙂"],
  ])("rd with %s: a 303 with a cookie (never a 500 after the session was opened), Location on this host", async (_name, rd) => {
    const before = (await app.store.listSessions(Date.now())).length;
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ api_key: viewerKey.token, rd }),
    });
    expect(response.status).toBe(303);
    const session = sessionOf(response);
    expect(session.id).not.toBe("");
    expect(new URL(response.headers.get("location")!, base).host).toBe(own());
    expect((await app.store.listSessions(Date.now())).length).toBe(before + 1);
  });

  test("a navigation to `//evil.example` on a host a route serves is sent to the sign-in page on this host", async () => {
    const response = await rawRequest(
      port,
      `GET //evil.example/x HTTP/1.1\r\nHost: cam.local\r\nSec-Fetch-Mode: navigate\r\nAccept: text/html\r\nConnection: close\r\n\r\n`,
    );
    expect(response.status).toBe(302);
    const location = response.headers.get("location")!;
    expect(location).toStartWith("/auth/login?rd=");
    expect(new URL(location, "http://cam.local").host).toBe("cam.local");
    // And the sign-in that follows does not go there either.
    const rd = new URL(location, "http://cam.local").searchParams.get("rd")!;
    const { response: signedIn } = await signIn({ api_key: viewerKey.token, rd }, { host: "cam.local" });
    expect(signedIn.headers.get("location")).toBe("/");
  });

  test("a refused sign-in carries rd only inside its own query, encoded", async () => {
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ username: "jo", password: "wrong", rd: "//evil.example\r\nSet-Cookie: x=1" }),
    });
    expect(response.status).toBe(303);
    const location = response.headers.get("location")!;
    expect(location).toStartWith("/auth/login?rd=");
    expect(new URL(location, base).host).toBe(own());
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  test("rd in the sign-in form's own URL (a page without script) follows the same rule", async () => {
    const response = await fetch(`${base}/auth/login?rd=${encodeURIComponent("//evil.example")}`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ api_key: viewerKey.token }),
    });
    sessionOf(response);
    expect(response.headers.get("location")).toBe("/");
  });

  test("the JSON answer's redirect follows the same rule", async () => {
    const { response } = await signIn({ api_key: viewerKey.token, rd: "//evil.example" }, JSON_ACCEPT);
    expect(((await response.json()) as { redirect: string }).redirect).toBe("/");
  });
});

describe("fixation and odd cookie syntax", () => {
  let victim: Session;
  beforeAll(async () => {
    victim = await signIn(asUser("pat"));
  });

  test("a planted well-formed cookie is never adopted by a sign-in, and is not an account", async () => {
    const fresh = await signIn(asUser("pat"), { cookie: `tgs=${FORGED_SESSION}` });
    expect(fresh.id).not.toBe(parseSessionToken(FORGED_SESSION)!.id);
    expect((await whoami(`tgs=${FORGED_SESSION}`)).status).toBe(401);
  });

  test.each([
    ["two different values (one planted by a sibling path or host)", (c: string) => `${c}; tgs=${FORGED_SESSION}`, 400],
    ["the planted one first", (c: string) => `tgs=${FORGED_SESSION}; ${c}`, 400],
    ["the same value twice", (c: string) => `${c}; ${c}`, 200],
    ["a quoted value", (c: string) => c.replace("=", '="') + '"', 401],
    ["a value with trailing junk", (c: string) => `${c}x`, 401],
    ["a value cut short", (c: string) => c.slice(0, -1), 401],
    ["percent-encoded", (c: string) => c.replace("tgs_", "tgs%5F"), 401],
    // A browser keeps commas inside a value: `tgs=…, tgs=…` is one value with a comma, never read as a session.
    ["a comma-joined second value", (c: string) => `${c}, tgs=${FORGED_SESSION}`, 401],
    ["upper-case name (a different cookie)", (c: string) => c.replace("tgs=", "TGS="), 401],
    ["__Host-tgs over plain HTTP (not read here)", (c: string) => c.replace("tgs=", "__Host-tgs="), 401],
  ])("Cookie with %s: the status the table says, never a 500", async (_name, build, status) => {
    const response = await whoami(build(victim.cookie));
    expect(response.status).toBe(status);
    expect(await response.text()).not.toContain(victim.token.slice(21));
  });

  test("two Cookie header lines (raw bytes): a second, planted value is refused like a duplicate", async () => {
    const response = await rawRequest(
      port,
      `GET /auth/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${victim.cookie}\r\nCookie: tgs=${FORGED_SESSION}\r\nConnection: close\r\n\r\n`,
    );
    expect(response.status).toBe(400);
  });

  test("a very long Cookie header (80 KiB) is answered quickly, never a 500 or a hang", async () => {
    const started = performance.now();
    const filler = Array.from({ length: 2000 }, (_, i) => `c${i}=${"x".repeat(36)}`).join("; ");
    const response = await rawRequest(
      port,
      `GET /auth/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${filler}; ${victim.cookie}\r\nConnection: close\r\n\r\n`,
    );
    expect([200, 400, 431]).toContain(response.status);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test("bytes outside ASCII in the Cookie header → an answer, never a 500", async () => {
    const bytes = Buffer.concat([
      Buffer.from(`GET /auth/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: a=`),
      Buffer.from([0xc3, 0x28, 0xff, 0x80]),
      Buffer.from(`; ${victim.cookie}\r\nConnection: close\r\n\r\n`),
    ]);
    const response = await rawRequest(port, bytes);
    expect(response.status).not.toBe(500);
    expect(response.status).not.toBe(0);
  });

  test("over TLS (a trusted proxy says https) only __Host-tgs counts: a plain tgs cookie a sibling could plant is not read", async () => {
    const tls = { "x-forwarded-proto": "https" };
    const secure = await signIn({ api_key: viewerKey.token }, tls);
    expect(secure.cookie).toStartWith("__Host-tgs=");
    expect(secure.response.headers.get("set-cookie")).toEndWith("; Secure");
    expect((await whoami(secure.cookie, tls)).status).toBe(200);
    expect((await whoami(victim.cookie, tls)).status).toBe(401);
    expect((await whoami(secure.cookie)).status).toBe(401);
    // A planted `tgs` beside the real `__Host-tgs` changes nothing there.
    expect((await whoami(`tgs=${FORGED_SESSION}; ${secure.cookie}`, tls)).status).toBe(200);
  });

  test.each([
    ["the session cookie", `tgs=${FORGED_SESSION}; Path=/`],
    ["with a leading space", ` tgs=${FORGED_SESSION}; Path=/`],
    ["with a space before =", `tgs =${FORGED_SESSION}; Path=/`],
    ["with a Domain", `tgs=${FORGED_SESSION}; Domain=127.0.0.1; Path=/`],
    ["for another path (a duplicate that locks the victim out)", `tgs=${FORGED_SESSION}; Path=/app/`],
    ["clearing it", "tgs=; Max-Age=0; Path=/"],
    ["the TLS name", `__Host-tgs=${FORGED_SESSION}; Path=/; Secure`],
  ])("a service cannot set %s; its own cookies pass", async (_name, planted) => {
    const query = new URLSearchParams([
      ["c", planted],
      ["c", "app=1; Path=/"],
    ]);
    const response = await fetch(`${base}/cookies/set?${query}`, { headers: { cookie: victim.cookie } });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual(["app=1; Path=/"]);
  });

  test("a service's own Authorization (its single-page app's bearer) beside the cookie reaches the service and is never a guess", async () => {
    const session = await signIn(asUser("jo"));
    const before = upstream.received.length;
    const client = lanClient(90);
    const statuses: number[] = [];
    for (let n = 0; n < 11; n += 1) {
      const response = await get("/app/api/states", {
        ...client,
        ...FETCH,
        cookie: session.cookie,
        authorization: "Bearer service.own.jwt-token",
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual(Array.from({ length: 11 }, () => 200));
    expect(upstream.received.slice(before).map((entry) => entry.headers.authorization)).toContain("Bearer service.own.jwt-token");
  });

  test("a session token used as ?token= (and named in the page's Referer) never reaches the service", async () => {
    const before = upstream.received.length;
    const query = `token=${encodeURIComponent(victim.token)}`;
    const response = await get(`/app/page?a=1&${query}`, { referer: `${base}/app/prev?${query}&b=2` });
    expect(response.status).toBe(200);
    const seen = upstream.received.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.target).toBe("/app/page?a=1");
    expect(seen[0]!.headers.referer).toBe(`${base}/app/prev?b=2`);
    expect(JSON.stringify(seen)).not.toContain("tgs_");
  });

  test("the service never receives the session: with a header token beside it, `tgs =`, comma-joined, quoted", async () => {
    const before = upstream.received.length;
    for (const cookie of [
      `a=1; ${victim.cookie}`,
      `a=1, ${victim.cookie}`,
      `${victim.cookie.replace("=", " =")}; a=1`,
      `${victim.cookie.replace("=", '="')}"; a=1`,
    ]) {
      await fetch(`${base}/app/page`, { headers: { cookie, "x-auth-token": viewerKey.token } });
    }
    const seen = upstream.received.slice(before);
    expect(seen).toHaveLength(4);
    // The comma-joined pair hides a session token inside `a`'s value: the whole pair is withheld.
    expect(seen.map((entry) => entry.headers.cookie)).toEqual(["a=1", undefined, "a=1", "a=1"]);
    expect(JSON.stringify(seen)).not.toContain("tgs_");
  });
});

describe("reuse after the session ended", () => {
  test("after sign-out the cookie opens nothing: routes, services, sockets, tickets, forward auth", async () => {
    const session = await signIn(asUser("lee"));
    const out = await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: session.cookie, origin: base, ...JSON_ACCEPT } });
    expect(await out.json()).toEqual({ signed_out: true, sessions_ended: 1 });
    const before = upstream.received.length;
    expect((await get("/secure-data", { cookie: session.cookie })).status).toBe(401);
    expect((await get("/app/page", { ...FETCH, cookie: session.cookie })).status).toBe(401);
    const page = await get("/app/page", { ...NAVIGATE, cookie: session.cookie });
    expect(page.status).toBe(302);
    expect(page.headers.get("set-cookie")).toStartWith("tgs=;");
    const ticket = await fetch(`${base}/auth/ws-ticket`, { method: "POST", headers: { cookie: session.cookie, origin: base } });
    expect(ticket.status).toBe(401);
    const verify = await fetch(`${base}/auth/verify`, { headers: { cookie: session.cookie, "x-forwarded-uri": "/app/x" } });
    expect(verify.status).toBe(401);
    for (const path of ["/ws", "/app/live"]) {
      const probe = new WsProbe(`${app.ws}${path}`, { headers: new Headers({ origin: base, cookie: session.cookie }) });
      expect(await probe.opened).toBe(false);
    }
    expect(upstream.received.length).toBe(before);
  });

  test("sign-out closes the session's open sockets, the gate's and a service's, within a second or two", async () => {
    const session = await signIn(asUser("lee"));
    const echo = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ origin: base, cookie: session.cookie }) });
    const proxied = new WsProbe(`${app.ws}/app/live`, { headers: new Headers({ origin: base, cookie: session.cookie }) });
    expect(await echo.opened).toBe(true);
    expect(await proxied.opened).toBe(true);
    const started = performance.now();
    await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: session.cookie, origin: base } });
    expect((await echo.closed).code).toBe(4403);
    expect((await proxied.closed).code).toBe(4403);
    expect(performance.now() - started).toBeLessThan(2500);
  });

  test("an id alone (ids are public: lists, audit) signs nobody out; a wrong secret does not either", async () => {
    const session = await signIn(asUser("lee"));
    const wrong = `tgs=tgs_${session.id}_${"B".repeat(43)}`;
    const out = await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: wrong, origin: base, ...JSON_ACCEPT } });
    expect(await out.json()).toEqual({ signed_out: false, sessions_ended: 0 });
    expect((await whoami(session.cookie)).status).toBe(200);
  });

  test("a WebSocket ticket minted with the cookie dies with the session", async () => {
    const session = await signIn(asUser("lee"));
    const minted = await fetch(`${base}/auth/ws-ticket`, { method: "POST", headers: { cookie: session.cookie, origin: base } });
    expect(minted.status).toBe(200);
    const ticket = trackSecret(((await minted.json()) as { ticket: string }).ticket);
    await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: session.cookie, origin: base } });
    const probe = new WsProbe(`${app.ws}/ws?ticket=${encodeURIComponent(ticket)}`);
    expect(await probe.opened).toBe(false);
  });

  test("a revoked key's session ends, and its socket closes 4403", async () => {
    const key = await insertApiKey(app.store, { name: "doomed", scopes: ["data:read", "ws:connect"] });
    await app.app.keyring.refresh();
    const session = await signIn({ api_key: key.token });
    const socket = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ origin: base, cookie: session.cookie }) });
    expect(await socket.opened).toBe(true);
    await app.store.revokeKey(key.id, Date.now());
    expect((await socket.closed).code).toBe(4403);
    expect((await whoami(session.cookie)).status).toBe(401);
  });

  test("disabling a user ends the session, and enabling the user again does not bring an old cookie back", async () => {
    const session = await signIn(asUser("max"));
    expect((await whoami(session.cookie)).status).toBe(200);
    await app.store.setDisabled("max", Date.now(), Date.now());
    await app.app.keyring.refresh();
    expect((await whoami(session.cookie)).status).toBe(401);
    await app.store.setDisabled("max", null, Date.now());
    await app.app.keyring.refresh();
    // The README: disabling the user "signs the browser out". A stolen cookie must stay dead.
    expect((await whoami(session.cookie)).status).toBe(401);
  });

  test("a password reset (users passwd, after a suspected compromise) ends the sessions the old password opened", async () => {
    await app.store.insertUser({ username: "reset", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
    await app.app.keyring.refresh();
    const stolen = await signIn(asUser("reset"));
    // The operator's path: the CLI (it ends the sessions unless --keep-sessions).
    const reset = await cliWithInput(app.dataDir, `${PASSWORD} 2\n`, "users", "passwd", "reset");
    expect(reset.code).toBe(0);
    await app.app.keyring.refresh();
    expect((await whoami(stolen.cookie)).status).toBe(401);
  });
});

describe("guessing session cookies", () => {
  const guessed = (n: number) => `tgs=tgs_${n.toString(16).padStart(16, "0")}_${"C".repeat(43)}`;

  test("well-formed unknown session cookies are guesses: the 10th from one client is answered 429", async () => {
    const client = lanClient(50);
    for (let n = 0; n < 9; n += 1) expect((await whoami(guessed(n), client)).status).toBe(401);
    const banned = await whoami(guessed(99), client);
    expect(banned.status).toBe(429);
    expect(banned.headers.get("retry-after")).not.toBeNull();
  });

  test("a known id with a wrong secret is a guess too", async () => {
    const session = await signIn(asUser("jo"));
    const client = lanClient(51);
    for (let n = 0; n < 10; n += 1) await whoami(`tgs=tgs_${session.id}_${"D".repeat(42)}${n % 10}`, client);
    expect((await whoami(session.cookie, client)).status).toBe(429);
  });

  test("guesses through forward auth and the proxy count the same way", async () => {
    const client = lanClient(52);
    for (let n = 0; n < 5; n += 1)
      await fetch(`${base}/auth/verify`, { headers: { ...client, cookie: guessed(n), "x-forwarded-uri": "/app/x" } });
    for (let n = 5; n < 10; n += 1) await get("/app/x", { ...client, ...FETCH, cookie: guessed(n) });
    expect((await get("/app/x", { ...client, ...FETCH, cookie: guessed(11) })).status).toBe(429);
  });

  test.each([
    ["an ended session's cookie (reloading a page after signing out elsewhere)", "ended"],
    ["two sign-in cookies", "duplicate"],
    ["a malformed sign-in cookie", "malformed"],
  ])("%s is not counted: 15 reloads stay 401/400, never 429", async (_name, kind) => {
    const session = await signIn(asUser("jo"));
    if (kind === "ended") await fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie: session.cookie, origin: base } });
    const cookie = kind === "ended" ? session.cookie : kind === "duplicate" ? `${session.cookie}; tgs=${FORGED_SESSION}` : "tgs=junk";
    const client = lanClient(kind === "ended" ? 53 : kind === "duplicate" ? 54 : 55);
    for (let n = 0; n < 15; n += 1) expect([400, 401]).toContain((await whoami(cookie, client)).status);
  });
});

describe("cross-user confusion", () => {
  test("a user named like a key's id, and a key named like a user: each session stays its own", async () => {
    const key = await insertApiKey(app.store, { name: "sam", scopes: ["data:read"] });
    const passwordHash = await hashPassword(PASSWORD);
    await app.store.insertUser({ username: key.id, passwordHash, roles: ["viewer"], createdAt: Date.now() });
    await app.store.insertUser({ username: "sam", passwordHash, roles: ["viewer"], createdAt: Date.now() });
    await app.app.keyring.refresh();
    const asKey = await signIn({ api_key: key.token });
    const asTwin = await signIn(asUser(key.id));
    const asSam = await signIn(asUser("sam"));
    expect(await (await whoami(asKey.cookie)).json()).toMatchObject({ id: key.id, kind: "key", name: "sam" });
    expect(await (await whoami(asTwin.cookie)).json()).toMatchObject({ id: `user:${key.id}`, kind: "user" });
    expect(await (await whoami(asSam.cookie)).json()).toMatchObject({ id: "user:sam", kind: "user" });
    const everywhere = (cookie: string) =>
      fetch(`${base}/auth/logout`, { method: "POST", headers: { cookie, origin: base }, body: new URLSearchParams({ everywhere: "1" }) });
    // Signing the user "sam" out everywhere leaves the key named "sam" signed in.
    await everywhere(asSam.cookie);
    expect((await whoami(asKey.cookie)).status).toBe(200);
    // Disabling the user named like the key's id does not touch the key's session.
    await app.store.setDisabled(key.id, Date.now(), Date.now());
    await app.app.keyring.refresh();
    expect((await whoami(asKey.cookie)).status).toBe(200);
    expect((await whoami(asTwin.cookie)).status).toBe(401);
    // Signing the key out everywhere ends only the key's sessions.
    const again = await signIn({ api_key: key.token });
    await everywhere(again.cookie);
    expect((await whoami(asKey.cookie)).status).toBe(401);
  });

  test("a key's session cannot register passkeys (users only)", async () => {
    const session = await signIn({ api_key: viewerKey.token });
    const response = await fetch(`${base}/auth/passkeys/register/options`, {
      method: "POST",
      headers: { cookie: session.cookie, origin: `http://localhost:${port}`, host: `localhost:${port}` },
    });
    expect(response.status).toBe(403);
  });
});

describe("guessing at the sign-in page", () => {
  const attempt = (client: Record<string, string>, apiKey: string) =>
    fetch(`${base}/auth/login`, { method: "POST", headers: { ...client, ...JSON_ACCEPT }, body: new URLSearchParams({ api_key: apiKey }) });

  test("wrong API keys at POST /auth/login count: the 10th is 429, then the page and even the right key are refused", async () => {
    const client = lanClient(80);
    for (let n = 0; n < 9; n += 1) expect((await attempt(client, `tg_00000000000${n}_${"A".repeat(43)}`)).status).toBe(401);
    expect((await attempt(client, `tg_00000000000a_${"A".repeat(43)}`)).status).toBe(429);
    expect((await get("/auth/login", client)).status).toBe(429);
    const right = await attempt(client, viewerKey.token);
    expect(right.status).toBe(429);
    expect(right.headers.get("set-cookie")).toBeNull();
  });

  test("a password from another machine over plain HTTP is refused before it is checked", async () => {
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      headers: { ...lanClient(81), ...JSON_ACCEPT },
      body: new URLSearchParams(asUser("jo")),
    });
    expect(response.status).toBe(400);
    expect(response.headers.get("set-cookie")).toBeNull();
  });
});

describe("what may open a session", () => {
  const login = (apiKey: string) =>
    fetch(`${base}/auth/login`, { method: "POST", headers: JSON_ACCEPT, body: new URLSearchParams({ api_key: apiKey }) });

  test.each([
    ["the bootstrap token", () => app.token],
    ["the bootstrap token with spaces around it", () => `  ${app.token}  `],
  ])("%s → 403, no cookie", async (_name, value) => {
    const response = await login(value());
    expect(response.status).toBe(403);
    expect(response.headers.get("set-cookie")).toBeNull();
  });

  test("a session's own token pasted as a key → 403", async () => {
    const session = await signIn(asUser("jo"));
    const response = await login(session.token);
    expect(response.status).toBe(403);
    expect(response.headers.get("set-cookie")).toBeNull();
  });

  test("a password-grant access token (a user's JWT) → 403", async () => {
    const grant = await fetch(`${base}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", ...asUser("jo") }),
    });
    const jwt = trackSecret(((await grant.json()) as { access_token: string }).access_token);
    const response = await login(jwt);
    expect(response.status).toBe(403);
    expect(response.headers.get("set-cookie")).toBeNull();
  });

  test("a client-credentials access token (a key's JWT, which carries no session id) → 403, as the README says", async () => {
    const grant = await fetch(`${base}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: viewerKey.id, client_secret: viewerKey.token }),
    });
    expect(grant.status).toBe(200);
    const jwt = trackSecret(((await grant.json()) as { access_token: string }).access_token);
    const response = await login(jwt);
    const cookie = response.headers.get("set-cookie");
    if (cookie !== null) trackSecret(cookie.slice(cookie.indexOf("=") + 1, cookie.indexOf(";")));
    expect(response.status).toBe(403);
    expect(cookie).toBeNull();
  });

  test("a revoked key → 401 (and no session)", async () => {
    const key = await insertApiKey(app.store, { name: "old", scopes: ["data:read"] });
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    const response = await login(key.token);
    expect(response.status).toBe(401);
    expect(response.headers.get("set-cookie")).toBeNull();
  });
});

describe("the Origin's scheme over TLS", () => {
  test("a plain-http page on the gate's host name (a LAN attacker answering port 80) cannot use the __Host-tgs cookie", async () => {
    const tls = { "x-forwarded-proto": "https", host: "gate.local" };
    const session = await signIn({ api_key: viewerKey.token }, tls);
    expect(session.cookie).toStartWith("__Host-tgs=");
    const own = await fetch(`${base}/auth/ws-ticket`, {
      method: "POST",
      headers: { ...tls, cookie: session.cookie, origin: "https://gate.local" },
    });
    expect(own.status).toBe(200);
    trackSecret(((await own.json()) as { ticket: string }).ticket);
    const plain = await fetch(`${base}/auth/ws-ticket`, {
      method: "POST",
      headers: { ...tls, cookie: session.cookie, origin: "http://gate.local" },
    });
    expect(plain.status).toBe(403);
  });
});

describe("idle and absolute expiry (a clock the test moves)", () => {
  const MINUTE = 60_000;
  const clock = { at: Date.now(), now: () => clock.at };
  let timed: TestApp;
  const at = (path: string, cookie: string, headers: Record<string, string> = {}) =>
    fetch(`${timed.http}${path}`, { headers: { cookie, ...headers }, redirect: "manual" });

  beforeAll(async () => {
    timed = await startTestApp({ SESSION_IDLE_TIMEOUT: "10m", SESSION_LIFETIME: "1h", TRUSTED_PROXIES: "127.0.0.1" }, { now: clock.now });
    await timed.store.insertUser({ username: "jo", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: clock.now() });
    await timed.app.keyring.refresh();
  });
  afterAll(() => timed[Symbol.asyncDispose]());

  test("idle: used just before the limit it slides; unused for exactly the limit it ends; reloads then are not counted", async () => {
    const session = await signIn(asUser("jo"), {}, timed.http);
    clock.at += 10 * MINUTE - 1;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(200);
    clock.at += 10 * MINUTE - 1;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(200);
    await timed.app.keyring.flushUsage();
    clock.at += 10 * MINUTE;
    const expired = await at("/auth/whoami", session.cookie);
    expect(expired.status).toBe(401);
    for (let n = 0; n < 12; n += 1) expect((await at("/auth/whoami", session.cookie, lanClient(70))).status).toBe(401);
    // A use refused as idle does not slide it back to life.
    clock.at += MINUTE;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(401);
  });

  test("absolute: a session used every few minutes still ends at its lifetime; the cookie's Max-Age says so", async () => {
    const session = await signIn(asUser("jo"), {}, timed.http);
    expect(session.response.headers.get("set-cookie")).toContain("Max-Age=3600;");
    for (let minutes = 0; minutes < 54; minutes += 9) {
      clock.at += 9 * MINUTE;
      expect((await at("/auth/whoami", session.cookie)).status).toBe(200);
    }
    clock.at += 6 * MINUTE;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(401);
  });

  test("a session opened with a key that expires sooner ends with the key", async () => {
    const key = await insertApiKey(timed.store, {
      name: "short",
      scopes: ["data:read"],
      createdAt: clock.now(),
      expiresAt: clock.now() + 5 * MINUTE,
    });
    await timed.app.keyring.refresh();
    const session = await signIn({ api_key: key.token }, {}, timed.http);
    expect(session.response.headers.get("set-cookie")).toContain("Max-Age=300;");
    clock.at += 4 * MINUTE;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(200);
    clock.at += MINUTE;
    expect((await at("/auth/whoami", session.cookie)).status).toBe(401);
  });

  test("an open socket closes 4401 when its session reaches its absolute end", async () => {
    const session = await signIn(asUser("jo"), {}, timed.http);
    const probe = new WsProbe(`${timed.ws}/ws`, { headers: new Headers({ origin: timed.http, cookie: session.cookie }) });
    expect(await probe.opened).toBe(true);
    clock.at += 61 * MINUTE;
    expect((await probe.closed).code).toBe(4401);
  });
});

describe("passkeys over the wire (WEBAUTHN_RP_ID=localhost)", () => {
  const pageOrigin = () => `http://localhost:${port}`;
  const page = () => ({ host: `localhost:${port}`, origin: pageOrigin() });
  const authenticator = new SoftAuthenticator();
  let owner: Session;

  /** A JSON POST from the page (or with the headers given instead). */
  async function call(path: string, body: unknown, headers: Record<string, string> = page()): Promise<{ response: Response; json: any }> {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/json", ...JSON_ACCEPT, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text.startsWith("{") ? JSON.parse(text) : {};
    for (const challenge of [json.challenge, json.options?.challenge]) if (typeof challenge === "string") trackSecret(challenge);
    return { response, json };
  }

  async function loginOptions(): Promise<{ challenge_id: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const { response, json } = await call("/auth/passkeys/login/options", {});
    expect(response.status).toBe(200);
    return json;
  }

  beforeAll(async () => {
    owner = await signIn(asUser("pkuser"), { host: `localhost:${port}` });
    const offered = await call("/auth/passkeys/register/options", { password: PASSWORD }, { ...page(), cookie: owner.cookie });
    expect(offered.response.status).toBe(200);
    const registered = await call(
      "/auth/passkeys/register",
      { response: authenticator.create(offered.json, pageOrigin()) },
      { ...page(), cookie: owner.cookie },
    );
    expect(registered.response.status).toBe(201);
  });

  test("a passkey sign-in works (sanity) and a replay of the same answer is refused without a second session", async () => {
    const { challenge_id, options } = await loginOptions();
    const body = { challenge_id, response: authenticator.get(options, pageOrigin()) };
    const first = await call("/auth/passkeys/login", body);
    expect(first.response.status).toBe(200);
    sessionOf(first.response);
    const replay = await call("/auth/passkeys/login", body);
    expect(replay.response.status).toBe(400);
    expect(replay.response.headers.get("set-cookie")).toBeNull();
  });

  test("an old answer replayed against a fresh challenge → 401", async () => {
    const old = await loginOptions();
    const answer = authenticator.get(old.options, pageOrigin());
    const fresh = await loginOptions();
    const replay = await call("/auth/passkeys/login", { challenge_id: fresh.challenge_id, response: answer });
    expect(replay.response.status).toBe(401);
    expect(replay.response.headers.get("set-cookie")).toBeNull();
  });

  test("an answer signed for another site's page (relayed by a phishing page) → 401", async () => {
    const { challenge_id, options } = await loginOptions();
    const phished = await call("/auth/passkeys/login", { challenge_id, response: authenticator.get(options, "https://evil.example") });
    expect(phished.response.status).toBe(401);
  });

  test("a user handle of another account → 401", async () => {
    const { challenge_id, options } = await loginOptions();
    const answer = authenticator.get(options, pageOrigin());
    answer.response.userHandle = Buffer.from(createHash("sha256").update("tokengate passkey user\npkother").digest()).toString("base64url");
    const refused = await call("/auth/passkeys/login", { challenge_id, response: answer });
    expect(refused.response.status).toBe(401);
    expect(refused.response.headers.get("set-cookie")).toBeNull();
  });

  const withoutOrigin = () => ({ host: `localhost:${port}` });
  const foreign = () => ({ host: `localhost:${port}`, origin: EVIL });
  test.each([
    ["no Origin", withoutOrigin],
    ["a foreign Origin", foreign],
    ["Origin: null", () => ({ host: `localhost:${port}`, origin: "null" })],
    ["the gate's IP origin (not a passkey origin)", () => ({ origin: base })],
  ])("login options with %s → 403", async (_name, headers) => {
    const { response } = await call("/auth/passkeys/login/options", {}, headers());
    expect(response.status).toBe(403);
  });

  test.each([
    ["no Origin", withoutOrigin],
    ["a foreign Origin", foreign],
  ])("registration options with the cookie and %s → 403 (CSRF)", async (_name, headers) => {
    const { response } = await call("/auth/passkeys/register/options", {}, { ...headers(), cookie: owner.cookie });
    expect(response.status).toBe(403);
  });

  test("a registration begun in one session cannot be finished from another session of the same user", async () => {
    const other = await signIn(asUser("pkuser"), { host: `localhost:${port}` });
    const offered = await call("/auth/passkeys/register/options", { password: PASSWORD }, { ...page(), cookie: owner.cookie });
    const stranger = new SoftAuthenticator();
    const finished = await call(
      "/auth/passkeys/register",
      { response: stranger.create(offered.json, pageOrigin()) },
      { ...page(), cookie: other.cookie },
    );
    expect(finished.response.status).toBe(400);
  });

  test.each([
    ["a body over 64 KiB", JSON.stringify({ challenge_id: "x".repeat(22), pad: "p".repeat(70 * 1024) }), [413]],
    ["not JSON", "{challenge_id:", [400]],
    ["a JSON array", "[]", [400]],
    ["deeply nested JSON", `${"[".repeat(30_000)}${"]".repeat(30_000)}`, [400]],
    ["a challenge id of the wrong type", JSON.stringify({ challenge_id: 5, response: {} }), [400]],
    [
      "a credential whose fields have the wrong types",
      JSON.stringify({
        challenge_id: "A".repeat(22),
        response: {
          id: "AAAA",
          rawId: "AAAA",
          type: "public-key",
          response: { clientDataJSON: 5, authenticatorData: {}, signature: null, userHandle: 7 },
        },
      }),
      [400, 401],
    ],
  ])("login with %s → an answer, never a 500", async (_name, body, statuses) => {
    const { response } = await call("/auth/passkeys/login", body);
    expect(statuses).toContain(response.status);
  });

  test("a credential with wrong-typed fields against a live challenge → 401, never a 500", async () => {
    const { challenge_id, options } = await loginOptions();
    const answer = authenticator.get(options, pageOrigin()) as unknown as { response: Record<string, unknown> };
    answer.response.clientDataJSON = 12;
    answer.response.signature = { a: 1 };
    const { response } = await call("/auth/passkeys/login", { challenge_id, response: answer });
    expect(response.status).toBe(401);
  });

  test("a form post (a cross-site form cannot send JSON) → 400 before anything else", async () => {
    const response = await fetch(`${base}/auth/passkeys/login`, {
      method: "POST",
      headers: { ...page(), "content-type": "application/x-www-form-urlencoded" },
      body: "challenge_id=x",
    });
    expect(response.status).toBe(400);
  });

  test("a page of a path-prefix service (the gate's own origin) cannot add a passkey to the signed-in user's account", async () => {
    // What a service's script (or an XSS in a camera's web UI) proxied under /app/ can send: it runs on
    // the gate's origin, so the browser attaches the cookie, Origin and Sec-Fetch-Site: same-origin.
    const fromService = { ...page(), cookie: owner.cookie, "sec-fetch-site": "same-origin", referer: `${pageOrigin()}/app/ui/index.html` };
    // The cookie alone no longer adds a passkey: the account's password is asked again, which the script does not know.
    const offered = await call("/auth/passkeys/register/options", {}, fromService);
    expect(offered.response.status).toBe(400);
    expect(offered.json.challenge).toBeUndefined();
    const guessed = await call("/auth/passkeys/register/options", { password: "a guess" }, fromService);
    expect(guessed.response.status).toBe(401);
    const planted = new SoftAuthenticator();
    const finished = await call(
      "/auth/passkeys/register",
      { response: planted.create({ challenge: "x", rp: { id: "localhost" }, user: { id: "eA" } } as never, pageOrigin()) },
      fromService,
    );
    expect(finished.response.status).toBe(400);
    // The planted passkey would open sessions for pkuser anywhere, long after this session ends.
    const { challenge_id, options } = await loginOptions();
    const login = await call("/auth/passkeys/login", { challenge_id, response: planted.get(options, pageOrigin()) });
    if (login.response.headers.get("set-cookie") !== null) sessionOf(login.response);
    expect(login.response.status).toBe(401);
  });

  test("a disabled user's passkey opens nothing", async () => {
    await app.store.setDisabled("pkuser", Date.now(), Date.now());
    const { challenge_id, options } = await loginOptions();
    const refused = await call("/auth/passkeys/login", { challenge_id, response: authenticator.get(options, pageOrigin()) });
    await app.store.setDisabled("pkuser", null, Date.now());
    expect(refused.response.status).toBe(403);
    expect(refused.response.headers.get("set-cookie")).toBeNull();
  });
});

describe("malformed sign-in requests: an answer, never a 500 or a hang", () => {
  test.each([
    ["a body over 64 KiB", `api_key=${"a".repeat(70 * 1024)}`, [413]],
    ["rd twice", "api_key=x&rd=/a&rd=/b", [400]],
    ["bad percent escapes", "api_key=%zz%&username=%", [400, 401]],
    ["a NUL byte in the key", "api_key=tg_%00", [401]],
    ["non-ASCII in the key", `api_key=${encodeURIComponent("tg_ünïcødé")}`, [401]],
    ["a 10 KB username", `username=${"u".repeat(10_000)}&password=x`, [401]],
    ["a password that is a bootstrap-sized blob", `username=jo&password=${"p".repeat(20_000)}`, [401]],
  ])("%s", async (_name, body, statuses) => {
    const response = await fetch(`${base}/auth/login`, {
      method: "POST",
      headers: { ...JSON_ACCEPT, "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    expect(statuses).toContain(response.status);
  });

  test("a chunked body that never ends is cut off at the limit", async () => {
    const chunk = `api_key=${"a".repeat(8 * 1024)}`;
    const chunks = Array.from({ length: 12 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("");
    const response = await rawRequest(
      port,
      `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`,
    );
    expect([413, 400]).toContain(response.status);
  });

  test("sign-out with a body of any type, or none → an answer, never a 500", async () => {
    for (const [type, body] of [
      ["application/json", "{"],
      ["application/x-www-form-urlencoded", "everywhere=%zz&everywhere=1"],
      ["text/plain", "x"],
    ] as const) {
      const response = await fetch(`${base}/auth/logout`, { method: "POST", headers: { "content-type": type, ...JSON_ACCEPT }, body });
      expect(response.status).toBeLessThan(500);
    }
  });
});

test("no secret reached any output, any service, or a Location header", () => {
  expectNoSecretsInOutput();
  expect(upstreamSaw()).not.toContain("tgs_");
  expect(upstreamSaw()).not.toContain(viewerKey.token);
});
