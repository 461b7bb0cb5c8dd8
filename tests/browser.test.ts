/**
 * The console page in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser download), served with its real CSP: the tests wait with Playwright locators, which
 * need no `eval` in the page. One screenshot per scenario goes to tests/.artifacts/. Where
 * Chromium is not installed the tests say so and skip, except in CI, where that is a failure.
 */
import { insertApiKey } from "./support/keys.ts";
import { chromiumAvailable, PHONE, useChromium } from "./support/browser.ts";
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type BrowserContextOptions, type Page } from "playwright-core";
import { parseApiKey } from "../auth/secrets/keys.ts";
import { formatPairingCode, issuePairingCode } from "../auth/oauth/pairing.ts";
import { hashPassword } from "../auth/secrets/passwords.ts";
import { makeTempDir, rawRequest, ROOT, startTestApp, type TestApp } from "./support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";

const available = chromiumAvailable;
const ARTIFACTS = join(ROOT, "tests/.artifacts");

const browser = useChromium("browser tests", ARTIFACTS);

/** Console messages about the CSP, per page: the page's own files must never trip it. */
const cspReports = new WeakMap<Page, string[]>();

async function openConsole(app: { readonly http: string }, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser().newContext(options);
  const page = await context.newPage();
  const reports: string[] = [];
  cspReports.set(page, reports);
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) reports.push(message.text());
  });
  await page.goto(`${app.http}/`);
  return page;
}

const status = (page: Page) => page.getByTestId("status");
/** Playwright matches a plain string case-insensitively ("Not signed in." would match "Signed in."). */
const exactly = (text: string | RegExp) => (typeof text === "string" ? new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : text);
const logEntries = (page: Page, text: string | RegExp) => page.getByTestId("log").locator("li", { hasText: exactly(text) });
const logText = (page: Page) => page.getByTestId("log").innerText();
async function waitForLog(page: Page, text: string | RegExp, timeout = 5_000): Promise<void> {
  await logEntries(page, text).first().waitFor({ timeout });
}
async function waitForStatus(page: Page, text: string | RegExp, timeout = 5_000): Promise<void> {
  await status(page)
    .filter({ hasText: exactly(text) })
    .waitFor({ timeout });
}
const shoot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
/** "Connected." but not "Disconnected.". */
const CONNECTED = /\bConnected\.$/;
/** "Signed in." with a browser session, "Signed in, in this page only: …" with a token held in memory. */
const SIGNED_IN = /^Signed in[.,]/;
const IN_MEMORY = /^Signed in, in this page only: a reload signs you out\.$/;

/** An admin lands on Devices & keys: who they are, the socket and "Sign in as someone else" are on My account. */
async function openAccount(page: Page): Promise<void> {
  if (await page.getByTestId("nav-account").isVisible()) await page.getByTestId("nav-account").click();
}

/** Once someone is signed in, the ways to sign in fold under "Sign in as someone else". */
async function unfoldSignIn(page: Page): Promise<void> {
  await openAccount(page);
  if (await page.getByTestId("switch-user").isVisible()) await page.getByTestId("switch-user").click();
}

async function signInWithToken(page: Page, token: string): Promise<void> {
  await unfoldSignIn(page);
  await page.getByTestId("token-input").fill(token);
  await page.getByTestId("token-submit").click();
}

async function signInWithPassword(page: Page, username: string, password: string): Promise<void> {
  await unfoldSignIn(page);
  await page.getByTestId("username-input").fill(username);
  await page.getByTestId("password-input").fill(password);
  await page.getByTestId("password-submit").click();
}

async function connect(page: Page): Promise<void> {
  await openAccount(page);
  await page.getByTestId("connect").click();
  await waitForLog(page, "✅ WebSocket connected with valid token");
}

/** An API key in the app's store (tracked as a secret), usable at once. */
async function addKey(app: TestApp, name: string, expiresAt: number | null = null): Promise<string> {
  const key = await insertApiKey(app.store, { name, scopes: ["data:read", "ws:connect"], expiresAt });
  await app.app.keyring.refresh();
  return key.token;
}

