/**
 * Passkeys on the server side (auth/session/passkeys.ts), end to end against the real app
 * (startApp) on a loopback port: every request goes over a real socket through the gate, signed in
 * with a real session (a password sign-in over HTTP) or a real API key, with the app's SQLite store,
 * guard and audit log. A software authenticator signs like a platform one (P-256, "none"
 * attestation), so registration and sign-in run through @simplewebauthn/server for real. The page
 * is http://localhost:<port> (WEBAUTHN_RP_ID=localhost, a secure context). Time is the app's
 * injected clock. Also the admin commands (auth/cli/passkeys.ts, run in-process on the app's
 * database) and the doctor's passkey check. The browser side is passkeys-browser.test.ts.
 */
import { SoftAuthenticator } from "../support/soft-authenticator.ts";
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from "@simplewebauthn/server";
import { inspectPasskeys } from "../../auth/cli/doctor.ts";
import { runCli } from "../../auth/cli/commands.ts";
import { EXIT, type CliContext } from "../../auth/cli/shared.ts";
import { parseConfig } from "../../auth/config/config.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { CHALLENGE_TTL_MS, createChallengeBook } from "../../auth/session/passkey-challenges.ts";
import { isPasskeyOrigin, userHandleOf } from "../../auth/session/passkey-requests.ts";
import type { WebAuthnSettings } from "../../auth/session/passkeys.ts";
import type { Store } from "../../auth/store/store.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { openDataDirStore } from "../support/stores.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

const LOCALHOST: WebAuthnSettings = { rpId: "localhost", origins: null };
const START = Date.parse("2027-03-01T12:00:00Z");
/** The address the gate sees: this test's own loopback connection. */
const CLIENT = "127.0.0.1";
const PASSWORD = trackSecret("correct horse battery staple");
/**
 * Passkeys for the RP ID localhost (any http://localhost port: a secure context), and nobody
 * exempt from the guard (by default loopback is), so a guessing client here is banned like any other.
 */
const PASSKEYS_ON = { WEBAUTHN_RP_ID: "localhost", BAN_EXEMPT: "" };
/** The passkey endpoints anyone may call; the others need a signed-in principal. */
const PUBLIC_PATHS: ReadonlySet<string> = new Set(["/auth/passkeys/login/options", "/auth/passkeys/login"]);

const b64u = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString("base64url");

/** A credential as a client presents it: the headers it adds to a request. */
interface Credential {
  readonly headers: Readonly<Record<string, string>>;
}

interface Call {
  /**
   * The credential sent with the request; `null` sends none. By default alice's session on the
   * signed-in routes and nothing on the public ones.
   */
  readonly as?: Credential | null | undefined;
  readonly body?: unknown;
  /** Raw body text instead of JSON.stringify(body). */
  readonly text?: string;
  /** The page's Origin header (default: the app's own page, http://localhost:<port>); `null` sends none. */
  readonly origin?: string | null;
  readonly headers?: Record<string, string>;
  readonly method?: string;
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly json: Record<string, any>;
}

/**
 * The session cookie a response sets (`tgs=…`), its token registered with the leak scan before
 * anything can print it; `undefined` when there is none, or when the response clears it.
 */
function sessionCookieOf(response: Response): string | undefined {
  const header = response.headers.get("set-cookie");
  if (header === null) return undefined;
  const pair = header.split(";")[0]!;
  const token = pair.slice(pair.indexOf("=") + 1);
  if (token === "") return undefined;
  trackSecret(token);
  return pair;
}

/** Endpoints that confirm the account's password before they change its passkeys. */
const STEP_UP_PATHS: ReadonlySet<string> = new Set(["/auth/passkeys/register/options"]);

let passwordHash: string;

beforeAll(async () => {
  // argon2id is slow on purpose: one hash serves every user of every app in this file.
  passwordHash = await hashPassword(PASSWORD);
});

/**
 * The real app on a loopback port with a fresh database, a clock the test moves, and its users'
 * sessions. Requests go to http://localhost:<port>, so Host and Origin name the page a browser
 * would be on: the passkey origin, and the same host as far as the CSRF rule is concerned.
 */
class Fixture implements AsyncDisposable {
  readonly #clock: { at: number };
  readonly #sessions = new Map<string, Credential>();
  /** The page's origin, also where requests go. */
  readonly origin: string;

  private constructor(
    readonly app: TestApp,
    clock: { at: number },
  ) {
    this.#clock = clock;
    this.origin = app.http.replace("127.0.0.1", "localhost");
  }

  static async start(env: Record<string, string> = PASSKEYS_ON): Promise<Fixture> {
    const clock = { at: START };
    return new Fixture(await startTestApp(env, { now: () => clock.at }), clock);
  }

