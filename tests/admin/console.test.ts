/**
 * The admin console in a real headless Chromium (Debian's), against the real app over real
 * sockets: an admin on a phone makes a key (copied, and its QR code decoded by an independent
 * decoder, jsQR, from the pixels Chromium drew), revokes a device whose WebSocket is open (the
 * socket closes 4403; the time is printed), lifts a ban and adds a person; a viewer sees only
 * their own account and gets 403 from the API. axe-core checks every page in both themes, every
 * control is a 44 px target at phone size, and every page is saved as a screenshot at desktop and
 * phone size (tests/.artifacts/admin/).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { BrowserContextOptions, Page } from "playwright-core";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { chromiumAvailable, decodeQr, DESKTOP, PHONE, seriousViolations, smallTargets, useChromium } from "../support/browser.ts";
import { ROOT, startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const ARTIFACTS = join(ROOT, "tests/.artifacts/admin");
const VIEWS = ["keys", "people", "sessions", "bans", "signing-keys", "activity", "account"] as const;

const browser = useChromium("admin console tests", ARTIFACTS);

/** A page of its own browser context; every page error fails the test that caused it. */
async function openPage(app: TestApp, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser().newContext({ ...options, permissions: ["clipboard-read", "clipboard-write"] });
  const page = await context.newPage();
  page.on("pageerror", (error) => captureOutput(`pageerror: ${error.message}`));
  await page.goto(`${app.http}/`);
  return page;
}

async function signInWithKey(page: Page, key: string): Promise<void> {
  await page.getByTestId("token-input").fill(key);
  await page.getByTestId("token-submit").click();
}

async function signInWithPassword(page: Page, username: string, password: string): Promise<void> {
  await page.getByTestId("username-input").fill(username);
  await page.getByTestId("password-input").fill(password);
  await page.getByTestId("password-submit").click();
}

const status = (page: Page) => page.getByTestId("status");

async function waitForStatus(page: Page, text: RegExp): Promise<void> {
  // Generous: argon2 on a loaded two-core machine; a wait, not a measure.
  await status(page).filter({ hasText: text }).waitFor({ timeout: 15_000 });
}

async function openView(page: Page, view: (typeof VIEWS)[number]): Promise<void> {
  await page.getByTestId(`nav-${view}`).click();
  await page.getByTestId(`view-${view}`).waitFor();
}

/** Answers yes in the confirmation dialog. */
async function confirm(page: Page): Promise<void> {
  await page.getByTestId("confirm-yes").click();
}

interface Seeded {
  readonly admin: string;
  readonly viewerPassword: string;
}

/** An admin key, a viewer with a password, and a device key that expires in three days. */
async function seed(app: TestApp): Promise<Seeded> {
  const admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  await insertApiKey(app.store, { name: "hall sensor", scopes: ["data:read"], expiresAt: Date.now() + 3 * 86_400_000 });
  const viewerPassword = trackSecret("the viewer's long password");
  await app.store.insertUser({
    username: "vi",
    passwordHash: await hashPassword(viewerPassword),
    roles: ["viewer"],
    createdAt: Date.now(),
  });
  await app.app.keyring.refresh();
  return { admin: admin.token, viewerPassword };
}