async function addUser(app: TestApp, username: string): Promise<string> {
  const password = trackSecret(`${username}'s long password`);
  await app.store.insertUser({ username, passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
  return password;
}

async function waitForSockets(app: TestApp, count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (app.app.listener.sockets.size !== count && Date.now() < deadline) await Bun.sleep(20);
  expect(app.app.listener.sockets.size).toBe(count);
}

/** Which of the page's controls are disabled, by test id. */
async function disabled(page: Page, ...ids: string[]): Promise<Record<string, boolean>> {
  const states: Record<string, boolean> = {};
  for (const id of ids) states[id] = await page.getByTestId(id).isDisabled();
  return states;
}

describe.skipIf(!available)("console page in Chromium", () => {
  test("sign in with a token, see who I am, connect, echo; the CSP holds without a single violation", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await signInWithToken(page, app.token);
    // The bootstrap token opens no browser session: the page keeps it in memory and says so.
    await waitForStatus(page, IN_MEMORY);
    expect(await page.getByTestId("who").innerText()).toContain("bootstrap");
    expect(await page.getByTestId("who").innerText()).toContain("This page only: this token cannot open a browser session");
    await connect(page);
    await page.getByTestId("message-input").fill("hello from chromium");
    await page.getByTestId("send").click();
    await waitForLog(page, "← hello from chromium");
    // The page's script, stylesheet and WebSocket (connect-src 'self' covers ws: on this host) all ran.
    expect(cspReports.get(page)).toEqual([]);
    await shoot(page, "sign-in-connect-echo");
  }, 30_000);

  test("a wrong token is explained in plain words (not a bare 1006)", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await signInWithToken(page, newSecret());
    await waitForStatus(page, "This credential is not valid (wrong or unknown token).");
    expect(await page.getByTestId("connect").isDisabled()).toBe(true);
    await shoot(page, "wrong-token");
  }, 30_000);

  test("revoking the key closes the socket; the page says so in words and signs out", async () => {
    await using app = await startTestApp();
    const key = await addKey(app, "kiosk");
    const page = await openConsole(app);
    await signInWithToken(page, key);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await app.store.revokeKey(parseApiKey(key)!.id, Date.now());
    await app.app.keyring.refresh();
    await waitForLog(page, "Connection closed: Your access was revoked");
    expect(await status(page).innerText()).toContain("Your access was revoked");
    expect(`${await status(page).innerText()}\n${await logText(page)}`).not.toMatch(/\b4403\b/);
    expect(await page.getByTestId("who").innerText()).toContain("nobody");
    expect(await disabled(page, "send", "message-input", "connect", "sign-out")).toEqual({
      send: true,
      "message-input": true,
      connect: true,
      "sign-out": true,
    });
    await shoot(page, "revoked");
  }, 30_000);

  test("reconnects by itself after the server restarts", async () => {
    const token = newSecret();
    const first = await startTestApp({ AUTH_TOKEN: token });
    const port = first.app.listener.server.port!;
    const page = await openConsole(first);
    await signInWithToken(page, token);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await first[Symbol.asyncDispose]();
    await waitForLog(page, "Connection closed: The server is restarting or shutting down");
    await using second = await startTestApp({ AUTH_TOKEN: token, PORT: String(port) });
    await logEntries(page, CONNECTED).nth(1).waitFor({ timeout: 15_000 });
    expect(await logText(page)).toContain("retrying in");
    expect(await logText(page)).not.toMatch(/\b1001\b/);
    expect(await status(page).innerText()).toBe("Connected.");
    await shoot(page, "reconnect-after-restart");
    void second;
  }, 45_000);

  test("password sign-in on a phone-sized screen", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "kim");
    const page = await openConsole(app, PHONE);
    await signInWithPassword(page, "kim", password);
    await waitForStatus(page, "Signed in.");
    expect(await status(page).innerText()).toBe("Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("kim (user)");
    expect(await page.getByTestId("who").innerText()).toContain("This browser, until you sign out or ");
    // The socket rides on the session cookie: no token in the page at all.
    await connect(page);
    await shoot(page, "phone-password-sign-in");
  }, 30_000);
});

