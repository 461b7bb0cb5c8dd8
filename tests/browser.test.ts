/**
 * The console page in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser download). One screenshot per scenario goes to tests/.artifacts/. Where Chromium is
 * not installed the tests say so and skip, except in CI, where that is a failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { generateApiKey } from "../auth/keys.ts";
import { formatPairingCode, issuePairingCode } from "../auth/pairing.ts";
import { hashPassword } from "../auth/passwords.ts";
import { digestToken } from "../auth/tokens.ts";
import { ROOT, startTestApp, type TestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
const ARTIFACTS = join(ROOT, "tests/.artifacts");

if (!available && process.env.CI === "true") {
  test("Chromium is installed (CI must run the browser tests)", () => {
    expect(`${CHROMIUM} exists`).toBe(`${CHROMIUM} is missing: .ci/run should have installed Debian's chromium`);
  });
}
if (!available) console.warn(`browser tests skipped: ${CHROMIUM} not found (apt-get install chromium)`);

let browser: Browser;
beforeAll(async () => {
  if (!available) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in a sandbox, no GPU, and a closed network: without these Chromium retries outbound calls.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
afterAll(async () => {
  if (available) await browser.close();
});

async function openConsole(app: TestApp, phone = false): Promise<Page> {
  const context = await browser.newContext(phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : {});
  const page = await context.newPage();
  await page.goto(`${app.http}/`);
  return page;
}

const status = (page: Page) => page.getByTestId("status");
const logText = (page: Page) => page.getByTestId("log").innerText();
// Predicates run in the page; they are strings so this file needs no DOM types.
async function waitForLog(page: Page, text: string, timeout = 5_000): Promise<void> {
  await page.waitForFunction(`document.getElementById("log").innerText.includes(${JSON.stringify(text)})`, undefined, { timeout });
}
async function waitForStatus(page: Page, text: string, timeout = 5_000): Promise<void> {
  await page.waitForFunction(`document.getElementById("status").innerText.includes(${JSON.stringify(text)})`, undefined, { timeout });
}
const shoot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

describe.skipIf(!available)("console page in Chromium", () => {
  test("sign in with a token, see who I am, connect, echo", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await page.getByTestId("token-input").fill(app.token);
    await page.getByTestId("token-submit").click();
    await waitForStatus(page, "Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("bootstrap");
    await page.getByTestId("connect").click();
    await waitForLog(page, "✅ WebSocket connected with valid token");
    await page.getByTestId("message-input").fill("hello from chromium");
    await page.getByTestId("send").click();
    await waitForLog(page, "← hello from chromium");
    await shoot(page, "sign-in-connect-echo");
  }, 30_000);

  test("a wrong token is explained in plain words (not a bare 1006)", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app);
    await page.getByTestId("token-input").fill(newSecret());
    await page.getByTestId("token-submit").click();
    await waitForStatus(page, "This credential is not valid (wrong or unknown token).");
    expect(await page.getByTestId("connect").isDisabled()).toBe(true);
    await shoot(page, "wrong-token");
  }, 30_000);

  test("revoking the key closes the socket with 4403, shown as revoked", async () => {
    await using app = await startTestApp();
    const key = generateApiKey();
    trackSecret(key.token);
    await app.store.insertKey({ id: key.id, name: "kiosk", scopes: ["data:read", "ws:connect"], secretHash: digestToken(key.secret), createdAt: Date.now(), expiresAt: null });
    await app.app.keyring.refresh();
    const page = await openConsole(app);
    await page.getByTestId("token-input").fill(key.token);
    await page.getByTestId("token-submit").click();
    await page.getByTestId("connect").click();
    await waitForLog(page, "connected");
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    await waitForLog(page, "closed 4403");
    expect(await status(page).innerText()).toContain("Your access was revoked");
    await shoot(page, "revoked-4403");
  }, 30_000);

  test("reconnects by itself after the server restarts", async () => {
    const token = newSecret();
    const first = await startTestApp({ AUTH_TOKEN: token });
    const port = first.app.listener.server.port!;
    const page = await openConsole(first);
    await page.getByTestId("token-input").fill(token);
    await page.getByTestId("token-submit").click();
    await page.getByTestId("connect").click();
    await waitForLog(page, "connected");
    await first[Symbol.asyncDispose]();
    await waitForLog(page, "closed 1001");
    await using second = await startTestApp({ AUTH_TOKEN: token, PORT: String(port) });
    await page.waitForFunction(`(document.getElementById("log").innerText.match(/connected\\n/g) || []).length >= 2`, undefined, { timeout: 15_000 });
    expect(await logText(page)).toContain("retrying in");
    expect(await status(page).innerText()).toBe("Connected.");
    await shoot(page, "reconnect-after-restart");
    void second;
  }, 45_000);

  test("first-run pairing on a phone: the code from the device buys the admin key, shown once, and signs the page in", async () => {
    await using app = await startTestApp();
    const page = await openConsole(app, true);
    await page.getByTestId("pair-code").waitFor({ state: "visible", timeout: 5_000 });
    await page.getByTestId("pair-code").fill("000 000");
    await page.getByTestId("pair-submit").click();
    await waitForStatus(page, "Pairing refused: The pairing code is wrong, expired or already used");

    const issued = await issuePairingCode(app.store, Date.now());
    await page.getByTestId("pair-code").fill(formatPairingCode(trackSecret(issued!.code)));
    await page.getByTestId("pair-submit").click();
    await waitForStatus(page, "Signed in.");
    const key = trackSecret(await page.getByTestId("paired-key").innerText());
    expect(key).toMatch(/^tg_[0-9a-f]{12}_/);
    expect(await page.getByTestId("pair-form").isVisible()).toBe(false);
    expect(await page.getByTestId("who").innerText()).toContain("admin (paired in a browser)");
    await page.getByTestId("connect").click();
    await waitForLog(page, "✅ WebSocket connected with valid token");
    await shoot(page, "pairing-phone");

    // Once paired, a fresh visit shows no pairing section at all.
    const later = await openConsole(app);
    await later.waitForLoadState("networkidle");
    expect(await later.getByTestId("pairing").isVisible()).toBe(false);
  }, 30_000);

  test("password sign-in on a phone-sized screen", async () => {
    await using app = await startTestApp();
    const password = trackSecret("kim's long password");
    await app.store.insertUser({ username: "kim", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
    await app.app.keyring.refresh();
    const page = await openConsole(app, true);
    await page.getByTestId("username-input").fill("kim");
    await page.getByTestId("password-input").fill(password);
    await page.getByTestId("password-submit").click();
    await waitForStatus(page, "Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("kim (user)");
    await page.getByTestId("connect").click();
    await waitForLog(page, "✅ WebSocket connected with valid token");
    await shoot(page, "phone-password-sign-in");
  }, 30_000);
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
