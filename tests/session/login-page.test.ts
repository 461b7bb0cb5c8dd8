/**
 * The sign-in view at `/auth/login?rd=…` in a real headless Chromium (Debian's `chromium` through
 * playwright-core), served with its real CSP: a password sign-in lands where the browser was
 * going, a refusal is told in plain words, the keyboard alone is enough, forms work without
 * script and never put a secret in a URL, and passkeys are offered only where a browser allows
 * them. Screenshots of the view and of the signed-in console, at desktop and phone size in both
 * colour schemes, go to tests/.artifacts/.
 */
import { chromiumAvailable, PHONE, useChromium } from "../support/browser.ts";
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type BrowserContextOptions, type Page } from "playwright-core";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { ROOT, startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const available = chromiumAvailable;
const ARTIFACTS = join(ROOT, "tests/.artifacts");

const browser = useChromium("browser tests", ARTIFACTS);

const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };

const cspReports = new WeakMap<Page, string[]>();

async function openPage(url: string, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser().newContext(options);
  const page = await context.newPage();
  const reports: string[] = [];
  cspReports.set(page, reports);
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) reports.push(message.text());
  });
  await page.goto(url);
  return page;
}

const loginUrl = (app: TestApp, rd = "/secure-data") => `${app.http}/auth/login?rd=${encodeURIComponent(rd)}`;
const status = (page: Page) => page.getByTestId("status");
const shoot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

async function waitForStatus(page: Page, text: RegExp, timeout = 5_000): Promise<void> {
  await status(page).filter({ hasText: text }).waitFor({ timeout });
}

async function addUser(app: TestApp, username: string): Promise<string> {
  const password = trackSecret(`${username}'s long password`);
  await app.store.insertUser({ username, passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
  return password;
}

async function fillPassword(page: Page, username: string, password: string): Promise<void> {
  await page.getByTestId("username-input").fill(username);
  await page.getByTestId("password-input").fill(password);
  await page.getByTestId("password-submit").click();
}

describe.skipIf(!available)("the sign-in view", () => {
  test("a password sign-in lands on rd with a session; the CSP holds", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "kim");
    const page = await openPage(loginUrl(app));
    expect(await page.title()).toBe("Sign in · tokengate");
    expect(await page.getByRole("heading", { level: 1 }).innerText()).toBe("Sign in");
    expect(await page.getByTestId("continue-to").innerText()).toBe("Sign in to continue to /secure-data");
    // The console's parts stay out of the way.
    for (const id of ["pairing", "who", "connect"]) expect(await page.getByTestId(id).isVisible()).toBe(false);
    await fillPassword(page, "kim", password);
    await page.waitForURL(`${app.http}/secure-data`);
    expect(await page.locator("body").innerText()).toContain("Here is your secret data!");
    const cookies = await page.context().cookies();
    expect(cookies.map((cookie) => [cookie.name, cookie.httpOnly])).toEqual([["tgs", true]]);
    expect(cspReports.get(page)).toEqual([]);
  }, 30_000);

  test("a wrong password is told in plain words; nothing secret stays on screen; the next try works", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "lee");
    const page = await openPage(loginUrl(app));
    await fillPassword(page, "lee", "not the password");
    await waitForStatus(page, /^Wrong username or password\.$/);
    expect(await status(page).getAttribute("class")).toBe("bad");
    expect(page.url()).toBe(loginUrl(app));
    expect(await page.getByTestId("password-input").inputValue()).toBe("");
    expect(await page.getByTestId("username-input").inputValue()).toBe("lee");
    await shoot(page, "login-wrong-password");
    await page.getByTestId("password-input").fill(password);
    await page.getByTestId("password-submit").click();
    await page.waitForURL(`${app.http}/secure-data`);
  }, 30_000);

  test("keyboard only: Tab to each field, Enter signs in", async () => {
    await using app = await startTestApp();
    const password = await addUser(app, "ana");
    const page = await openPage(loginUrl(app));
    const focused = () => page.evaluate(`document.activeElement?.dataset?.testid ?? document.activeElement?.tagName`);
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("username-input");
    await page.keyboard.type("ana");
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("password-input");
    await page.keyboard.type(password);
    await page.keyboard.press("Tab");
    expect(await focused()).toBe("password-submit");
    // Each control shows where focus is.
    expect(await page.evaluate(`getComputedStyle(document.activeElement).outlineStyle`)).toBe("solid");
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Enter");
    await page.waitForURL(`${app.http}/secure-data`);
  }, 30_000);

  test("an API key opens a session too; the bootstrap token is turned away in words", async () => {
    await using app = await startTestApp();
    const { insertApiKey } = await import("../support/keys.ts");
    const key = await insertApiKey(app.store, { name: "laptop", scopes: ["data:read"], expiresAt: null });
    await app.app.keyring.refresh();
    const page = await openPage(loginUrl(app));
    await page.getByTestId("token-input").fill(app.token);
    await page.getByTestId("token-submit").click();
    await waitForStatus(page, /^This token cannot open a browser session\./);
    expect(await page.getByTestId("token-input").inputValue()).toBe("");
    await page.getByTestId("token-input").fill(key.token);
    await page.getByTestId("token-input").press("Enter");
    await page.waitForURL(`${app.http}/secure-data`);
  }, 30_000);

  test("the ?error= a sign-in without script came back with is shown in words, not as a code", async () => {
    await using app = await startTestApp();
    for (const [code, words] of [
      ["invalid_credentials", /^Wrong username or password\.$/],
      ["invalid_token", /^That API key or token is not valid/],
      ["too_many_requests", /^Too many failed attempts from this device\./],
      ["access_denied", /^This credential may not sign in here\.$/],
      ["<script>", /^The sign-in did not work\. Try again\.$/],
    ] as const) {
      const page = await openPage(`${loginUrl(app)}&error=${encodeURIComponent(code)}`);
      await waitForStatus(page, words);
      expect(await status(page).innerText()).not.toContain(code);
      await page.context().close();
    }
  }, 30_000);
});