describe.skipIf(!available)("keyboard only", () => {
  test("sign in, connect, send, disconnect and sign out without a mouse; focus never falls off the page", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "kbd");
    const page = await openConsole(app);
    const focused = () => page.evaluate(`document.activeElement?.dataset?.testid ?? document.activeElement?.tagName`);
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("username-input");
    await page.keyboard.type("kbd");
    await page.keyboard.press("Tab");
    await page.keyboard.type(password);
    await page.keyboard.press("Enter");
    await waitForStatus(page, "Signed in.");
    // The form folded away; focus went on to the next step, Connect.
    expect(await focused()).toBe("connect");
    await page.keyboard.press("Enter");
    await waitForLog(page, "✅ WebSocket connected with valid token");
    // Connect disabled itself; focus went to the next step, Disconnect, and Tab reaches the message box.
    expect(await focused()).toBe("disconnect");
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("message-input");
    await page.keyboard.type("typed only");
    await page.keyboard.press("Enter");
    await waitForLog(page, "← typed only");
    await page.getByTestId("disconnect").focus();
    await page.keyboard.press("Enter");
    await waitForStatus(page, "Disconnected.");
    expect(await focused()).toBe("connect");
    await page.getByTestId("sign-out").focus();
    await page.keyboard.press("Enter");
    await waitForStatus(page, "Signed out.");
    expect(await focused()).toBe("username-input");
    // "Sign in as someone else" opens and closes from the keyboard too.
    await signInWithToken(page, app.token);
    await waitForStatus(page, IN_MEMORY);
    // An admin lands on Devices & keys with focus on the page links; My account is reached from them by keyboard.
    expect(await focused()).toBe("nav-keys");
    await page.getByTestId("nav-account").focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("switch-user").waitFor();
    await page.getByTestId("switch-user").focus();
    await page.keyboard.press("Enter");
    expect(await page.getByTestId("token-input").isVisible()).toBe(true);
  }, 30_000);
});

describe.skipIf(!available)("framing and headers (clickjacking)", () => {
  test("a page on another origin cannot frame the console", async () => {
    await using app = await startTestApp();
    // The other origin: same address, another port, a page that frames the console.
    const attacker = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () =>
        new Response(`<!doctype html><title>prize</title><iframe id="victim" src="${app.http}/" width="600" height="500"></iframe>`, {
          headers: { "content-type": "text/html" },
        }),
    });
    try {
      const context = await browser().newContext();
      const page = await context.newPage();
      const messages: string[] = [];
      page.on("console", (message) => void messages.push(message.text()));
      const blocked = page.waitForEvent("requestfailed", { predicate: (request) => request.url() === `${app.http}/`, timeout: 5_000 });
      await page.goto(`http://127.0.0.1:${attacker.port}/`);
      expect((await blocked).failure()?.errorText).toBe("net::ERR_BLOCKED_BY_RESPONSE");
      const frame = page.frames().find((candidate) => candidate !== page.mainFrame());
      expect(frame).toBeDefined();
      // Blocked: Chromium shows its error page in the frame, never the console's controls.
      expect(await frame!.locator("[data-testid=token-input]").count()).toBe(0);
      expect(frame!.url()).not.toBe(`${app.http}/`);
      expect(messages.some((text) => text.includes("frame-ancestors 'none'"))).toBe(true);
      await shoot(page, "framing-blocked");
    } finally {
      await attacker.stop(true);
    }
  }, 30_000);
});