describe.skipIf(!chromiumAvailable)("the admin console on a phone", () => {
  test("make a key: copy it, its QR code decodes to it, it works; Done takes it off the page", async () => {
    await using app = await startTestApp();
    const { admin } = await seed(app);
    const page = await openPage(app, PHONE);
    await signInWithKey(page, admin);
    await page.getByTestId("view-keys").waitFor();
    await page.getByTestId("key-name").fill("garage door");
    await page.getByTestId("key-create").click();
    await waitForStatus(page, /^Key for "garage door" made\./);
    const secret = trackSecret((await page.getByTestId("new-key").innerText()).trim());
    expect(secret).toMatch(/^tg_[0-9a-f]{12}_/);
    await page.getByTestId("copy-new-key").click();
    await waitForStatus(page, /^Key copied\./);
    expect(await page.evaluate<string>("navigator.clipboard.readText()")).toBe(secret);
    expect(await decodeQr(page, "#new-key-qr svg")).toBe(secret);
    const works = await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": secret } });
    expect(works.status).toBe(200);
    await page.screenshot({ path: join(ARTIFACTS, "key-made-phone.png"), fullPage: true });
    await page.getByTestId("hide-new-key").click();
    expect(await page.content()).not.toContain(secret);
    expect(await page.getByTestId("keys-active").innerText()).toContain("garage door");
    expectNoSecretsInOutput();
  }, 30_000);

  test("revoke a device while its WebSocket is open: the socket closes with 4403", async () => {
    await using app = await startTestApp();
    const { admin } = await seed(app);
    const device = await insertApiKey(app.store, { name: "kitchen tablet", scopes: ["ws:connect"] });
    await app.app.keyring.refresh();
    const socket = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ "x-auth-token": device.token }) });
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      socket.socket.addEventListener("close", (event) => resolve({ code: event.code, at: performance.now() })),
    );
    expect(await socket.opened).toBe(true);
    expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    const page = await openPage(app, PHONE);
    await signInWithKey(page, admin);
    await page.getByTestId(`revoke-${device.id}`).click();
    const clicked = performance.now();
    await confirm(page);
    const { code, at } = await closed;
    expect(code).toBe(4403);
    console.log(`revoke in the console → device socket closed 4403 after ${(at - clicked).toFixed(0)} ms (click to close event)`);
    expect(at - clicked).toBeLessThan(5_000);
    await waitForStatus(page, /^Revoked "kitchen tablet"\./);
    // Revoked keys are listed apart, under a folded "Revoked and expired".
    expect(await page.getByTestId("keys-ended").textContent()).toContain("kitchen tablet");
    expect(await page.getByTestId("keys-active").textContent()).not.toContain("kitchen tablet");
  }, 30_000);

  test("lift the bans ten wrong guesses set: the device is let in again", async () => {
    // Nobody exempt, and the loopback peer a trusted proxy: the guesser is the address it forwards.
    await using app = await startTestApp({ BAN_EXEMPT: "", TRUSTED_PROXIES: "127.0.0.1" });
    const { admin } = await seed(app);
    const lamp = await insertApiKey(app.store, { name: "lamp", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    const fetchAs = async (token: string) =>
      (await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": token, "x-forwarded-for": "192.168.1.50" } })).status;
    for (let attempt = 0; attempt < 10; attempt++) await fetchAs(trackSecret(`tg_${lamp.id}_${"A".repeat(43)}`));
    expect(await fetchAs(lamp.token)).toBe(429);
    const page = await openPage(app, PHONE);
    await signInWithKey(page, admin);
    await openView(page, "bans");
    await page.getByTestId("lift-ban-addr-192-168-1-50").click();
    await waitForStatus(page, /^Ban on address 192\.168\.1\.50 lifted/);
    await page.getByTestId(`lift-ban-key-${lamp.id}`).click();
    await waitForStatus(page, new RegExp(`^Ban on key ${lamp.id} lifted`));
    expect(await page.getByTestId("bans-list").innerText()).toContain("Nobody is banned.");
    expect(await fetchAs(lamp.token)).toBe(200);
  }, 30_000);

  test("end an app's token sign-in on the Sessions page: its refresh token stops working", async () => {
    await using app = await startTestApp();
    const { admin, viewerPassword } = await seed(app);
    const grant = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", username: "vi", password: viewerPassword, client_id: "thermostat-app" }),
    });
    const tokens = (await grant.json()) as { access_token: string; refresh_token: string };
    trackSecret(tokens.access_token);
    trackSecret(tokens.refresh_token);
    const page = await openPage(app, PHONE);
    await signInWithKey(page, admin);
    await openView(page, "sessions");
    const card = page.getByTestId("families-list").locator("li.card", { hasText: "thermostat-app as vi" });
    await card.getByRole("button", { name: /^End the sign-in of thermostat-app/ }).click();
    await confirm(page);
    await waitForStatus(page, /^thermostat-app is signed out/);
    const refreshed = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: tokens.refresh_token }),
    });
    expect(refreshed.status).toBe(400);
    expect(((await refreshed.json()) as { error: string }).error).toBe("invalid_grant");
    await page.getByTestId("families-list").getByText("No app is signed in with a refresh token.").waitFor({ timeout: 5_000 });
    expectNoSecretsInOutput();
  }, 30_000);

  test("add a person: they can sign in with the password given", async () => {
    await using app = await startTestApp();
    const { admin } = await seed(app);
    const page = await openPage(app, PHONE);
    await signInWithKey(page, admin);
    await openView(page, "people");
    const password = trackSecret("a new person's long password");
    await page.getByTestId("new-username").fill("ana");
    await page.getByTestId("new-password").fill(password);
    await page.getByTestId("user-add").click();
    await waitForStatus(page, /^ana added\./);
    expect(await page.getByTestId("user-ana").innerText()).toContain("viewer");
    expect(await page.getByTestId("new-password").inputValue()).toBe("");
    const session = await fetch(`${app.http}/auth/login`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams({ username: "ana", password }),
    });
    expect(session.status).toBe(200);
    expectNoSecretsInOutput();
  }, 30_000);

  test("a viewer sees only their own account, and the admin API answers them 403", async () => {
    await using app = await startTestApp();
    const { viewerPassword } = await seed(app);
    const page = await openPage(app, PHONE);
    await signInWithPassword(page, "vi", viewerPassword);
    await waitForStatus(page, /^Signed in\./);
    expect(await page.getByTestId("view-account").isVisible()).toBe(true);
    expect(await page.locator("#admin-nav").isVisible()).toBe(false);
    await page.goto(`${app.http}/#keys`);
    await page.getByTestId("my-sessions").locator("li").first().waitFor();
    expect(await page.getByTestId("view-keys").isVisible()).toBe(false);
    expect(await page.getByTestId("my-sessions").innerText()).toContain("This browser");
    const answer = await page.evaluate(async () => {
      const response = await fetch("/admin/api/keys", { credentials: "same-origin" });
      return { status: response.status, body: (await response.json()) as { code: string } };
    });
    expect(answer).toMatchObject({ status: 403, body: { code: "insufficient_scope" } });
  }, 30_000);
});

