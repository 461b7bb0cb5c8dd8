/**
 * The admin API for users over real sockets: every endpoint's success and refusals (no credential
 * 401, no admin scope 403, a cookie change without Origin 403, bad fields 400 naming them, an
 * unknown user 404, the last admin and self-disabling 409), the audit line of each change (with
 * the username, never the password), a disabled user's socket closing 4403, a password reset
 * ending sessions, and the same operation through the CLI and the API leaving the same record.
 * Password hashing is argon2id (~100 ms each): the file makes few users.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AdminProblem } from "../../auth/admin/keys.ts";
import { setUserDisabled } from "../../auth/admin/users.ts";
import { EXIT } from "../../auth/cli/shared.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import type { UserRecord } from "../../auth/store/store.ts";
import { cli, cliWithInput } from "../support/cli.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { adminCaller, expectRequestsRefused, OUTSIDERS, type AdminCallOptions } from "../support/admin.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const ROOT_PASSWORD = trackSecret("root's long passphrase 1");
const ANN_PASSWORD = trackSecret("ann's long passphrase 2");
const BOB_PASSWORD = trackSecret("bob's long passphrase 3");
/** The default ROLE_SCOPES, as the app under test is configured. */
const ROLE_SCOPES = new Map([
  ["admin", ["*"]],
  ["viewer", ["data:read", "ws:connect"]],
]);
/** What every argon2id hash tokengate stores starts with: the algorithm and its parameters. */
const ARGON2_PREFIX = "$argon2id$v=19$m=65536,t=2,p=1$";

let app: TestApp;
let admin: { id: string; token: string };
let viewer: { id: string; token: string };