describe.skipIf(!available)("forms before (or without) the script", () => {
  test("with JavaScript off, a token typed and Enter go in a POST body to /auth/login, never a URL; the console's own controls stay off", async () => {
    await using app = await startTestApp({ ACCESS_LOG: "all" });
    const context = await browser().newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const urls: string[] = [];
    page.on("request", (request) => void urls.push(`${request.method()} ${request.url()}`));
    await page.goto(`${app.http}/`);
    const token = newSecret();
    // Sign-in works without the script; pairing and the socket need it.
    expect(await disabled(page, "token-input", "token-submit", "password-input", "password-submit", "pair-code")).toEqual({
      "token-input": false,
      "token-submit": false,
      "password-input": false,
      "password-submit": false,
      "pair-code": true,
    });
    expect(await page.getByTestId("noscript").isVisible()).toBe(true);
    expect(await page.getByTestId("connect").isVisible()).toBe(false);
    await page.getByTestId("token-input").fill(token);
    await page.getByTestId("token-input").press("Enter");
    await page.waitForURL(/error=invalid_token/);
    expect(urls).toContain(`POST ${app.http}/auth/login`);
    expect(urls.filter((url) => url.includes(token) || url.includes(encodeURIComponent(token)))).toEqual([]);
    expect(app.lines.filter((line) => line.includes('"msg":"request"') && (line.includes("token=") || line.includes("api_key=")))).toEqual(
      [],
    );
    await shoot(page, "no-javascript");
  }, 30_000);

  test("Enter before the script ran: the sign-in form posts to /auth/login, the pairing code (forced on) to the page; no secret in any URL", async () => {
    await using app = await startTestApp({ ACCESS_LOG: "all" });
    const context = await browser().newContext();
    const page = await context.newPage();
    // The script never arrives (slow network, blocked), and something enabled the pairing code anyway.
    await page.route("**/*.js", (route) => route.abort());
    const urls: string[] = [];
    page.on("request", (request) => void urls.push(`${request.method()} ${request.url()}`));
    await page.goto(`${app.http}/`);
    const token = newSecret();
    await page.getByTestId("token-input").fill(token);
    const posted = page.waitForResponse((response) => response.request().method() === "POST");
    await page.getByTestId("token-input").press("Enter");
    expect((await posted).status()).toBe(303);
    await page.waitForURL(/\/auth\/login\?.*error=invalid_token/);
    await page.evaluate(`for (const control of document.querySelectorAll("#pair-form input, #pair-form button")) control.disabled = false`);
    await page.evaluate(`document.getElementById("pairing").hidden = false`);
    await page.getByTestId("pair-code").fill("123456");
    const paired = page.waitForResponse((response) => response.request().method() === "POST");
    await page.getByTestId("pair-code").press("Enter");
    expect((await paired).status()).toBe(303);
    expect(urls.filter((url) => url.startsWith("POST "))).toEqual([`POST ${app.http}/auth/login`, `POST ${app.http}/`]);
    expect(urls.filter((url) => url.includes(token) || url.includes(encodeURIComponent(token)) || url.includes("123456"))).toEqual([]);
    expect(app.lines.some((line) => line.includes('"method":"POST"') && line.includes('"path":"/"') && line.includes('"status":303'))).toBe(
      true,
    );
  }, 30_000);
});

describe.skipIf(!available)("expiry warnings", () => {
  test("an API key about to expire: one plain warning, no renewal loop", async () => {
    await using app = await startTestApp();
    // 61 s ahead: inside the server's 60 s warning window about a second from now.
    const key = await addKey(app, "short-lived", Date.now() + 61_000);
    const page = await openConsole(app);
    await signInWithToken(page, key);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await waitForLog(page, "cannot be renewed", 10_000);
    // Before the mend, the page logged about 4 warning/refreshed pairs a second from here on.
    await page.waitForTimeout(3_000);
    expect(await logEntries(page, /expires in \d+ s/).count()).toBe(1);
    expect(await logEntries(page, /Sign-in renewed|renewing it/).count()).toBe(0);
    expect(await logEntries(page, /cannot be renewed/).getAttribute("class")).toBe("warn");
    expect(app.lines.filter((line) => line.includes("ws.reauth"))).toEqual([]);
    await shoot(page, "api-key-expiring");
  }, 30_000);
});