  /** The app's clock: every part of the app reads it. */
  get clock(): number {
    return this.#clock.at;
  }

  set clock(at: number) {
    this.#clock.at = at;
  }

  get store(): Store {
    return this.app.store;
  }

  async call(path: string, call: Call = {}): Promise<Answer> {
    const method = call.method ?? (path === "/auth/passkeys" ? "GET" : "POST");
    const credential = call.as !== undefined ? call.as : PUBLIC_PATHS.has(path) ? null : await this.session("alice");
    const headers = new Headers({
      accept: "application/json",
      "content-type": "application/json",
      ...credential?.headers,
      ...call.headers,
    });
    if (call.origin !== null) headers.set("origin", call.origin ?? this.origin);
    // Adding or removing a passkey asks for the account's password again: sent unless the test says otherwise.
    const body = call.body === undefined && STEP_UP_PATHS.has(path) && call.text === undefined ? { password: PASSWORD } : call.body;
    const hasBody = method !== "GET" && (body !== undefined || call.text !== undefined);
    const response = await fetch(`${this.origin}${path}`, {
      method,
      headers,
      body: hasBody ? (call.text ?? JSON.stringify(body)) : null,
      redirect: "manual",
    });
    sessionCookieOf(response);
    const text = await response.text();
    const json = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    // WebAuthn challenges are secrets of the ceremony: the leak scan looks for them too.
    for (const challenge of [json.challenge, (json.options as { challenge?: unknown } | undefined)?.challenge]) {
      if (typeof challenge === "string") trackSecret(challenge);
    }
    return { status: response.status, headers: response.headers, json };
  }

  async addUser(username: string): Promise<void> {
    await this.store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: this.clock });
    await this.app.app.keyring.refresh();
  }

  /** A new sign-in of `username` with their password over HTTP: the session cookie a browser would send back. */
  async openSession(username: string): Promise<Credential> {
    const response = await fetch(`${this.origin}/auth/login`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams({ username, password: PASSWORD }),
    });
    const cookie = sessionCookieOf(response);
    await response.body?.cancel();
    if (response.status !== 200 || cookie === undefined) throw new Error(`${username} could not sign in (status ${response.status})`);
    return { headers: { cookie } };
  }

  /** `username`'s session in this test, opened on first use. */
  async session(username: string): Promise<Credential> {
    let session = this.#sessions.get(username);
    if (session === undefined) this.#sessions.set(username, (session = await this.openSession(username)));
    return session;
  }

  /** Registers `authenticator` for the signed-in user (alice by default) through both registration endpoints. */
  async register(authenticator: SoftAuthenticator, as?: Credential, name?: string): Promise<Answer> {
    const offered = await this.call("/auth/passkeys/register/options", { as });
    expect(offered.status).toBe(200);
    const response = authenticator.create(offered.json as PublicKeyCredentialCreationOptionsJSON, this.origin);
    return this.call("/auth/passkeys/register", { as, body: { response, name } });
  }

  async loginOptions(): Promise<{ challenge_id: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const answer = await this.call("/auth/passkeys/login/options");
    expect(answer.status).toBe(200);
    return answer.json as { challenge_id: string; options: PublicKeyCredentialRequestOptionsJSON };
  }

  /** A whole passkey sign-in with `authenticator`. */
  async login(authenticator: SoftAuthenticator, rd?: string): Promise<Answer> {
    const { challenge_id, options } = await this.loginOptions();
    return this.call("/auth/passkeys/login", { body: { challenge_id, response: authenticator.get(options, this.origin), rd } });
  }

  auditEvents(): Array<Record<string, unknown>> {
    return this.app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** The app's latest log line on why the library refused a passkey. */
  lastRefusal(): string | undefined {
    return this.app.lines.findLast((line) => /"msg":"passkey [a-z-]+ refused"/.test(line));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.app[Symbol.asyncDispose]();
  }
}

let store: Store;
let fixture: Fixture;

beforeEach(async () => {
  fixture = await Fixture.start();
  store = fixture.store;
  await fixture.addUser("alice");
});

afterEach(async () => {
  await fixture[Symbol.asyncDispose]();
});

describe("without a passkey domain (config.webauthn null)", () => {
  test.each(["/auth/passkeys/register/options", "/auth/passkeys/register", "/auth/passkeys/login/options", "/auth/passkeys/login"])(
    "%s answers 404 saying what to set",
    async (path) => {
      await using off = await Fixture.start({});
      await off.addUser("alice");
      const answer = await off.call(path, { body: {} });
      expect(answer.status).toBe(404);
      expect(answer.json.code).toBe("not_found");
      expect(answer.json.detail).toContain("PUBLIC_URL=https://<name>.local:<port>");
      expect(answer.json.detail).toContain("WEBAUTHN_RP_ID");
    },
  );
});

