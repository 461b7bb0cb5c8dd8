/**
 * Browser sessions end to end against the real app on a loopback port: signing in with a password
 * or a pasted API key, the cookie's flags, a new id at every sign-in (no fixation), the cookie as a
 * credential on protected routes and /ws, CSRF refusals, idle and absolute expiry under an
 * injected clock, sign-out (here and everywhere), and revocation closing the session's sockets.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { parseSessionToken } from "../../auth/secrets/sessions.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const PASSWORD = "correct horse battery staple";
const DAY = 86_400_000;

/** A clock the test moves; every part of the app reads it. */
const clock = { at: Date.now(), now: () => clock.at };

let app: TestApp;
let key: { id: string; token: string };

beforeAll(async () => {
  app = await startTestApp({ BASIC_AUTH: "true" }, { now: clock.now });
  const passwordHash = await hashPassword(PASSWORD);
  for (const [username, roles] of [
    ["jo", ["viewer"]],
    ["ann", ["admin"]],
    ["pat", ["viewer"]],
    ["kim", ["viewer"]],
  ] as const) {
    await app.store.insertUser({ username, passwordHash, roles, createdAt: clock.now() });
  }
  key = await insertApiKey(app.store, { name: "kitchen tablet", scopes: ["data:read", "ws:connect"] });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

interface SignedIn {
  readonly response: Response;
  /** `tgs=…` as a browser sends it back. */
  readonly cookie: string;
  readonly token: string;
  readonly id: string;
}

/** The session token out of a Set-Cookie, registered with the leak scan before anything can print it. */
function cookieOf(response: Response): { cookie: string; token: string; id: string } {
  const header = response.headers.get("set-cookie");
  if (header === null) throw new Error(`no Set-Cookie (status ${response.status})`);
  const pair = header.split(";")[0]!;
  const token = pair.slice(pair.indexOf("=") + 1);
  trackSecret(token);
  return { cookie: pair, token, id: parseSessionToken(token)?.id ?? "" };
}

async function signIn(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<SignedIn> {
  const response = await fetch(`${app.http}/auth/login`, {
    method: "POST",
    redirect: "manual",
    headers,
    body: new URLSearchParams(fields),
  });
  return { response, ...cookieOf(response) };
}

const asPassword = (username = "jo") => ({ username, password: PASSWORD });
const get = (path: string, headers: Record<string, string> = {}) => fetch(`${app.http}${path}`, { headers, redirect: "manual" });
const post = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${app.http}${path}`, { method: "POST", headers, redirect: "manual" });

describe("signing in", () => {
  test("a password sign-in answers 303 to rd with an HttpOnly, SameSite=Lax cookie on / (no Secure over plain HTTP)", async () => {
    const { response, token } = await signIn({ ...asPassword(), rd: "/secure-data" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/secure-data");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const setCookie = response.headers.get("set-cookie")!;
    expect(setCookie).toBe(`tgs=${token}; Path=/; Max-Age=${30 * 86_400}; HttpOnly; SameSite=Lax`);
    expect(token).toMatch(/^tgs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  });

  test("only the secret's SHA-256 is stored, with who signed in, how, the scopes of their roles and the absolute end", async () => {
    const { id, token } = await signIn(asPassword());
    const stored = await app.store.getSession(id);
    expect(stored).toMatchObject({ subject: "user:jo", method: "password", scopes: ["data:read", "ws:connect"], roles: ["viewer"] });
    expect(stored!.expiresAt - stored!.createdAt).toBe(30 * DAY);
    expect(Buffer.from(stored!.secretHash).toString("hex")).toBe(
      new Bun.CryptoHasher("sha256").update(parseSessionToken(token)!.secret).digest("hex"),
    );
    expect(JSON.stringify(stored)).not.toContain(parseSessionToken(token)!.secret);
  });

  test("a script that prefers JSON gets the session and the principal, never the cookie's value in the body", async () => {
    const { response, token } = await signIn(asPassword(), { accept: "application/json" });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, Record<string, unknown>>;
    expect(body.principal).toMatchObject({ id: "user:jo", kind: "user" });
    expect(body.session!.method).toBe("password");
    expect(JSON.stringify(body)).not.toContain(token);
  });

  test("an API key pasted once opens a session with the key's scopes and name", async () => {
    const { response, cookie } = await signIn({ api_key: key.token }, { accept: "application/json" });
    expect(response.status).toBe(200);
    const who = await (await get("/auth/whoami", { cookie })).json();
    expect(who).toMatchObject({ id: key.id, kind: "key", name: "kitchen tablet", scopes: ["data:read", "ws:connect"] });
  });

  test.each([
    ["a wrong password", { username: "jo", password: "wrong horse" }, 401, "invalid_credentials"],
    ["an unknown user", { username: "nobody", password: PASSWORD }, 401, "invalid_credentials"],
    ["nothing", {}, 400, "invalid_request"],
    [
      "both a key and a password",
      { api_key: "tg_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ...asPassword() },
      400,
      "invalid_request",
    ],
  ])("%s: %d %s as JSON, no cookie", async (_name, fields, status, code) => {
    const answer = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams(fields as Record<string, string>),
    });
    expect(answer.status).toBe(status);
    expect(((await answer.json()) as { code: string }).code).toBe(code);
    expect(answer.headers.get("set-cookie")).toBeNull();
  });

  test("a page without script is sent back to the login page with the reason and its rd", async () => {
    const answer = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ username: "jo", password: "wrong", rd: "/secure-data" }),
    });
    expect(answer.status).toBe(303);
    expect(answer.headers.get("location")).toBe("/auth/login?rd=%2Fsecure-data&error=invalid_credentials");
  });

  test("the bootstrap token and an access token do not open sessions (403 access_denied)", async () => {
    const grant = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: key.id, client_secret: key.token }),
    });
    const jwt = trackSecret(((await grant.json()) as { access_token: string }).access_token);
    for (const token of [app.token, jwt]) {
      const answer = await fetch(`${app.http}/auth/login`, {
        method: "POST",
        headers: { accept: "application/json" },
        body: new URLSearchParams({ api_key: token }),
      });
      expect(answer.status).toBe(403);
      expect(((await answer.json()) as { code: string }).code).toBe("access_denied");
    }
  });

  test("a user who must use a passkey cannot open a session with the password", async () => {
    await app.store.setPasskeyRequired("kim", true, clock.now());
    const answer = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams(asPassword("kim")),
    });
    expect(answer.status).toBe(403);
    expect(((await answer.json()) as { code: string }).code).toBe("access_denied");
  });

  test("without script the login page's forms post back to /auth/login?rd=…, and that rd is where the browser lands", async () => {
    const html = await (await get("/auth/login?rd=%2Fsecure-data")).text();
    expect(html).not.toContain('action="/auth/login"');
    const answer = await fetch(`${app.http}/auth/login?rd=%2Fsecure-data`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ rd: "", ...asPassword() }),
    });
    cookieOf(answer);
    expect(answer.headers.get("location")).toBe("/secure-data");
    const evil = await fetch(`${app.http}/auth/login?rd=%2F%2Fevil.com`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams(asPassword()),
    });
    cookieOf(evil);
    expect(evil.headers.get("location")).toBe("/");
  });

  test("GET /auth/login is the console page, its assets under /auth/console/ (the gate's own prefix on every host)", async () => {
    const page = await get("/auth/login?rd=%2Fsecure-data");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const html = await page.text();
    const script = /src="(\/auth\/console\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await get(script!)).status).toBe(200);
  });
});

describe("no fixation", () => {
  test("a cookie the browser already had (planted or old) is never adopted: sign-in issues a new id", async () => {
    const planted = "tgs_00000000000000aa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const { id } = await signIn(asPassword(), { cookie: `tgs=${planted}` });
    expect(id).not.toBe("00000000000000aa");
    expect(await app.store.getSession("00000000000000aa")).toBeUndefined();
  });

  test("signing in again ends the browser's earlier session", async () => {
    const first = await signIn(asPassword());
    const second = await signIn(asPassword(), { cookie: first.cookie });
    expect(second.id).not.toBe(first.id);
    expect((await app.store.getSession(first.id))!.revokedAt).not.toBeNull();
    expect((await get("/auth/whoami", { cookie: first.cookie })).status).toBe(401);
    expect((await get("/auth/whoami", { cookie: second.cookie })).status).toBe(200);
  });
});

describe("the cookie as a credential", () => {
  test("protected routes take it; a header token wins over it", async () => {
    const { cookie } = await signIn(asPassword());
    const data = await get("/secure-data", { cookie });
    expect(data.status).toBe(200);
    expect(await data.json()).toEqual({ message: "✅ Access granted", data: "Here is your secret data!" });
    const who = await (await get("/auth/whoami", { cookie, "x-auth-token": key.token })).json();
    expect(who).toMatchObject({ kind: "key", id: key.id });
  });

  test.each([
    [
      "two different session cookies",
      (cookie: string) => `${cookie}; tgs=tgs_00000000000000bb_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB`,
      400,
      "invalid_request",
    ],
    ["a value tokengate never issued", () => "tgs=hello", 401, "invalid_token"],
    [
      "a well-formed but unknown session",
      () => "tgs=tgs_00000000000000cc_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
      401,
      "invalid_token",
    ],
  ])("%s → %d %s", async (_name, cookieFor, status, code) => {
    const { cookie } = await signIn(asPassword());
    const answer = await get("/secure-data", { cookie: cookieFor(cookie) });
    expect(answer.status).toBe(status);
    expect(((await answer.json()) as { code: string }).code).toBe(code);
  });

  test("the cookie is read among others, in any order", async () => {
    const { cookie } = await signIn(asPassword());
    expect((await get("/secure-data", { cookie: `theme=dark; ${cookie}; lang=en` })).status).toBe(200);
  });

  test("a scope the session lacks is 403 insufficient_scope: a session has the scopes of what opened it, no more", async () => {
    const reader = await insertApiKey(app.store, { name: "reader", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    const { cookie } = await signIn({ api_key: reader.token });
    const answer = await post("/auth/ws-ticket", { cookie, origin: app.http });
    expect(answer.status).toBe(403);
    expect(((await answer.json()) as { code: string }).code).toBe("insufficient_scope");
    expect((await get("/secure-data", { cookie })).status).toBe(200);
  });
});

describe("CSRF: a cookie-authenticated change of state needs an allowed Origin or Sec-Fetch-Site: same-origin", () => {
  let cookie: string;
  beforeAll(async () => {
    ({ cookie } = await signIn(asPassword()));
  });

  test.each([
    ["no Origin and no Sec-Fetch-Site", {}, 403],
    ["Sec-Fetch-Site: cross-site", { "sec-fetch-site": "cross-site" }, 403],
    ["Sec-Fetch-Site: same-site (a sibling host)", { "sec-fetch-site": "same-site" }, 403],
    ["Sec-Fetch-Site: none (typed into the address bar)", { "sec-fetch-site": "none" }, 403],
    ["a foreign Origin", { origin: "http://evil.example" }, 403],
    ["Origin: null (a sandboxed frame, a data: page)", { origin: "null" }, 403],
    ["Sec-Fetch-Site: same-origin", { "sec-fetch-site": "same-origin" }, 200],
    ["its own Origin", { origin: "SELF" }, 200],
  ])("POST with %s → %d", async (_name, extra, status) => {
    const headers: Record<string, string> = { cookie };
    for (const [name, value] of Object.entries(extra)) headers[name] = value === "SELF" ? app.http : value;
    const answer = await post("/auth/ws-ticket", headers);
    expect(answer.status).toBe(status);
    const body = (await answer.json()) as { code?: string; ticket?: string };
    if (status === 403) {
      expect(body.code).toBe("forbidden_origin");
      expect(body.ticket).toBeUndefined();
    } else {
      expect(body.ticket).toBeString();
      trackSecret(body.ticket!);
    }
  });

  test("a token-authenticated POST needs no Origin at all (scripts and curl are unaffected)", async () => {
    const answer = await post("/auth/ws-ticket", { "x-auth-token": key.token });
    expect(answer.status).toBe(200);
    trackSecret(((await answer.json()) as { ticket: string }).ticket);
  });

  test("GET with the cookie needs neither (SameSite=Lax navigations)", async () => {
    expect((await get("/secure-data", { cookie })).status).toBe(200);
  });

  test("a CSRF refusal is audited", () => {
    expect(app.audit.join("")).toContain('"reason":"forbidden_origin"');
  });
});

describe("/ws with the cookie: the Origin check is mandatory", () => {
  test("a same-origin page opens the socket with its cookie alone", async () => {
    const { cookie } = await signIn(asPassword());
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    expect(await probe.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    probe.socket.close();
  });

  test.each([
    ["without Origin", {}],
    ["from a foreign Origin", { origin: "http://evil.example" }],
  ])("%s the upgrade is refused (403) and no socket opens", async (_name, extra) => {
    const { cookie } = await signIn(asPassword());
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, ...extra }) });
    expect(await probe.opened).toBe(false);
    const raw = await fetch(`${app.http}/ws`, {
      headers: {
        cookie,
        ...extra,
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(raw.status).toBe(403);
  });
});

describe("ending sessions", () => {
  test("sign-out ends this browser's session and clears the cookie; reloading with the old cookie is 401, not a guess", async () => {
    const { cookie, id } = await signIn(asPassword("pat"));
    const out = await post("/auth/logout", { cookie, origin: app.http, accept: "application/json" });
    expect(out.status).toBe(200);
    expect(await out.json()).toEqual({ signed_out: true, sessions_ended: 1 });
    expect(out.headers.get("set-cookie")).toBe("tgs=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    for (let reload = 0; reload < 15; reload++) {
      const answer = await get("/secure-data", { cookie });
      expect(answer.status).toBe(401);
      expect(((await answer.json()) as { code: string }).code).toBe("invalid_token");
      // The dead cookie is cleared with the answer, so a page learns it once.
      expect(answer.headers.get("set-cookie")).toBe("tgs=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    }
    expect(app.audit.join("")).toContain(`"audit":"session.ended","session":"${id}"`);
    // Fifteen reloads of an ended session are not fifteen guesses: the client is not banned.
    expect((await get("/secure-data", { "x-auth-token": key.token })).status).toBe(200);
  });

  test("sign-out without Origin from a cookie caller is refused (a page cannot sign you out behind your back)", async () => {
    const { cookie } = await signIn(asPassword("pat"));
    expect((await post("/auth/logout", { cookie })).status).toBe(403);
    expect((await get("/auth/whoami", { cookie })).status).toBe(200);
  });

  test("sign out everywhere ends every session of that person, and only theirs", async () => {
    const here = await signIn(asPassword("pat"));
    const phone = await signIn(asPassword("pat"));
    const other = await signIn(asPassword("jo"));
    const out = await fetch(`${app.http}/auth/logout`, {
      method: "POST",
      headers: { cookie: here.cookie, origin: app.http, accept: "application/json" },
      body: new URLSearchParams({ everywhere: "1" }),
    });
    expect(((await out.json()) as { sessions_ended: number }).sessions_ended).toBeGreaterThanOrEqual(2);
    expect((await get("/auth/whoami", { cookie: phone.cookie })).status).toBe(401);
    expect((await get("/auth/whoami", { cookie: other.cookie })).status).toBe(200);
  });

  test("a page without script is sent to the login page after sign-out", async () => {
    const { cookie } = await signIn(asPassword("pat"));
    const out = await post("/auth/logout", { cookie, origin: app.http });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/auth/login");
  });
});

describe("revocation closes the session's sockets with 4403", () => {
  const openSocket = async (cookie: string) => {
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    return probe;
  };

  test.each([
    ["the session is revoked (as the CLI does)", async (id: string) => void (await app.store.revokeSession(id, clock.now()))],
    ["the user is disabled", async () => void (await app.store.setDisabled("ann", clock.now(), clock.now()))],
  ])("when %s", async (_name, revoke) => {
    const { cookie, id } = await signIn(asPassword("ann"));
    const probe = await openSocket(cookie);
    const started = performance.now();
    await revoke(id);
    const closed = await probe.closed;
    expect(closed.code).toBe(4403);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect((await get("/auth/whoami", { cookie })).status).toBe(401);
    await app.store.setDisabled("ann", null, clock.now());
  });

  test("when the key the session was opened with is revoked", async () => {
    const tablet = await insertApiKey(app.store, { name: "hall tablet", scopes: ["ws:connect", "data:read"] });
    await app.app.keyring.refresh();
    const { cookie } = await signIn({ api_key: tablet.token });
    const probe = await openSocket(cookie);
    await app.store.revokeKey(tablet.id, clock.now());
    expect((await probe.closed).code).toBe(4403);
    expect((await get("/secure-data", { cookie })).status).toBe(401);
  });
});

describe("expiry, with the injected clock", () => {
  test("idle: a session used within the idle timeout keeps working (sliding); one left alone longer ends", async () => {
    const { cookie } = await signIn(asPassword("jo"));
    for (let day = 0; day < 3; day++) {
      clock.at += 6 * DAY;
      expect((await get("/secure-data", { cookie })).status).toBe(200);
    }
    clock.at += 7 * DAY + 1000;
    const answer = await get("/secure-data", { cookie });
    expect(answer.status).toBe(401);
    // Told apart from a guessed token by its description (and it is not counted toward a ban).
    expect(await answer.json()).toMatchObject({
      code: "invalid_token",
      description: "The sign-in session was not used for too long; sign in again",
    });
  });

  test("absolute: however busy, a session ends 30 days after sign-in, and its sockets close", async () => {
    const { cookie } = await signIn(asPassword("jo"));
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    for (let day = 0; day < 4; day++) {
      clock.at += 6 * DAY;
      expect((await get("/secure-data", { cookie })).status).toBe(200);
    }
    clock.at += 6 * DAY + 1000;
    expect((await get("/secure-data", { cookie })).status).toBe(401);
    await app.app.keyring.refresh();
    app.app.listener.revalidateSockets();
    expect((await probe.closed).code).toBe(4401);
  });
});

test("audit: session.created and session.ended name the session and the subject, never the cookie", () => {
  const audit = app.audit.join("");
  expect(audit).toContain('"audit":"session.created"');
  expect(audit).toContain('"subject":"user:jo","method":"password"');
  expect(audit).not.toContain("tgs_");
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
