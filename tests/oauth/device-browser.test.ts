/**
 * The device view (`/auth/device`) in a real headless Chromium (Debian's) against the real app:
 * a person opens verification_uri_complete on a phone, is sent to sign in and back, sees the
 * device, where it asked from and what for, unticks a scope and approves; the device, polling with
 * a plain RFC client, gets a token with only what was left ticked. The page's QR code, drawn by
 * Chromium and decoded by jsQR, is verification_uri_complete. Then with the keyboard alone: a code
 * typed in, and Deny. axe in both themes, 44 px targets, screenshots (tests/.artifacts/device/).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { BrowserContextOptions, Page } from "playwright-core";
import { chromiumAvailable, decodeQr, DESKTOP, PHONE, seriousViolations, smallTargets, useChromium } from "../support/browser.ts";
import { pollToken, signInPerson, startLogin } from "../support/device.ts";
import { ROOT, startTestApp, type TestApp } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput } from "../support/secrets.ts";

const ARTIFACTS = join(ROOT, "tests/.artifacts/device");

const browser = useChromium("device login browser tests", ARTIFACTS);

/** The app on a clock the test can move ahead (a device's next poll without waiting its interval). */
async function appAhead(): Promise<{ app: TestApp; advance: (ms: number) => void }> {
  let offset = 0;
  const app = await startTestApp({}, { now: () => Date.now() + offset });
  return { app, advance: (ms) => void (offset += ms) };
}

async function openPage(url: string, options: BrowserContextOptions): Promise<Page> {
  const context = await browser().newContext(options);
  const page = await context.newPage();
  page.on("pageerror", (error) => captureOutput(`pageerror: ${error.message}`));
  await page.goto(url);
  return page;
}

/** The sign-in page the device view sent the browser to: a password, then back to the device view. */
async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.waitForURL(/\/auth\/login\?rd=/);
  await page.getByTestId("username-input").fill(username);
  await page.getByTestId("password-input").fill(password);
  await page.getByTestId("password-submit").click();
  await page.waitForURL(/\/auth\/device/, { timeout: 15_000 });
}

const status = (page: Page) => page.getByTestId("status");

describe.skipIf(!chromiumAvailable)("the device view on a phone", () => {
  test("open the device's link, sign in, untick a scope, approve: the device's token has only what was left", async () => {
    const { app, advance } = await appAhead();
    await using _app = app;
    const person = await signInPerson(app, "alice", ["viewer"]);
    const login = await startLogin(app.http, "living-room-tv", "data:read ws:connect");
    expect((await pollToken(app.http, login.deviceCode, "living-room-tv")).body.error).toBe("authorization_pending");
    const page = await openPage(login.complete, PHONE);
    await signIn(page, "alice", person.password);
    await page.getByTestId("device-request").waitFor({ timeout: 15_000 });
    expect(page.url()).toBe(login.complete);
    expect(await page.locator("#title").innerText()).toBe("Connect a device");
    const facts = await page.getByTestId("device-facts").innerText();
    expect(facts).toContain("living-room-tv");
    expect(facts).toContain("127.0.0.1");
    expect(await decodeQr(page, "#device-qr svg")).toBe(login.complete);
    await page.getByLabel("ws:connect").uncheck();
    await page.screenshot({ path: join(ARTIFACTS, "approve-phone.png"), fullPage: true });
    await page.getByTestId("device-approve").click();
    await status(page)
      .filter({ hasText: /^Approved\. "living-room-tv" is signing in now/ })
      .waitFor({ timeout: 10_000 });
    expect(await page.getByTestId("device-request").isVisible()).toBe(false);
    advance(login.interval * 1000);
    const granted = await pollToken(app.http, login.deviceCode, "living-room-tv");
    expect(granted.status).toBe(200);
    expect(granted.body.scope).toBe("data:read");
    const works = await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${String(granted.body.access_token)}` } });
    expect(works.status).toBe(200);
    expect(await page.content()).not.toContain(login.deviceCode);
    expectNoSecretsInOutput();
  }, 45_000);

  test("a wrong code is told in plain words; the right one typed in works", async () => {
    await using app = await startTestApp();
    const person = await signInPerson(app, "alice", ["viewer"]);
    const login = await startLogin(app.http, "tv-box");
    const page = await openPage(`${app.http}/auth/device`, PHONE);
    await signIn(page, "alice", person.password);
    await page.getByTestId("device-code").fill(login.userCode === "BBBB-BBBB" ? "cccc cccc" : "bbbb bbbb");
    await page.getByTestId("device-code-submit").click();
    await status(page)
      .filter({ hasText: /^That code is wrong, has expired or was already used/ })
      .waitFor({ timeout: 10_000 });
    await page.getByTestId("device-code").fill(login.userCode.toLowerCase().replace("-", " "));
    await page.getByTestId("device-code-submit").click();
    await page.getByTestId("device-request").waitFor({ timeout: 10_000 });
    expect(await page.locator("#device-request-title").innerText()).toBe('"tv-box" asks to sign in');
  }, 45_000);
});

describe.skipIf(!chromiumAvailable)("keyboard only", () => {
  test("type the code, Enter, Tab to Deny, Enter: the device is told access_denied", async () => {
    await using app = await startTestApp();
    const person = await signInPerson(app, "alice", ["viewer"]);
    const login = await startLogin(app.http, "tv-box");
    const page = await openPage(`${app.http}/auth/device`, DESKTOP);
    await signIn(page, "alice", person.password);
    const focused = () => page.evaluate<string>("document.activeElement?.dataset?.testid ?? document.activeElement?.id");
    await page.waitForFunction(`document.activeElement?.id === "device-code"`);
    await page.keyboard.type(login.userCode);
    await page.keyboard.press("Enter");
    await page.getByTestId("device-request").waitFor({ timeout: 10_000 });
    expect(await focused()).toBe("device-request-title");
    // The scopes, then Approve, then Deny.
    for (let step = 0; step < 4 && (await focused()) !== "device-deny"; step++) await page.keyboard.press("Tab");
    expect(await focused()).toBe("device-deny");
    await page.keyboard.press("Enter");
    await status(page)
      .filter({ hasText: /^Denied\./ })
      .waitFor({ timeout: 10_000 });
    expect(await focused()).toBe("device-code");
    expect((await pollToken(app.http, login.deviceCode, "tv-box")).body.error).toBe("access_denied");
  }, 45_000);
});

describe.skipIf(!chromiumAvailable)("both themes", () => {
  for (const colorScheme of ["light", "dark"] as const) {
    test(`${colorScheme}: axe finds no serious or critical violation; 44 px targets on a phone`, async () => {
      await using app = await startTestApp();
      const person = await signInPerson(app, "alice", ["viewer"]);
      const login = await startLogin(app.http, "tv-box", "data:read ws:connect admin");
      const problems: string[] = [];
      for (const [size, options] of [
        ["desktop", DESKTOP],
        ["phone", PHONE],
      ] as const) {
        const page = await openPage(login.complete, { ...options, colorScheme });
        await signIn(page, "alice", person.password);
        await page.getByTestId("device-request").waitFor({ timeout: 15_000 });
        problems.push(...(await seriousViolations(page)).map((found) => `${size}: ${found}`));
        if (size === "phone") problems.push(...(await smallTargets(page)).map((found) => `small target ${found}`));
        await page.screenshot({ path: join(ARTIFACTS, `device-${size}-${colorScheme}.png`), fullPage: true });
        await page.context().close();
      }
      expect(problems).toEqual([]);
    }, 60_000);
  }
});