describe("registration", () => {
  test.each([
    ["no password", {}, 400, "invalid_request"],
    ["an empty password", { password: "" }, 400, "invalid_request"],
    ["a wrong password (counted, audited)", { password: "not alice's password" }, 401, "invalid_credentials"],
  ])("adding a passkey asks for the account's password again (the cookie alone cannot): %s → %d", async (_name, body, status, code) => {
    const answer = await fixture.call("/auth/passkeys/register/options", { body });
    expect(answer.status).toBe(status);
    expect(answer.json.code).toBe(code);
    expect(answer.json.challenge).toBeUndefined();
    // A wrong confirmation is the handler's refusal, not the cookie's: the browser stays signed in.
    expect(answer.headers.get("set-cookie")).toBeNull();
    expect((await fixture.call("/auth/passkeys", { method: "GET" })).status).toBe(200);
    if (status === 401) {
      const failures = fixture.app.audit.filter((line) => line.includes('"audit":"auth.failure"') && line.includes('"user":"alice"'));
      expect(failures.length).toBeGreaterThan(0);
    }
  });

  test("removing one asks for the password too", async () => {
    const authenticator = new SoftAuthenticator();
    expect((await fixture.register(authenticator)).status).toBe(201);
    const without = await fixture.call("/auth/passkeys/remove", { body: { id: authenticator.id } });
    expect(without.status).toBe(400);
    expect(await fixture.store.getPasskey(authenticator.id)).toBeDefined();
  });

  test("options: a resident key with user verification, for this RP and user, excluding passkeys the user has", async () => {
    const first = await fixture.call("/auth/passkeys/register/options");
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      rp: { id: "localhost", name: "tokengate" },
      user: { name: "alice", displayName: "alice", id: b64u(userHandleOf("alice")) },
      attestation: "none",
      authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: "required" },
      excludeCredentials: [],
      timeout: CHALLENGE_TTL_MS,
    });
    expect(first.json.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const authenticator = new SoftAuthenticator();
    expect((await fixture.register(authenticator)).status).toBe(201);
    const second = await fixture.call("/auth/passkeys/register/options");
    expect(second.json.excludeCredentials).toEqual([{ id: authenticator.id, type: "public-key", transports: ["internal"] }]);
  });

  test("a verified credential is stored (key, counter, transports, name), audited and listed; 201", async () => {
    const authenticator = new SoftAuthenticator();
    const added = await fixture.register(authenticator, undefined, "  Work laptop ");
    expect(added.status).toBe(201);
    expect(added.json.passkey).toEqual({
      id: authenticator.id,
      name: "Work laptop",
      transports: ["internal"],
      created_at: new Date(START).toISOString(),
      last_used_at: null,
    });
    const stored = await store.getPasskey(authenticator.id);
    expect(stored).toMatchObject({ username: "alice", counter: 0, transports: ["internal"], name: "Work laptop", createdAt: START });
    expect(stored!.publicKey.length).toBeGreaterThan(60);
    expect(fixture.auditEvents()).toContainEqual(
      expect.objectContaining({ audit: "passkey.added", user: "alice", passkey: authenticator.id }),
    );
    const listed = await fixture.call("/auth/passkeys");
    expect(listed.json).toEqual({ passkeys: [added.json.passkey] });
    expect(JSON.stringify(listed.json)).not.toContain("public");
  });

  test("without a name the passkey is called after the day it was added", async () => {
    const added = await fixture.register(new SoftAuthenticator());
    expect(added.json.passkey.name).toBe("Passkey 2027-03-01");
  });

  test("only users: an API key and the bootstrap token are refused with 403 access_denied", async () => {
    const key = await insertApiKey(store, { name: "laptop", scopes: ["data:read"] });
    await fixture.app.app.keyring.refresh();
    for (const token of [key.token, fixture.app.token]) {
      for (const path of ["/auth/passkeys/register/options", "/auth/passkeys/register", "/auth/passkeys"]) {
        const answer = await fixture.call(path, { as: { headers: { "x-auth-token": token } }, body: { response: {} } });
        expect(answer.status).toBe(403);
        expect(answer.json.code).toBe("access_denied");
        expect(answer.json.detail).toStartWith("Only a signed-in user can have passkeys");
      }
    }
  });

  test("a disabled user cannot add a passkey", async () => {
    const alice = await fixture.session("alice");
    // Disabled elsewhere (the CLI, another instance) a moment ago: this instance has not polled the
    // store yet (its polling is paused here), so the gate still lets the session through and the
    // endpoint itself must read the user.
    await fixture.app.app.keyring.stop();
    await store.setDisabled("alice", START, START);
    const answer = await fixture.call("/auth/passkeys/register/options", { as: alice });
    expect(answer.status).toBe(403);
    expect(answer.json.detail).toContain("disabled");
    // Once the keyring has seen it, the gate refuses the session before the endpoint is reached.
    await fixture.app.app.keyring.refresh();
    const later = await fixture.call("/auth/passkeys/register/options", { as: alice });
    expect(later.status).toBe(401);
  });

  test("the challenge is single-use, and belongs to the sign-in (session) that asked for it", async () => {
    const authenticator = new SoftAuthenticator();
    const offered = await fixture.call("/auth/passkeys/register/options");
    const response = authenticator.create(offered.json as PublicKeyCredentialCreationOptionsJSON, fixture.origin);
    // alice signed in a second time (another browser): the same user, another session.
    const otherSession = await fixture.call("/auth/passkeys/register", {
      as: await fixture.openSession("alice"),
      body: { response },
    });
    expect(otherSession.status).toBe(400);
    expect(otherSession.json.detail).toContain("challenge is unknown, expired");
    expect((await fixture.call("/auth/passkeys/register", { body: { response } })).status).toBe(201);
    const again = await fixture.call("/auth/passkeys/register", { body: { response } });
    expect(again.status).toBe(400);
    expect(again.json.detail).toContain("used already");
  });

  test("a challenge expires after 5 minutes of the injected clock", async () => {
    const authenticator = new SoftAuthenticator();
    const offered = await fixture.call("/auth/passkeys/register/options");
    fixture.clock += CHALLENGE_TTL_MS;
    const late = await fixture.call("/auth/passkeys/register", {
      body: { response: authenticator.create(offered.json as never, fixture.origin) },
    });
    expect(late.status).toBe(400);
    expect(late.json.detail).toContain("expired");
  });

  test("refused: an authenticator without user verification, another origin in the client data, the same passkey twice", async () => {
    const unverified = await fixture.register(new SoftAuthenticator(false));
    expect(unverified.status).toBe(400);
    expect(unverified.json.detail).toContain("user verification");
    expect(fixture.lastRefusal()).toContain("User verification was required");

    const offered = await fixture.call("/auth/passkeys/register/options");
    const elsewhere = new SoftAuthenticator().create(offered.json as never, "http://localhost:9999");
    expect((await fixture.call("/auth/passkeys/register", { body: { response: elsewhere } })).status).toBe(400);

    const twice = new SoftAuthenticator();
    expect((await fixture.register(twice)).status).toBe(201);
    const duplicate = await fixture.register(twice);
    expect(duplicate.status).toBe(400);
    expect(duplicate.json.detail).toBe("This passkey is registered already");
  });
});