describe.skipIf(!available)("browser sessions", () => {
  test("a password sign-in opens a session: a reload keeps it, the socket rides on it; Sign out ends it and a reload shows signed out", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "ren");
    const page = await openConsole(app);
    await signInWithPassword(page, "ren", password);
    await waitForStatus(page, "Signed in.");
    const cookies = await page.context().cookies();
    expect(cookies.map((cookie) => [cookie.name, cookie.httpOnly, cookie.sameSite])).toEqual([["tgs", true, "Lax"]]);
    expect(await page.evaluate("document.cookie")).toBe("");

    await page.reload();
    await waitForStatus(page, "Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("ren (user)");
    await connect(page);
    await page.getByTestId("message-input").fill("on the cookie");
    await page.getByTestId("send").click();
    await waitForLog(page, "← on the cookie");

    await page.getByTestId("sign-out").click();
    await waitForStatus(page, "Signed out.");
    await waitForSockets(app, 0);
    expect(await page.getByTestId("who").innerText()).toContain("nobody");
    await page.reload();
    await page.waitForLoadState("networkidle");
    expect(await status(page).innerText()).toBe("Not signed in.");
    expect(await page.getByTestId("sign-out").isDisabled()).toBe(true);
    await shoot(page, "session-signed-out");
  }, 30_000);

  test("Sign out everywhere ends this person's sessions in other browsers too", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "eve");
    const laptop = await openConsole(app);
    const phone = await openConsole(app, PHONE);
    for (const page of [laptop, phone]) {
      await signInWithPassword(page, "eve", password);
      await waitForStatus(page, "Signed in.");
    }
    await connect(phone);
    await laptop.getByTestId("sign-out-everywhere").click();
    await waitForStatus(laptop, "Signed out everywhere (2 sessions ended).");
    // The phone's socket goes with its session, and the page says so.
    await waitForLog(phone, /Connection closed|Refused/, 10_000);
    expect(await phone.getByTestId("who").innerText()).toContain("nobody");
    await phone.reload();
    await phone.waitForLoadState("networkidle");
    // Its cookie is still there but ends nothing now: the page says the session has ended.
    expect(await status(phone).innerText()).toBe("Your browser session has ended. Sign in again.");
  }, 30_000);

  test("Connect after the session ended elsewhere: the refused upgrade is explained (asked over HTTP with the cookie), not retried", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "ida");
    const page = await openConsole(app);
    const other = await openConsole(app);
    for (const each of [page, other]) {
      await signInWithPassword(each, "ida", password);
      await waitForStatus(each, "Signed in.");
    }
    await other.getByTestId("sign-out-everywhere").click();
    await waitForStatus(other, /^Signed out everywhere/);
    await page.getByTestId("connect").click();
    await waitForStatus(page, "Your browser session has ended (signed out elsewhere, or expired). Sign in again.");
    expect(await logText(page)).not.toContain("retrying in");
    expect(await page.getByTestId("who").innerText()).toContain("nobody");
    expect(`${await status(page).innerText()}\n${await logText(page)}`).not.toMatch(/\b1006\b/);
  }, 30_000);

  test("a wrong password while signed in leaves the session as it was, and says so", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "max");
    const page = await openConsole(app);
    await signInWithPassword(page, "max", password);
    await waitForStatus(page, "Signed in.");
    await signInWithPassword(page, "max", "not it");
    await waitForStatus(page, "Wrong username or password. You are still signed in as before.");
    expect(await page.getByTestId("who").innerText()).toContain("max (user)");
    await page.reload();
    await waitForStatus(page, "Signed in.");
  }, 30_000);
});