describe.skipIf(!chromiumAvailable)("keyboard only", () => {
  test("make a key, hide it, and back out of a revoke with Escape; focus always lands on the next step", async () => {
    await using app = await startTestApp();
    const { admin } = await seed(app);
    const page = await openPage(app, DESKTOP);
    const focused = () => page.evaluate<string>("document.activeElement?.dataset?.testid ?? document.activeElement?.tagName");
    await signInWithKey(page, admin);
    await page.getByTestId("keys-active").locator("li.card").first().waitFor();
    expect(await focused()).toBe("nav-keys");
    await page.getByTestId("key-name").focus();
    await page.keyboard.type("porch camera");
    await page.keyboard.press("Enter");
    await waitForStatus(page, /^Key for "porch camera" made\./);
    trackSecret((await page.getByTestId("new-key").innerText()).trim());
    expect(await focused()).toBe("copy-new-key");
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("hide-new-key");
    await page.keyboard.press("Enter");
    expect(await page.getByTestId("key-reveal").isVisible()).toBe(false);
    expect(await focused()).toBe("key-name");
    const revoke = page.getByTestId("keys-active").getByRole("button", { name: "Revoke porch camera" });
    await revoke.focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("confirm-dialog").waitFor();
    // The safe answer has focus, and Escape keeps the key.
    expect(await focused()).toBe("confirm-no");
    await page.keyboard.press("Escape");
    expect(await page.getByTestId("confirm-dialog").isVisible()).toBe(false);
    expect(await page.getByTestId("keys-active").innerText()).toContain("porch camera");
    expect(await page.evaluate<string | null>(`document.activeElement?.getAttribute("aria-label")`)).toBe("Revoke porch camera");
  }, 30_000);
});

describe.skipIf(!chromiumAvailable)("every page, both themes, desktop and phone", () => {
  for (const colorScheme of ["light", "dark"] as const) {
    test(`${colorScheme}: axe finds no serious or critical violation; 44 px targets on a phone; screenshots`, async () => {
      await using app = await startTestApp();
      const { admin } = await seed(app);
      await app.store.startBan("addr:192.0.2.7", Date.now(), 600_000, 3_600_000, 3_600_000);
      for (const [size, options] of [
        ["desktop", DESKTOP],
        ["phone", PHONE],
      ] as const) {
        const page = await openPage(app, { ...options, colorScheme });
        await signInWithKey(page, admin);
        await page.getByTestId("keys-active").locator("li.card").first().waitFor();
        const problems: string[] = [];
        for (const view of VIEWS) {
          if (view !== "keys") await openView(page, view);
          await page.waitForLoadState("networkidle");
          problems.push(...(await seriousViolations(page)).map((found) => `${view} (${size}): ${found}`));
          if (size === "phone") problems.push(...(await smallTargets(page)).map((found) => `${view}: small target ${found}`));
          await page.screenshot({ path: join(ARTIFACTS, `${view}-${size}-${colorScheme}.png`), fullPage: true });
        }
        expect(problems).toEqual([]);
        await page.context().close();
      }
    }, 60_000);
  }
});