describe("requests the endpoints refuse before any verification", () => {
  test.each([
    ["no JSON content type", { headers: { "content-type": "text/plain" }, text: "{}" }, "application/json"],
    ["malformed JSON", { text: '{"response": ' }, "not valid JSON"],
    ["an empty body", { text: "" }, "not valid JSON"],
    ["a JSON array", { text: "[1,2]" }, "must be a JSON object"],
    ["no credential", { body: { name: "x" } }, "response must be the credential"],
    [
      "a credential of the wrong type",
      { body: { response: { id: "AAAA", rawId: "AAAA", type: "password", response: {} } } },
      "response must be",
    ],
    [
      "an id that is not base64url",
      { body: { response: { id: "a b", rawId: "a b", type: "public-key", response: {} } } },
      "response must be",
    ],
    [
      "a name with a control character",
      { body: { response: { id: "AA", rawId: "AA", type: "public-key", response: {} }, name: "a\u0007" } },
      "name must be",
    ],
  ] as const)("register with %s: 400 invalid_request", async (_name, call, detail) => {
    await fixture.call("/auth/passkeys/register/options");
    const answer = await fixture.call("/auth/passkeys/register", call as Call);
    expect(answer.status).toBe(400);
    expect(answer.json.code).toBe("invalid_request");
    expect(answer.json.detail).toContain(detail);
  });

  test("a body over 64 KiB is 413", async () => {
    const answer = await fixture.call("/auth/passkeys/login", { text: JSON.stringify({ pad: "x".repeat(70_000) }) });
    expect(answer.status).toBe(413);
  });

  test.each([
    ["no challenge id", { response: {} }, "challenge_id"],
    ["a challenge id of the wrong shape", { challenge_id: "short", response: {} }, "challenge_id"],
    ["an rd that is not a string", { challenge_id: "A".repeat(22), rd: 5, response: {} }, "rd must be a string"],
  ])("sign-in with %s: 400 invalid_request", async (_name, body, detail) => {
    const answer = await fixture.call("/auth/passkeys/login", { body });
    expect(answer.status).toBe(400);
    expect(answer.json.detail).toContain(detail);
  });

  test("the page's Origin must be a passkey origin: none, another port's https, another host are refused (403)", async () => {
    // The gate refuses an Origin that is neither its own host nor in ALLOWED_ORIGINS before any
    // route; these are listed there, so what refuses them below is the passkey endpoints' own rule.
    await using listed = await Fixture.start({
      ...PASSKEYS_ON,
      ALLOWED_ORIGINS: "https://evil.example,http://127.0.0.1:8080,https://localhost:8443",
    });
    for (const origin of [null, "https://evil.example", "http://127.0.0.1:8080", "null"]) {
      const answer = await listed.call("/auth/passkeys/login/options", { origin });
      expect(answer.status).toBe(403);
      expect(answer.json.code).toBe("forbidden_origin");
      // An opaque origin ("null") cannot be listed in ALLOWED_ORIGINS: the gate refuses it first.
      if (origin !== "null") expect(answer.json.detail).toStartWith("Passkeys");
    }
    // Any port of the RP ID's host will do when no list is configured (https, or http on localhost).
    expect((await listed.call("/auth/passkeys/login/options", { origin: "https://localhost:8443" })).status).toBe(200);
  });

  test("isPasskeyOrigin: a configured list is exact; without one, the RP ID's host over https (http only for localhost)", () => {
    const listed: WebAuthnSettings = { rpId: "gate.local", origins: ["https://gate.local:8443"] };
    expect(isPasskeyOrigin("https://gate.local:8443", listed)).toBe(true);
    expect(isPasskeyOrigin("https://gate.local:9443", listed)).toBe(false);
    const open: WebAuthnSettings = { rpId: "gate.local", origins: null };
    expect(isPasskeyOrigin("https://gate.local:9443", open)).toBe(true);
    expect(isPasskeyOrigin("http://gate.local:8080", open)).toBe(false);
    expect(isPasskeyOrigin("https://sub.gate.local", open)).toBe(false);
    expect(isPasskeyOrigin("http://localhost:3000", LOCALHOST)).toBe(true);
  });
});