describe.skipIf(!available)("the page follows the server's answers", () => {
  test("Sign out: token gone, socket closed, nobody shown, everything but sign-in disabled", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await signInWithToken(page, app.token);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await waitForSockets(app, 1);
    await page.getByTestId("sign-out").click();
    await waitForStatus(page, "Signed out.");
    await waitForSockets(app, 0);
    expect(await page.getByTestId("who").innerText()).toContain("nobody");
    expect(await page.getByTestId("token-input").inputValue()).toBe("");
    expect(await disabled(page, "connect", "disconnect", "send", "message-input", "sign-out", "token-submit")).toEqual({
      connect: true,
      disconnect: true,
      send: true,
      "message-input": true,
      "sign-out": true,
      "token-submit": false,
    });
    await shoot(page, "signed-out");
  }, 30_000);

  test("a refused token after a good one: old identity gone, socket closed, Send disabled", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await signInWithToken(page, app.token);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await waitForSockets(app, 1);
    await signInWithToken(page, newSecret());
    await waitForStatus(page, "This credential is not valid");
    await waitForSockets(app, 0);
    expect(await page.getByTestId("who").innerText()).toContain("nobody");
    expect(await disabled(page, "send", "message-input", "connect", "disconnect")).toEqual({
      send: true,
      "message-input": true,
      connect: true,
      disconnect: true,
    });
    expect(await status(page).getAttribute("class")).toBe("bad");
  }, 30_000);

  test("my own Disconnect says 'Disconnected.' in a neutral tone, with no close code", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await signInWithToken(page, app.token);
    await waitForStatus(page, SIGNED_IN);
    await connect(page);
    await page.getByTestId("disconnect").click();
    await waitForStatus(page, "Disconnected.");
    await waitForSockets(app, 0);
    expect(await status(page).innerText()).toBe("Disconnected.");
    expect(await status(page).getAttribute("class")).toBe("");
    expect(await logEntries(page, "Disconnected.").getAttribute("class")).toBeNull();
    expect(`${await status(page).innerText()}\n${await logText(page)}`).not.toMatch(/\b1000\b|Closed/);
    // Still signed in: Connect works again.
    expect(await page.getByTestId("connect").isEnabled()).toBe(true);
    await page.getByTestId("connect").click();
    await logEntries(page, CONNECTED).nth(1).waitFor({ timeout: 5_000 });
  }, 30_000);
});

/** Pairs the page with a live code from the app's store; returns the key the page shows. */
async function pairPage(app: TestApp, page: Page): Promise<string> {
  await page.getByTestId("pair-code").waitFor({ state: "visible", timeout: 5_000 });
  const issued = await issuePairingCode(app.store, Date.now());
  await page.getByTestId("pair-code").fill(formatPairingCode(trackSecret(issued!.code)));
  await page.getByTestId("pair-submit").click();
  await waitForStatus(page, SIGNED_IN);
  return trackSecret(await page.getByTestId("paired-key").innerText());
}

describe.skipIf(!available)("first-run pairing", () => {
  test("on a phone: the code from the device buys the admin key, shown once, and signs the page in; Copy stores it and hides it", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app, { ...PHONE, permissions: ["clipboard-read", "clipboard-write"] });
    await page.getByTestId("pair-code").waitFor({ state: "visible", timeout: 5_000 });
    // The checkout's own command, as the server reports it.
    expect(await page.getByTestId("pair-command").innerText()).toBe("bun run cli pair");
    await page.getByTestId("pair-code").fill("000 000");
    await page.getByTestId("pair-submit").click();
    await waitForStatus(page, "Pairing refused: The pairing code is wrong, expired or already used");
    expect(await status(page).innerText()).toContain("bun run cli pair");

    const key = await pairPage(app, page);
    expect(key).toMatch(/^tg_[0-9a-f]{12}_/);
    expect(await page.getByTestId("pair-form").isVisible()).toBe(false);
    expect(await page.getByTestId("who").innerText()).toContain("admin (paired in a browser)");
    await connect(page);
    await shoot(page, "pairing-phone");

    await page.getByTestId("copy-key").click();
    await waitForStatus(page, "Key copied.");
    expect(await page.evaluate("navigator.clipboard.readText()")).toBe(key);
    expect(await page.getByTestId("paired").isVisible()).toBe(false);
    expect(await page.content()).not.toContain(key);

    // Once paired, a fresh visit shows no pairing section at all.
    const later = await openConsole(app);
    await later.waitForLoadState("networkidle");
    expect(await later.getByTestId("pairing").isVisible()).toBe(false);
  }, 30_000);

  test("the one-time key leaves the screen when another credential signs in", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    const key = await pairPage(app, page);
    expect(await page.getByTestId("paired").isVisible()).toBe(true);
    await signInWithToken(page, app.token);
    await page.getByTestId("who").filter({ hasText: "bootstrap" }).waitFor({ timeout: 5_000 });
    expect(await page.getByTestId("paired").isVisible()).toBe(false);
    expect(await page.content()).not.toContain(key);
  }, 30_000);
});