describe.skipIf(!available)("without JavaScript", () => {
  test("the forms still sign in, by a POST whose body carries the secret; a refusal comes back to the view", async () => {
    await using app = await startTestApp({ ACCESS_LOG: "all" });
    const password = await addUser(app, "noscript");
    const page = await openPage(loginUrl(app), { javaScriptEnabled: false });
    const urls: string[] = [];
    page.on("request", (request) => void urls.push(`${request.method()} ${request.url()}`));
    expect(await page.getByTestId("noscript").isVisible()).toBe(true);
    await fillPassword(page, "noscript", "wrong");
    await page.waitForURL(/error=invalid_credentials/);
    expect(new URL(page.url()).pathname).toBe("/auth/login");
    await fillPassword(page, "noscript", password);
    // The form posts back to the page's own URL, so the rd of the address bar is where it lands.
    await page.waitForURL((url) => url.pathname === "/secure-data");
    expect((await page.context().cookies()).map((cookie) => cookie.name)).toEqual(["tgs"]);
    expect(urls.filter((url) => url.startsWith("POST "))).toEqual([
      `POST ${app.http}/auth/login?rd=%2Fsecure-data`,
      `POST ${app.http}/auth/login?rd=%2Fsecure-data&error=invalid_credentials`,
    ]);
    expect(urls.filter((url) => url.includes(encodeURIComponent(password)) || url.includes("password="))).toEqual([]);
  }, 30_000);
});

describe.skipIf(!available)("passkeys", () => {
  test("on an IP address the view says plainly what passkeys need and offers no passkey button", async () => {
    await using app = await startTestApp();
    const page = await openPage(loginUrl(app));
    expect(await page.getByTestId("passkey-signin").isVisible()).toBe(false);
    expect(await page.getByTestId("passkey-note").isVisible()).toBe(true);
    const note = await page.getByTestId("passkey-note").innerText();
    expect(note).toContain("Passkeys need HTTPS");
    expect(note).toContain("gate.local");
    expect(note).toContain("TLS section");
  }, 30_000);

  test("with a passkey added in the console, the sign-in view's passkey button lands on rd (virtual authenticator)", async () => {
    await using app = await startTestApp({ WEBAUTHN_RP_ID: "localhost" });
    const password = await addUser(app, "pia");
    const local = app.http.replace("127.0.0.1", "localhost");
    const context = await browser().newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(`${local}/`);
    await fillPassword(page, "pia", password);
    await waitForStatus(page, /^Signed in\.$/);
    await page.getByTestId("passkey-add").click();
    await page.getByTestId("passkey-password").fill(password);
    await shoot(page, "console-passkey-password");
    await page.getByTestId("passkey-add-confirm").click();
    await waitForStatus(page, /^Passkey added\./);
    await shoot(page, "console-passkey-added");
    await page.getByTestId("sign-out").click();
    await waitForStatus(page, /^Signed out\.$/);

    await page.goto(`${local}/auth/login?rd=%2Fsecure-data`);
    await page.getByTestId("passkey-signin").click();
    await page.waitForURL(`${local}/secure-data`);
    expect(await page.locator("body").innerText()).toContain("Here is your secret data!");
  }, 30_000);

  test("on a name in a secure context (http://localhost) the passkey button is offered", async () => {
    await using app = await startTestApp({ ALLOWED_HOSTS: "localhost,127.0.0.1" });
    const page = await openPage(loginUrl(app).replace("127.0.0.1", "localhost"));
    await page.getByTestId("passkey-signin").waitFor({ state: "visible", timeout: 5_000 });
    expect(await page.getByTestId("passkey-note").isVisible()).toBe(false);
    await shoot(page, "login-passkey-desktop");
    await page.setViewportSize({ width: 390, height: 844 });
    await shoot(page, "login-passkey-phone");
  }, 30_000);
});