beforeAll(async () => {
  app = await startTestApp();
  admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  viewer = await insertApiKey(app.store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
  const [rootHash, annHash] = await Promise.all([hashPassword(ROOT_PASSWORD), hashPassword(ANN_PASSWORD)]);
  await app.store.insertUser({ username: "root", passwordHash: rootHash, roles: ["admin"], createdAt: Date.now() });
  await app.store.insertUser({ username: "ann", passwordHash: annHash, roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

interface UserJson {
  readonly username: string;
  readonly roles: string[];
  readonly scopes: string[];
  readonly disabled: boolean;
  readonly passkey_required: boolean;
  readonly passkeys: number;
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly body: { code?: string; detail?: string; user?: UserJson; users?: UserJson[]; sessions_ended?: number };
}

/** The admin API as this file's admin. */
const call = (path: string, options: AdminCallOptions = {}) =>
  adminCaller(
    () => app.http,
    () => admin.token,
  )<Answer["body"]>(path, options);

/** A password sign-in over HTTP: the session cookie (`tgs=…`), registered as a secret. */
const signIn = async (username: string, password: string) => (await signInWithPassword(app.http, username, password)).cookie;

const whoami = async (cookie: string) => (await fetch(`${app.http}/auth/whoami`, { headers: { cookie } })).status;
const auditLines = () => app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);
const adminActions = (action: string) => auditLines().filter((line) => line.audit === "admin.action" && line.action === action);

describe("users", () => {
  test("list: every user with roles, the scopes they grant, state and passkeys; never a hash", async () => {
    const listed = await call("/users");
    expect(listed.status).toBe(200);
    expect(listed.body.users).toContainEqual(
      expect.objectContaining({ username: "root", roles: ["admin"], scopes: ["*"], disabled: false, passkey_required: false, passkeys: 0 }),
    );
    expect(listed.body.users).toContainEqual(expect.objectContaining({ username: "ann", scopes: ["data:read", "ws:connect"] }));
    expect(listed.text).not.toContain("$argon2id");
  });

  test("add: 201, stored as the CLI stores it (argon2id), signs in at once, audited without the password; again 409", async () => {
    const added = await call("/users", { body: { username: "bob", roles: ["viewer", "viewer"], password: BOB_PASSWORD } });
    expect(added.status).toBe(201);
    expect(added.body.user).toMatchObject({ username: "bob", roles: ["viewer"], scopes: ["data:read", "ws:connect"], disabled: false });
    expect(added.text).not.toContain(BOB_PASSWORD);
    const stored = (await app.store.getUser("bob"))!;
    expect(stored.passwordHash.startsWith(ARGON2_PREFIX)).toBe(true);
    expect(await Bun.password.verify(BOB_PASSWORD, stored.passwordHash)).toBe(true);
    expect(adminActions("users.add")).toEqual([expect.objectContaining({ username: "bob", roles: "viewer", by: admin.id })]);
    await signIn("bob", BOB_PASSWORD);
    const again = await call("/users", { body: { username: "bob", roles: ["viewer"], password: BOB_PASSWORD } });
    expect(again.status).toBe(409);
    expect(again.body.detail).toContain("exists already");
  });

  test.each([
    ["nothing", {}, ["username", "roles", "password"]],
    [
      "a bad name, an unknown role and a short password",
      { username: "b:ob", roles: ["root"], password: "short-pw" },
      ["username", "roles", "password"],
    ],
    ["no role", { username: "carl", roles: [], password: "long enough password" }, ["roles"]],
    ["a password that is not a string", { username: "carl", roles: ["viewer"], password: 1234567890123 }, ["password"]],
  ])("add with %s: 400 naming each field at fault, never the password, nothing stored", async (_name, body, fields) => {
    const before = (await app.store.listUsers()).length;
    const answer = await call("/users", { body });
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe("invalid_request");
    for (const field of fields) expect(answer.body.detail).toContain(`${field}:`);
    expect(answer.text).not.toContain("short-pw");
    expect(answer.text).not.toContain("1234567890123");
    expect((await app.store.listUsers()).length).toBe(before);
  });

  test("disable: the user's open socket (cookie session + Origin) closes 4403 at once; enable lets them sign in again", async () => {
    const cookie = await signIn("ann", ANN_PASSWORD);
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    const started = performance.now();
    const disabled = await call("/users/disable", { body: { username: "ann" } });
    expect(disabled.status).toBe(200);
    expect(disabled.body.user).toMatchObject({ username: "ann", disabled: true });
    expect((await probe.closed).code).toBe(4403);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await whoami(cookie)).toBe(401);
    expect(adminActions("users.disable")).toContainEqual(expect.objectContaining({ username: "ann", by: admin.id }));

    const enabled = await call("/users/enable", { body: { username: "ann" } });
    expect(enabled.status).toBe(200);
    expect(enabled.body.user!.disabled).toBe(false);
    // Enabling never revives the sessions disabling ended.
    expect(await whoami(cookie)).toBe(401);
    expect(await whoami(await signIn("ann", ANN_PASSWORD))).toBe(200);
  });

  test.each(["/users/disable", "/users/enable", "/users/roles", "/users/password", "/users/require-passkey"])(
    "%s for an unknown user: 404",
    async (path) => {
      const answer = await call(path, {
        body: { username: "nobody", roles: ["viewer"], password: "long enough password", required: false },
      });
      expect(answer.status).toBe(404);
      expect(answer.body).toMatchObject({ code: "not_found", detail: "No user named nobody" });
    },
  );

  test("the last enabled admin cannot be disabled or lose the admin role: 409 from the API, exit 4 from the CLI", async () => {
    const disable = await call("/users/disable", { body: { username: "root" } });
    expect(disable.status).toBe(409);
    expect(disable.body.detail).toContain("root is the last enabled admin");
    const demote = await call("/users/roles", { body: { username: "root", roles: ["viewer"] } });
    expect(demote.status).toBe(409);
    expect(demote.body.code).toBe("conflict");
    const viaCli = await cli(app.dataDir, "users", "disable", "root");
    expect(viaCli.code).toBe(EXIT.conflict);
    expect(viaCli.stderr).toContain("root is the last enabled admin");
    expect(await app.store.getUser("root")).toMatchObject({ roles: ["admin"], disabledAt: null });
    expect(adminActions("users.disable").some((line) => line.username === "root")).toBe(false);
  });

  test("roles: granting more keeps the sessions; granting less ends them; audited with the roles", async () => {
    const cookie = await signIn("bob", BOB_PASSWORD);
    const promoted = await call("/users/roles", { body: { username: "bob", roles: ["admin", "viewer"] } });
    expect(promoted.status).toBe(200);
    expect(promoted.body).toMatchObject({
      user: { roles: ["admin", "viewer"], scopes: ["*", "data:read", "ws:connect"] },
      sessions_ended: 0,
    });
    expect(await whoami(cookie)).toBe(200);
    const demoted = await call("/users/roles", { body: { username: "bob", roles: ["viewer"] } });
    expect(demoted.status).toBe(200);
    expect(demoted.body.sessions_ended).toBeGreaterThanOrEqual(1);
    expect(await whoami(cookie)).toBe(401);
    expect(adminActions("users.roles")).toContainEqual(expect.objectContaining({ username: "bob", roles: "viewer" }));
    expect((await call("/users/roles", { body: { username: "bob", roles: ["root"] } })).body.detail).toContain("roles: unknown role root");
  });

  test("two admins disabled at once: the rule is judged in the write's transaction, so one of them stays", async () => {
    await call("/users/roles", { body: { username: "bob", roles: ["admin"] } });
    // Straight at the shared operation: two HTTP requests rarely interleave this closely.
    const outcomes = await Promise.all(
      ["root", "bob"].map((username) => setUserDisabled(app.store, ROLE_SCOPES, username, true, Date.now())),
    );
    const refused = outcomes.filter((outcome) => outcome instanceof AdminProblem);
    expect(refused).toEqual([expect.objectContaining({ kind: "conflict" })]);
    const disabled = outcomes.find((outcome) => !(outcome instanceof AdminProblem)) as UserRecord;
    expect((await call("/users/enable", { body: { username: disabled.username } })).status).toBe(200);
    expect((await call("/users/roles", { body: { username: "bob", roles: ["viewer"] } })).status).toBe(200);
  });

  test("an admin disables their own account only with confirm: true", async () => {
    await call("/users/roles", { body: { username: "bob", roles: ["admin"] } });
    const cookie = await signIn("bob", BOB_PASSWORD);
    const headers = { cookie, origin: app.http };
    const refused = await call("/users/disable", { token: null, headers, body: { username: "bob" } });
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain("confirm: true");
    expect((await app.store.getUser("bob"))!.disabledAt).toBeNull();
    const confirmed = await call("/users/disable", { token: null, headers, body: { username: "bob", confirm: true } });
    expect(confirmed.status).toBe(200);
    expect(await whoami(cookie)).toBe(401);
    expect(adminActions("users.disable")).toContainEqual(expect.objectContaining({ username: "bob", by: "user:bob", by_kind: "user" }));
    await call("/users/enable", { body: { username: "bob" } });
    await call("/users/roles", { body: { username: "bob", roles: ["viewer"] } });
  });

  test("password: a reset ends the user's sessions unless keep_sessions; only the new password signs in", async () => {
    const first = trackSecret("ann's first new passphrase");
    const second = trackSecret("ann's second new passphrase");
    const cookie = await signIn("ann", ANN_PASSWORD);
    const kept = await call("/users/password", { body: { username: "ann", password: first, keep_sessions: true } });
    expect(kept.status).toBe(200);
    expect(kept.body.sessions_ended).toBe(0);
    expect(await whoami(cookie)).toBe(200);
    const reset = await call("/users/password", { body: { username: "ann", password: second } });
    expect(reset.status).toBe(200);
    expect(reset.body.sessions_ended).toBeGreaterThanOrEqual(1);
    expect(reset.text).not.toContain(second);
    expect(await whoami(cookie)).toBe(401);
    await expect(signIn("ann", first)).rejects.toThrow("was not signed in");
    expect(await whoami(await signIn("ann", second))).toBe(200);
    expect(adminActions("users.password").at(-1)).toMatchObject({ username: "ann", sessions_ended: reset.body.sessions_ended! });
    const short = await call("/users/password", { body: { username: "ann", password: "tiny" } });
    expect(short.status).toBe(400);
    expect(short.body.detail).toBe("Invalid request: password: must have at least 10 characters");
  });

  test("require-passkey: 409 without a passkey; on ends the user's sessions, off allows the password again", async () => {
    const refused = await call("/users/require-passkey", { body: { username: "ann", required: true } });
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain("ann has no passkey yet");
    await app.store.insertPasskey({
      id: "YW5uLXBob25l",
      username: "ann",
      publicKey: new Uint8Array([1, 2, 3]),
      counter: 0,
      transports: ["internal"],
      name: "Phone",
      createdAt: Date.now(),
    });
    // The previous test changed ann's password: back to the one this file signs her in with.
    expect((await call("/users/password", { body: { username: "ann", password: ANN_PASSWORD } })).status).toBe(200);
    const cookie = await signIn("ann", ANN_PASSWORD);
    const on = await call("/users/require-passkey", { body: { username: "ann", required: true } });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ user: { passkey_required: true, passkeys: 1 }, sessions_ended: 1 });
    expect(await whoami(cookie)).toBe(401);
    const off = await call("/users/require-passkey", { body: { username: "ann", required: false } });
    expect(off.body).toMatchObject({ user: { passkey_required: false }, sessions_ended: 0 });
    expect(adminActions("users.require-passkey").map((line) => line.required)).toEqual([true, false]);
  });
});

describe("who may call it", () => {
  const changes: ReadonlyArray<readonly [string, unknown]> = [
    ["/users", { username: "sneaky", roles: ["admin"], password: "long enough password" }],
    ["/users/disable", { username: "root" }],
    ["/users/enable", { username: "ann" }],
    ["/users/roles", { username: "ann", roles: ["admin"] }],
    ["/users/password", { username: "root", password: "long enough password" }],
    ["/users/require-passkey", { username: "ann", required: true }],
  ];

  test.each(OUTSIDERS)("%s: refused on every endpoint, nothing done", async (_name, outsider, status, code) => {
    const before = await app.store.listUsers();
    const requests = [["/users", undefined], ...changes] as const;
    await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
    expect(await app.store.listUsers()).toEqual(before);
  });

  test("an admin signed in with the cookie: every change needs the page's Origin (CSRF), a read does not", async () => {
    const cookie = await signIn("root", ROOT_PASSWORD);
    expect((await call("/users", { token: null, headers: { cookie } })).status).toBe(200);
    const before = await app.store.listUsers();
    for (const [path, body] of changes) {
      const forged = await call(path, { token: null, headers: { cookie }, body });
      expect(forged.status).toBe(403);
      expect(forged.body.code).toBe("forbidden_origin");
    }
    expect(await app.store.listUsers()).toEqual(before);
    const own = await call("/users/enable", { token: null, headers: { cookie, origin: app.http }, body: { username: "ann" } });
    expect(own.status).toBe(200);
    expect(adminActions("users.enable").at(-1)).toMatchObject({ username: "ann", by: "user:root", by_kind: "user" });
  });
});

describe("one implementation, two faces", () => {
  test("a user added and disabled by the CLI and one by the API are stored alike, and each face lists the other's", async () => {
    const password = trackSecret("the twins' long passphrase");
    const viaCli = await cliWithInput(app.dataDir, `${password}\n`, "users", "add", "twin-cli", "--role", "viewer");
    expect(viaCli.code).toBe(EXIT.ok);
    expect((await call("/users", { body: { username: "twin-api", roles: ["viewer"], password } })).status).toBe(201);
    expect((await cli(app.dataDir, "users", "disable", "twin-cli")).code).toBe(EXIT.ok);
    expect((await call("/users/disable", { body: { username: "twin-api" } })).status).toBe(200);

    const [a, b] = await Promise.all([app.store.getUser("twin-cli"), app.store.getUser("twin-api")]);
    const shape = (user: typeof a) => ({
      roles: user!.roles,
      disabled: user!.disabledAt !== null,
      passkeyRequired: user!.passkeyRequired,
      hashParameters: user!.passwordHash.slice(0, ARGON2_PREFIX.length),
    });
    expect(shape(a)).toEqual(shape(b));
    expect(shape(a).hashParameters).toBe(ARGON2_PREFIX);
    for (const user of [a, b]) expect(await Bun.password.verify(password, user!.passwordHash)).toBe(true);

    const listedByApi = (await call("/users")).body.users!;
    expect(listedByApi).toContainEqual(expect.objectContaining({ username: "twin-cli", disabled: true }));
    const listedByCli = JSON.parse((await cli(app.dataDir, "users", "list", "--json")).stdout) as UserJson[];
    expect(listedByCli).toContainEqual(expect.objectContaining({ username: "twin-api", roles: ["viewer"], disabled: true }));
  });
});

test("no password reached any answer, audit line or log", () => {
  const audit = app.audit.join("");
  for (const password of [ROOT_PASSWORD, ANN_PASSWORD, BOB_PASSWORD]) expect(audit.includes(password)).toBe(false);
  expectNoSecretsInOutput();
});