/**
 * In the page: the WCAG contrast ratio of each probed element's text colour against the first
 * opaque background behind it, after putting the page in each state worth checking.
 */
const CONTRAST_PROBE = String.raw`(() => {
  const rgb = (text) => { const [r, g, b, a = 1] = text.match(/[\d.]+/g).map(Number); return { r, g, b, a }; };
  const channel = (v) => { const c = v / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  // With no background set anywhere, the canvas shows: Chromium paints it #121212 in a dark scheme.
  const darkCanvas = matchMedia("(prefers-color-scheme: dark)").matches && getComputedStyle(document.documentElement).colorScheme.includes("dark");
  const canvas = darkCanvas ? { r: 18, g: 18, b: 18, a: 1 } : { r: 255, g: 255, b: 255, a: 1 };
  const backdrop = (element) => {
    for (let at = element; at !== null; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.a === 1) return colour;
      if (colour.a !== 0) return null;
    }
    return canvas;
  };
  const opacity = (element) => { let o = 1; for (let at = element; at !== null; at = at.parentElement) o *= Number(getComputedStyle(at).opacity); return o; };
  const measure = (name, element, pseudo) => {
    const colour = rgb(getComputedStyle(element, pseudo).color);
    const back = backdrop(element);
    if (back === null || colour.a !== 1 || opacity(element) !== 1) return { name, ratio: 0, why: "translucent" };
    const [hi, lo] = [luminance(colour), luminance(back)].sort((x, y) => y - x);
    return { name, ratio: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100 };
  };
  const results = [];
  const status = document.getElementById("status");
  const shown = status.className;
  for (const tone of ["", "good", "bad", "warn"]) { status.className = tone; results.push(measure("status " + (tone || "neutral"), status)); }
  status.className = shown;
  const log = document.getElementById("log");
  for (const tone of ["", "in", "bad", "warn"]) {
    const item = document.createElement("li");
    item.textContent = "12:00:00 sample " + (tone || "plain") + " line";
    if (tone !== "") item.className = tone;
    log.append(item);
    results.push(measure("log " + (tone || "plain"), item));
  }
  const enabled = document.querySelector("[data-testid=token-submit]");
  const off = document.querySelector("[data-testid=disconnect]");
  results.push(measure("button enabled", enabled), measure("button disabled (" + off.disabled + ")", off));
  results.push(measure("input disabled placeholder", document.getElementById("message"), "::placeholder"));
  results.push(measure("input", document.getElementById("token")));
  results.push(measure("button primary", document.querySelector("button.primary")));
  for (const selector of ["label[for=token]", "h1", "h2", "dt", "dd", "#pair-intro", "#pair-command", "#paired-note", "#paired-key", "#switch-user", ".or", "#passkey-note"]) {
    results.push(measure(selector, document.querySelector(selector)));
  }
  return results;
})()`;