describe("sign-in", () => {
  test("options: a discoverable credential (no allow list), user verification required, with a challenge id", async () => {
    const { challenge_id, options } = await fixture.loginOptions();
    expect(challenge_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(options).toMatchObject({ rpId: "localhost", userVerification: "required", allowCredentials: [], timeout: CHALLENGE_TTL_MS });
  });

  test("a registered passkey opens a session: JSON with the cookie, the counter and last use stored", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    fixture.clock += 60_000;
    const answer = await fixture.login(authenticator, "/secure-data");
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      session: { method: "passkey" },
      principal: { kind: "user", name: "alice" },
      redirect: "/secure-data",
    });
    expect(answer.headers.get("set-cookie")).toMatch(/^tgs=tgs_[0-9a-f]{16}_/);
    expect(await store.getPasskey(authenticator.id)).toMatchObject({ counter: 1, lastUsedAt: START + 60_000 });
    expect(fixture.auditEvents()).toContainEqual(
      expect.objectContaining({ audit: "session.created", method: "passkey", subject: "user:alice" }),
    );
    // A page navigation (no JSON asked for) is sent on with 303, and rd never leaves our hosts.
    const { challenge_id, options } = await fixture.loginOptions();
    const page = await fixture.call("/auth/passkeys/login", {
      headers: { accept: "text/html" },
      body: { challenge_id, response: authenticator.get(options, fixture.origin), rd: "https://evil.example/" },
    });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/");
  });

  test("a challenge works once: the same answer again is refused", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    const { challenge_id, options } = await fixture.loginOptions();
    const response = authenticator.get(options, fixture.origin);
    expect((await fixture.call("/auth/passkeys/login", { body: { challenge_id, response } })).status).toBe(200);
    const replay = await fixture.call("/auth/passkeys/login", { body: { challenge_id, response } });
    expect(replay.status).toBe(400);
    expect(replay.json.detail).toContain("used already");
  });

  test("a challenge expires after 5 minutes of the injected clock (and a moment before, it still works)", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    const early = await fixture.loginOptions();
    const late = await fixture.loginOptions();
    fixture.clock += CHALLENGE_TTL_MS - 1;
    expect(
      (
        await fixture.call("/auth/passkeys/login", {
          body: { challenge_id: early.challenge_id, response: authenticator.get(early.options, fixture.origin) },
        })
      ).status,
    ).toBe(200);
    fixture.clock += 1;
    const expired = await fixture.call("/auth/passkeys/login", {
      body: { challenge_id: late.challenge_id, response: authenticator.get(late.options, fixture.origin) },
    });
    expect(expired.status).toBe(400);
    expect(expired.json.detail).toContain("expired");
  });

  test("an unknown credential is 401, audited, and counted as a guess until the client is banned", async () => {
    const stranger = new SoftAuthenticator();
    stranger.userHandle = b64u(userHandleOf("alice"));
    const first = await fixture.login(stranger);
    expect(first.status).toBe(401);
    expect(first.json).toMatchObject({ code: "invalid_credentials", description: expect.stringContaining("not registered here") });
    expect(fixture.auditEvents()).toContainEqual(
      expect.objectContaining({ audit: "auth.failure", path: "/auth/passkeys/login", address: CLIENT }),
    );
    let last = first;
    for (let attempt = 0; attempt < 12 && last.status !== 429; attempt++) last = await fixture.login(stranger);
    expect(last.status).toBe(429);
    // The guard banned this client: it says for how long, and the ban is audited.
    expect(Number(last.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(fixture.auditEvents()).toContainEqual(expect.objectContaining({ audit: "ban.started", subject: `addr:${CLIENT}` }));
  });

  test("the signature counter must move forward: a lower count (a cloned authenticator) is refused", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    expect((await fixture.login(authenticator)).status).toBe(200);
    expect((await fixture.login(authenticator)).status).toBe(200);
    authenticator.counter = 0; // the clone signs with count 1, already seen
    const cloned = await fixture.login(authenticator);
    expect(cloned.status).toBe(401);
    expect(cloned.json.description).toContain("counter went backwards");
    // A counter moved upward in the store by another sign-in meanwhile: the next one is refused too.
    await store.recordPasskeyUse(authenticator.id, 50, fixture.clock);
    authenticator.counter = 10;
    expect((await fixture.login(authenticator)).json.description).toContain("counter went backwards");
    expect((await store.getPasskey(authenticator.id))!.counter).toBe(50);
  });

  test("refused: a disabled user, a user handle of another account, an assertion without user verification", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    await store.setDisabled("alice", START, START);
    const disabled = await fixture.login(authenticator);
    expect(disabled.status).toBe(403);
    expect(disabled.json.detail).toBe("This user is disabled");
    await store.setDisabled("alice", null, START);

    const handle = authenticator.userHandle;
    authenticator.userHandle = b64u(userHandleOf("mallory"));
    expect((await fixture.login(authenticator)).json.description).toContain("not registered here");
    authenticator.userHandle = handle;

    const unverified = Object.assign(new SoftAuthenticator(false), { userHandle: handle });
    Object.assign(unverified, { keys: authenticator.keys, id: authenticator.id });
    const answer = await fixture.login(unverified);
    expect(answer.status).toBe(401);
    expect(answer.json.description).toContain("could not be verified");
    expect(fixture.lastRefusal()).toContain("User verification required");
  });

  test("a signature from another key for the stored credential id is refused", async () => {
    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator);
    const forger = Object.assign(new SoftAuthenticator(), { id: authenticator.id, userHandle: authenticator.userHandle });
    const answer = await fixture.login(forger);
    expect(answer.status).toBe(401);
    expect(answer.json.description).toContain("could not be verified");
  });
});