/** The WCAG contrast ratio of each visible text against the first opaque background behind it. */
const CONTRAST_PROBE = String.raw`(() => {
  const rgb = (text) => { const [r, g, b, a = 1] = text.match(/[\d.]+/g).map(Number); return { r, g, b, a }; };
  const channel = (v) => { const c = v / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const backdrop = (element) => {
    for (let at = element; at !== null; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.a === 1) return colour;
      if (colour.a !== 0) return null;
    }
    return null;
  };
  const ratio = (element) => {
    const colour = rgb(getComputedStyle(element).color);
    const back = backdrop(element);
    if (back === null || colour.a !== 1) return 0;
    const [hi, lo] = [luminance(colour), luminance(back)].sort((x, y) => y - x);
    return Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100;
  };
  const texts = [...document.querySelectorAll("h1, h2, p, label, button, input, a, dt, dd, code, li")].filter((element) => element.offsetParent !== null && element.getClientRects().length > 0);
  return texts.map((element) => ({ name: element.dataset.testid ?? element.id ?? element.tagName, tag: element.tagName, ratio: ratio(element) }));
})()`;

/** Visible buttons and fields smaller than 44×44 CSS pixels (WCAG 2.5.5's touch target). */
const SMALL_TARGETS = `[...document.querySelectorAll("button, input:not([type=hidden])")]
  .filter((element) => element.offsetParent !== null)
  .map((element) => ({ name: element.dataset.testid ?? element.id, ...element.getBoundingClientRect().toJSON() }))
  .filter((box) => box.height < 44 || box.width < 44)
  .map((box) => box.name + " " + Math.round(box.width) + "x" + Math.round(box.height))`;

async function expectReadable(page: Page, where: string): Promise<void> {
  const failing = ((await page.evaluate(CONTRAST_PROBE)) as Array<{ name: string; ratio: number }>).filter(
    (result) => !(result.ratio >= 4.5),
  );
  expect({ where, failing }).toEqual({ where, failing: [] });
  expect({ where, small: await page.evaluate(SMALL_TARGETS) }).toEqual({ where, small: [] });
}

describe.skipIf(!available)("looks: both colour schemes, desktop and phone", () => {
  for (const scheme of ["light", "dark"] as const) {
    test(`${scheme}: the sign-in view and the signed-in console are readable (4.5:1), with 44 px targets`, async () => {
      await using app = await startTestApp();
      const password = await addUser(app, "sam");
      for (const [size, options] of [
        ["desktop", DESKTOP],
        ["phone", PHONE],
      ] as const) {
        const page = await openPage(`${loginUrl(app)}&error=invalid_credentials`, { ...options, colorScheme: scheme });
        await waitForStatus(page, /^Wrong username or password\.$/);
        await expectReadable(page, `${scheme} ${size} sign-in view`);
        await shoot(page, `login-${scheme}-${size}`);
        await fillPassword(page, "sam", password);
        await page.waitForURL(`${app.http}/secure-data`);
        await page.goto(`${app.http}/`);
        await waitForStatus(page, /^Signed in\.$/);
        await expectReadable(page, `${scheme} ${size} console`);
        await shoot(page, `console-signed-in-${scheme}-${size}`);
        await page.context().close();
      }
    }, 45_000);
  }
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