describe.skipIf(!available)("contrast (WCAG AA) in both themes", () => {
  for (const scheme of ["light", "dark"] as const) {
    test(`${scheme}: every text reaches 4.5:1, disabled controls included; screenshots at desktop and phone size`, async () => {
      await using app = await startTestApp();
      for (const [size, options] of [
        ["desktop", { viewport: { width: 1280, height: 900 } }],
        ["phone", PHONE],
      ] as const) {
        const page = await openConsole(app, { ...options, colorScheme: scheme });
        await page.getByTestId("pairing").waitFor({ state: "visible", timeout: 5_000 });
        await signInWithToken(page, app.token);
        await waitForStatus(page, SIGNED_IN);
        await unfoldSignIn(page);
        // The one-time key's box too, as it looks right after pairing.
        await page.evaluate(
          `document.getElementById("paired").hidden = false; document.getElementById("paired-key").textContent = "tg_0123456789ab_an-example-not-a-key"`,
        );
        const results = (await page.evaluate(CONTRAST_PROBE)) as Array<{ name: string; ratio: number }>;
        const failing = results.filter((result) => !(result.ratio >= 4.5));
        expect({ scheme, size, failing }).toEqual({ scheme, size, failing: [] });
        expect(results.find((result) => result.name.startsWith("button disabled"))!.name).toBe("button disabled (true)");
        await shoot(page, `theme-${scheme}-${size}`);
      }
    }, 30_000);
  }
});

/** Compiles tokengate.ts as `bun run build` does (this machine's target) and starts `serve`. */
async function startBinary(dir: string, token: string): Promise<{ http: string; port: number; stop(): Promise<void> }> {
  const binary = join(dir, "tokengate");
  const build = Bun.spawn(
    [process.execPath, "build", "--compile", "--bytecode", "--minify", "--target=bun-linux-x64", "./tokengate.ts", "--outfile", binary],
    {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  if ((await build.exited) !== 0) throw new Error(`bun build failed: ${await new Response(build.stderr).text()}`);
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    DATA_DIR: dir,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_FORMAT: "json",
    AUTH_TOKEN: token,
  };
  const server = Bun.spawn([binary, "serve"], { env, stdout: "pipe", stderr: "pipe" });
  let log = "";
  const pump = (async () => {
    for await (const chunk of server.stdout) {
      const text = new TextDecoder().decode(chunk);
      log += text;
      captureOutput(text);
    }
  })();
  const deadline = Date.now() + 10_000;
  let listening: RegExpExecArray | null = null;
  while ((listening = /"msg":"listening".*?"port":(\d+)/.exec(log)) === null && Date.now() < deadline) await Bun.sleep(20);
  if (listening === null) throw new Error("the binary did not start listening");
  const port = Number(listening[1]);
  return {
    http: `http://127.0.0.1:${port}`,
    port,
    async stop() {
      server.kill("SIGTERM");
      await server.exited;
      await pump;
    },
  };
}

describe.skipIf(!available)("the console in the compiled binary", () => {
  test("its embedded page and hashed assets carry the headers and the Host check, and the page works under the CSP", async () => {
    using dir = makeTempDir("tokengate-console-binary-");
    const token = newSecret();
    const server = await startBinary(dir.path, token);
    try {
      const page = await fetch(`${server.http}/`);
      expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(page.headers.get("cache-control")).toBe("no-cache");
      const assets = [...(await page.text()).matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((match) => match[1]!);
      expect(assets.length).toBeGreaterThanOrEqual(2);
      for (const path of ["/", ...assets]) {
        const asset = await fetch(`${server.http}${path}`);
        expect(`${path} ${asset.status} ${asset.headers.get("x-frame-options")}`).toBe(`${path} 200 DENY`);
        if (path !== "/") expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
        const foreign = await rawRequest(server.port, `GET ${path} HTTP/1.1\r\nHost: evil.com\r\nConnection: close\r\n\r\n`);
        expect(`${path} ${foreign.status}`).toBe(`${path} 421`);
      }

      const browserPage = await openConsole(server);
      await browserPage.getByTestId("pairing").waitFor({ state: "visible", timeout: 5_000 });
      // The binary names its own command.
      expect(await browserPage.getByTestId("pair-command").innerText()).toBe("tokengate pair");
      await signInWithToken(browserPage, token);
      await waitForStatus(browserPage, SIGNED_IN);
      await connect(browserPage);
      expect(cspReports.get(browserPage)).toEqual([]);
      await shoot(browserPage, "binary-console");
    } finally {
      await server.stop();
    }
  }, 60_000);
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