describe("one's own passkeys", () => {
  test("list and remove only one's own; the last one stays while an administrator requires passkeys", async () => {
    await fixture.addUser("bob");
    const alices = [new SoftAuthenticator(), new SoftAuthenticator()];
    for (const authenticator of alices) expect((await fixture.register(authenticator)).status).toBe(201);
    const bobs = new SoftAuthenticator();
    const bob = await fixture.session("bob");
    expect((await fixture.register(bobs, bob)).status).toBe(201);

    const listed = await fixture.call("/auth/passkeys", { as: bob });
    expect(listed.json.passkeys.map((passkey: { id: string }) => passkey.id)).toEqual([bobs.id]);

    const notHis = await fixture.call("/auth/passkeys/remove", { as: bob, body: { id: alices[0]!.id, password: PASSWORD } });
    expect(notHis.status).toBe(404);
    expect(await store.getPasskey(alices[0]!.id)).toBeDefined();

    await store.setPasskeyRequired("alice", true, START);
    const removed = await fixture.call("/auth/passkeys/remove", { method: "DELETE", body: { id: alices[0]!.id, password: PASSWORD } });
    expect(removed).toMatchObject({ status: 200, json: { removed: alices[0]!.id } });
    expect(fixture.auditEvents()).toContainEqual(
      expect.objectContaining({ audit: "passkey.removed", user: "alice", passkey: alices[0]!.id }),
    );
    const last = await fixture.call("/auth/passkeys/remove", { body: { id: alices[1]!.id, password: PASSWORD } });
    expect(last.status).toBe(403);
    expect(last.json.detail).toContain("add another passkey before removing the last one");

    expect((await fixture.login(alices[0]!)).status).toBe(401);
    expect((await fixture.call("/auth/passkeys/remove", { body: { id: 7, password: PASSWORD } })).status).toBe(400);
  });
});

