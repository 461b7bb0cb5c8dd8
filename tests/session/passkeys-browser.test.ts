/**
 * Passkeys in a real headless Chromium (Debian's `chromium`, driven by playwright-core) with the
 * DevTools virtual authenticator (a platform authenticator: CTAP2, internal, resident keys, user
 * verification), against the whole app (startApp) on http://localhost, a secure context, with
 * WEBAUTHN_RP_ID=localhost. The console page's own buttons drive every ceremony, so the page,
 * @simplewebauthn/browser and the gate's endpoints are tested together. Where Chromium is not
 * installed the tests skip, except in CI, as tests/browser.test.ts does.
 */
import { chromiumAvailable, launchChromium, useChromium } from "../support/browser.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { type Browser, type CDPSession, type Page } from "playwright-core";
import { userHandleOf } from "../../auth/session/passkey-requests.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { join } from "node:path";
import { ROOT, startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const available = chromiumAvailable;

const browser = useChromium("passkey browser tests");

/** A page of its own (its own cookies) with a virtual platform authenticator attached. */
interface Device {
  readonly page: Page;
  readonly cdp: CDPSession;
  readonly authenticatorId: string;
}

interface VirtualCredential {
  readonly credentialId: string;
  readonly isResidentCredential: boolean;
  readonly rpId?: string;
  readonly privateKey: string;
  readonly userHandle?: string;
  readonly signCount: number;
}

async function openDevice(app: TestApp): Promise<Device> {
  const context = await browser().newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(pageUrl(app));
  return { page, cdp, authenticatorId };
}

/** The app listens on 127.0.0.1; the page is opened as localhost, the passkeys' RP ID (an IP address cannot be one). */
const pageUrl = (app: TestApp) => app.http.replace("127.0.0.1", "localhost") + "/";

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
async function waitForStatus(page: Page, text: string | RegExp, timeout = 10_000): Promise<void> {
  const pattern = typeof text === "string" ? new RegExp(escape(text)) : text;
  await page.getByTestId("status").filter({ hasText: pattern }).waitFor({ timeout });
}
const statusText = (page: Page) => page.getByTestId("status").innerText();

async function signInWithPassword(page: Page, username: string, password: string): Promise<void> {
  await page.getByTestId("username-input").fill(username);
  await page.getByTestId("password-input").fill(password);
  await page.getByTestId("password-submit").click();
  await waitForStatus(page, /^Signed in\.$/);
}

async function signOut(page: Page): Promise<void> {
  await page.getByTestId("sign-out").click();
  await waitForStatus(page, /^Signed out\.$/);
}

/** Clicks "Sign in with a passkey" and waits for the page's verdict: the status line. */
async function clickPasskeySignIn(page: Page): Promise<string> {
  await page.getByTestId("passkey-signin").click();
  await page
    .getByTestId("status")
    .filter({ hasNotText: /Follow your browser/ })
    .filter({ hasText: /\S/ })
    .waitFor({ timeout: 10_000 });
  return statusText(page);
}

const credentialsOf = async (device: Device) =>
  (await device.cdp.send("WebAuthn.getCredentials", { authenticatorId: device.authenticatorId })).credentials as VirtualCredential[];

async function addUser(app: TestApp, username: string): Promise<string> {
  const password = trackSecret(`${username}'s long browser password`);
  await app.store.insertUser({ username, passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
  return password;
}

/** Signs in with a password and adds a passkey with the console's button: the stored passkey's id. */
async function enroll(app: TestApp, device: Device, username: string): Promise<string> {
  const password = await addUser(app, username);
  await signInWithPassword(device.page, username, password);
  await device.page.getByTestId("passkey-add").click();
  // Adding a passkey asks for the password again: the cookie alone is not enough.
  await device.page.getByTestId("passkey-password").fill(password);
  await device.page.getByTestId("passkey-add-confirm").click();
  await waitForStatus(device.page, "Passkey added.");
  const stored = await app.store.listPasskeys(username);
  expect(stored).toHaveLength(1);
  return stored[0]!.id;
}

const auditOf = (app: TestApp) => app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);

describe.skipIf(!available)("passkeys in Chromium (virtual authenticator)", () => {
  test("add a passkey after a password sign-in, sign out, sign in with it; a reload keeps the session; again without typing", async () => {
    await using app = await startTestApp({ WEBAUTHN_RP_ID: "localhost" });
    const device = await openDevice(app);
    const { page } = device;
    await page.getByTestId("passkey-signin").waitFor();
    const id = await enroll(app, device, "alice");
    const [credential] = await credentialsOf(device);
    expect(credential).toMatchObject({
      isResidentCredential: true,
      rpId: "localhost",
      userHandle: Buffer.from(userHandleOf("alice")).toString("base64"),
    });
    expect(Buffer.from(credential!.credentialId, "base64").toString("base64url")).toBe(id);
    expect(auditOf(app)).toContainEqual(expect.objectContaining({ audit: "passkey.added", user: "alice", passkey: id }));

    await signOut(page);
    expect(await clickPasskeySignIn(page)).toBe("Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("alice (user)");
    expect(auditOf(app)).toContainEqual(expect.objectContaining({ audit: "session.created", method: "passkey", subject: "user:alice" }));
    expect((await app.store.getPasskey(id))!.lastUsedAt).not.toBeNull();

    // The session cookie outlives a reload: nothing to type, nothing to click.
    await page.reload();
    await page.getByTestId("who").filter({ hasText: "alice (user)" }).waitFor({ timeout: 10_000 });

    // Signed out and reloaded, the passkey alone signs in again (the browser picks it: no username).
    await signOut(page);
    await page.reload();
    await page.getByTestId("passkey-signin").waitFor();
    expect(await clickPasskeySignIn(page)).toBe("Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("alice (user)");
    const signIns = auditOf(app).filter((event) => event.audit === "session.created" && event.method === "passkey");
    expect(signIns).toHaveLength(2);
  }, 60_000);

  test("another authenticator is refused: one with no passkey here, and one with a passkey the gate never registered", async () => {
    await using app = await startTestApp({ WEBAUTHN_RP_ID: "localhost" });
    const owner = await openDevice(app);
    await enroll(app, owner, "alice");

    const stranger = await openDevice(app);
    await stranger.page.getByTestId("passkey-signin").waitFor();
    // An empty authenticator: the browser finds no passkey for localhost and the page says so.
    const empty = await clickPasskeySignIn(stranger.page);
    expect(empty).not.toContain("Signed in.");
    expect(await stranger.page.getByTestId("who").innerText()).not.toContain("alice");

    // A resident credential for localhost that claims alice's user handle, made outside the gate.
    const forged = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "der", type: "pkcs8" });
    await stranger.cdp.send("WebAuthn.addCredential", {
      authenticatorId: stranger.authenticatorId,
      credential: {
        credentialId: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
        isResidentCredential: true,
        rpId: "localhost",
        privateKey: forged.toString("base64"),
        userHandle: Buffer.from(userHandleOf("alice")).toString("base64"),
        signCount: 0,
      },
    });
    const refused = await clickPasskeySignIn(stranger.page);
    expect(refused).not.toContain("Signed in.");
    expect(await stranger.page.getByTestId("who").innerText()).not.toContain("alice");
    expect(auditOf(app)).toContainEqual(
      expect.objectContaining({ audit: "auth.failure", path: "/auth/passkeys/login", reason: "invalid_credentials" }),
    );
    expect(auditOf(app).filter((event) => event.audit === "session.created" && event.method === "passkey")).toHaveLength(0);
  }, 60_000);

  test("a signature counter that goes backwards (a copied authenticator) is refused", async () => {
    await using app = await startTestApp({ WEBAUTHN_RP_ID: "localhost" });
    const device = await openDevice(app);
    const id = await enroll(app, device, "alice");
    await signOut(device.page);
    expect(await clickPasskeySignIn(device.page)).toBe("Signed in.");
    await signOut(device.page);
    const stored = (await app.store.getPasskey(id))!.counter;
    expect(stored).toBeGreaterThan(0);

    // The same key with its count turned back: what a clone of the authenticator would present.
    const [credential] = await credentialsOf(device);
    await device.cdp.send("WebAuthn.removeCredential", { authenticatorId: device.authenticatorId, credentialId: credential!.credentialId });
    await device.cdp.send("WebAuthn.addCredential", {
      authenticatorId: device.authenticatorId,
      credential: { ...credential!, signCount: 0 },
    });
    const refused = await clickPasskeySignIn(device.page);
    expect(refused).not.toContain("Signed in.");
    expect((await app.store.getPasskey(id))!.counter).toBe(stored);
    expect(auditOf(app)).toContainEqual(
      expect.objectContaining({
        audit: "auth.failure",
        path: "/auth/passkeys/login",
        detail: expect.stringContaining("counter went backwards"),
      }),
    );

    // The counter moved upward in the store (another sign-in elsewhere): this authenticator's next count is refused too.
    await device.cdp.send("WebAuthn.removeCredential", { authenticatorId: device.authenticatorId, credentialId: credential!.credentialId });
    await device.cdp.send("WebAuthn.addCredential", {
      authenticatorId: device.authenticatorId,
      credential: { ...credential!, signCount: stored + 5 },
    });
    await app.store.recordPasskeyUse(id, stored + 100, Date.now());
    expect(await clickPasskeySignIn(device.page)).not.toContain("Signed in.");
  }, 60_000);
});

describe.skipIf(!available)("over TLS, on a host name (gate.local)", () => {
  /**
   * The fixture certificate's key, trusted by its SPKI pin, with gate.local resolved to loopback:
   * a page Chromium treats as a valid https:// origin on a domain, as a LAN box behind the README's
   * TLS recipe would be.
   */
  const FIXTURE_SPKI = "D15kmg0WAZs2MXiwpAO+wAZilNmx2dVslZZjw3tiQqU=";
  let tlsBrowser: Browser;
  beforeAll(async () => {
    tlsBrowser = await launchChromium([
      "--host-resolver-rules=MAP gate.local 127.0.0.1",
      `--ignore-certificate-errors-spki-list=${FIXTURE_SPKI}`,
    ]);
  });
  afterAll(() => tlsBrowser.close());

  test("register and sign in with a passkey for gate.local over https; the cookie is __Host-tgs, Secure", async () => {
    await using app = await startTestApp({
      TLS_CERT_FILE: join(ROOT, "tests/fixtures/tls-cert.pem"),
      TLS_KEY_FILE: join(ROOT, "tests/fixtures/tls-key.pem"),
      // No WEBAUTHN_ORIGINS: any port of gate.local over https (this test's port is chosen at random).
      WEBAUTHN_RP_ID: "gate.local",
      ALLOWED_HOSTS: "gate.local",
    });
    const origin = app.http.replace("127.0.0.1", "gate.local");
    expect(origin).toStartWith("https://gate.local:");
    const context = await tlsBrowser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(`${origin}/`);
    expect(await page.evaluate("window.isSecureContext")).toBe(true);
    await enroll(app, { page, cdp, authenticatorId }, "tess");
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "__Host-tgs", secure: true, httpOnly: true, sameSite: "Lax", path: "/" });
    await signOut(page);
    expect(await clickPasskeySignIn(page)).toBe("Signed in.");
    expect(await page.getByTestId("who").innerText()).toContain("tess (user)");
    await context.close();
  }, 60_000);
});

test.skipIf(!available)("no secret used in this file reached any output", () => {
  expectNoSecretsInOutput();
});