describe("through the gate", () => {
  test("the protected routes need a credential; the public ones do not; methods are enforced", async () => {
    const gate = fixture.origin; // http://localhost:<port>, the page's own origin
    // alice's access token from the password grant: a bearer credential, not an ambient cookie.
    const grant = await fetch(`${gate}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", username: "alice", password: PASSWORD }),
    });
    expect(grant.status).toBe(200);
    const tokens = (await grant.json()) as { access_token: string; refresh_token?: string };
    const token = trackSecret(tokens.access_token);
    if (tokens.refresh_token !== undefined) trackSecret(tokens.refresh_token);
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${gate}${path}`, { method: "POST", headers: { origin: fixture.origin, ...headers } });
    expect((await post("/auth/passkeys/register/options")).status).toBe(401);
    expect((await fetch(`${gate}/auth/passkeys`)).status).toBe(401);
    // A bearer token is no ambient credential (no CSRF rule), and the page's origin is what passkeys judge.
    const withPassword = (headers: Record<string, string>) =>
      fetch(`${gate}/auth/passkeys/register/options`, {
        method: "POST",
        headers: { origin: fixture.origin, "content-type": "application/json", ...headers },
        body: JSON.stringify({ password: PASSWORD }),
      });
    const offered = await withPassword({ authorization: `Bearer ${token}` });
    expect(offered.status).toBe(200);
    const creation = (await offered.json()) as { rp: { id: string }; challenge: string };
    trackSecret(creation.challenge);
    expect(creation.rp.id).toBe("localhost");
    const login = await post("/auth/passkeys/login/options");
    expect(login.status).toBe(200);
    trackSecret(((await login.json()) as { options: { challenge: string } }).options.challenge);
    expect((await fetch(`${gate}/auth/passkeys/login/options`)).status).toBe(405);
    // Addressed as 127.0.0.1, a page at localhost is another origin: the gate refuses it before any route.
    const elsewhere = await fetch(`${fixture.app.http}/auth/passkeys/login/options`, {
      method: "POST",
      headers: { origin: fixture.origin },
    });
    expect(elsewhere.status).toBe(403);
  });
});

describe("the challenge book", () => {
  test("bounded: past the limit the oldest pending challenge goes; expired ones are swept first", () => {
    let clock = 0;
    const book = createChallengeBook(() => clock, 3, 1000);
    book.put("a", "1");
    book.put("b", "2");
    book.put("c", "3");
    book.put("d", "4");
    expect(book.size).toBe(3);
    expect(book.take("a")).toBeUndefined();
    expect(book.take("b")).toBe("2");
    expect(book.take("b")).toBeUndefined();
    clock = 1000;
    book.put("e", "5");
    expect(book.size).toBe(1);
    expect(book.take("e")).toBe("5");
  });
});

describe("admin commands (users require-passkey, users passkeys)", () => {
  function cliContext(out: string[], err: string[]): CliContext {
    return {
      io: { out: (text) => void out.push(text), err: (text) => void err.push(text) },
      openStore: () => openDataDirStore(fixture.app.dataDir),
      now: () => START,
      roleScopes: new Map([["viewer", ["data:read"]]]),
      knownScopes: [],
      readPassword: async () => undefined,
      typedPasswords: false,
      jwtAlg: "EdDSA",
      program: "bun run cli",
      consoleUrls: () => [],
      examine: async () => [],
    };
  }

  async function run(...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, cliContext(out, err));
    return { code, out: out.join(""), err: err.join("") };
  }

  test("require a passkey only once the user has one; list; the last one stays until --off, then remove", async () => {
    const refused = await run("users", "require-passkey", "alice");
    expect(refused.code).toBe(EXIT.conflict);
    expect(refused.err).toContain("alice has no passkey yet");
    expect((await store.getUser("alice"))!.passkeyRequired).toBe(false);

    const authenticator = new SoftAuthenticator();
    await fixture.register(authenticator, undefined, "Phone");
    expect((await run("users", "require-passkey", "alice")).code).toBe(EXIT.ok);
    expect((await store.getUser("alice"))!.passkeyRequired).toBe(true);

    const table = await run("users", "passkeys", "alice");
    expect(table.out).toMatch(new RegExp(`^ID +NAME +CREATED +LAST USED\n${authenticator.id} +Phone +2027-03-01 12:00Z +never\n`));
    expect(table.out).toContain("alice must sign in with a passkey.");
    const json = JSON.parse((await run("users", "passkeys", "alice", "--json")).out);
    expect(json).toEqual([
      { id: authenticator.id, name: "Phone", transports: ["internal"], created_at: new Date(START).toISOString(), last_used_at: null },
    ]);

    // The last passkey of a user who must use one stays, as it does for her own removal: one rule.
    // A base64url id may start with "-": after "--" it is never read as an option.
    const kept = await run("users", "passkeys", "remove", "alice", "--", authenticator.id);
    expect(kept.code).toBe(EXIT.conflict);
    expect(kept.err).toContain("users require-passkey alice --off");
    expect(await store.getPasskey(authenticator.id)).toBeDefined();

    expect((await run("users", "require-passkey", "alice", "--off")).code).toBe(EXIT.ok);
    expect((await store.getUser("alice"))!.passkeyRequired).toBe(false);
    const removed = await run("users", "passkeys", "remove", "alice", "--", authenticator.id);
    expect(removed.code).toBe(EXIT.ok);
    expect(removed.out).toBe(`Removed passkey ${authenticator.id} of alice; it no longer signs in.\n`);
    expect(await store.getPasskey(authenticator.id)).toBeUndefined();
    expect((await run("users", "passkeys", "remove", "alice", "--", authenticator.id)).code).toBe(EXIT.notFound);
  });

  test.each([
    [["users", "require-passkey", "nobody"], EXIT.notFound, "No user named nobody"],
    [["users", "passkeys", "nobody"], EXIT.notFound, "No user named nobody"],
    [["users", "passkeys", "remove", "alice"], EXIT.usage, "give the username and the passkey's id"],
    [["users", "passkeys", "remove", "alice", "no spaces"], EXIT.usage, "base64url"],
    [["users", "passkeys"], EXIT.usage, "give one username"],
  ])("%p exits %d", async (argv, code, text) => {
    const answer = await run(...argv);
    expect(answer.code).toBe(code);
    expect(answer.err).toContain(text);
  });

  test("users passkeys with no passkeys says how to add one", async () => {
    expect((await run("users", "passkeys", "alice")).out).toContain('"Add a passkey"');
  });
});

describe("doctor: can passkeys work with these settings?", () => {
  const judge = (env: Record<string, string>) => {
    const parsed = parseConfig({ AUTH_TOKEN: newSecret(), ...env }, { isTTY: false });
    if (!parsed.ok) throw new Error(parsed.problems.map((problem) => `${problem.variable} ${problem.message}`).join("; "));
    return inspectPasskeys(parsed.config);
  };

  test("off without a domain: says how to turn them on (not a warning: passkeys are optional)", () => {
    expect(judge({})).toMatchObject({
      check: "passkeys",
      status: "ok",
      message: expect.stringContaining("PUBLIC_URL=https://<name>.local:<port>"),
    });
  });

  test("a plain-http origin other than localhost: browsers need a secure context", () => {
    const verdict = judge({ WEBAUTHN_RP_ID: "gate.local", WEBAUTHN_ORIGINS: "http://gate.local:8080" });
    expect(verdict.status).toBe("warn");
    expect(verdict.message).toContain("secure context");
  });

  test("a domain without TLS: warns; with PUBLIC_URL over https and TLS, or on localhost: ok", () => {
    expect(judge({ WEBAUTHN_RP_ID: "gate.local" }).status).toBe("warn");
    const fixtures = join(import.meta.dir, "../fixtures");
    const tls = { TLS_CERT_FILE: join(fixtures, "tls-cert.pem"), TLS_KEY_FILE: join(fixtures, "tls-key.pem") };
    expect(judge({ PUBLIC_URL: "https://gate.local:8443", ...tls })).toMatchObject({
      status: "ok",
      message: expect.stringContaining("https://gate.local:8443"),
    });
    expect(judge({ WEBAUTHN_RP_ID: "localhost" }).status).toBe("ok");
  });
});

test("no secret used in this file reached any output", () => {
  captureOutput("passkeys test output\n");
  expectNoSecretsInOutput();
});
