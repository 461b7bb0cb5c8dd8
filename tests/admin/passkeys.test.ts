/**
 * The admin API for users' passkeys over real sockets, on both store engines: listing everyone's
 * and one user's (never a public key or a counter), removing one, the last passkey of a user who
 * must use passkeys kept (409 here, exit 4 from the CLI: one rule, as for one's own removal), every
 * refusal (401, 403 without the admin scope, 403 for a cookie change without Origin, 400 naming the
 * field, 404), answers checked against the OpenAPI document, the audit line with the actor, and the
 * CLI and the API leaving the same stored result.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import type { NewPasskey } from "../../auth/store/store.ts";
import { createCapturedAdminCaller, expectRequestsRefused, loadAnswerCheck, OUTSIDERS, type AnswerCheck } from "../support/admin.ts";
import { ENGINES, startEngineApp, type EngineApp } from "../support/admin-engines.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = trackSecret("the passkey test's passphrase");
/** A public key no answer may show, in any of the forms bytes are written. */
const PUBLIC_KEY = new Uint8Array(Array.from({ length: 32 }, (_, index) => 0xa0 + index));
trackSecret(Buffer.from(PUBLIC_KEY).toString("base64url"));
trackSecret(Buffer.from(PUBLIC_KEY).toString("base64"));
trackSecret(Buffer.from(PUBLIC_KEY).toString("hex"));

const passkey = (id: string, username: string, name: string, createdAt: number): NewPasskey => ({
  id,
  username,
  publicKey: PUBLIC_KEY,
  counter: 41,
  transports: ["usb"],
  name,
  createdAt,
});

interface PasskeyJson {
  readonly id: string;
  readonly username: string;
  readonly name: string;
  readonly [field: string]: unknown;
}
type Body = { passkeys?: PasskeyJson[]; passkey?: PasskeyJson; code?: string; detail?: string; [field: string]: unknown };

describe.each(ENGINES)("users' passkeys on %s", (engine, available) => {
  const it = available ? test : test.skip;
  let env: EngineApp;
  let admin: { id: string; token: string };
  let viewer: { id: string; token: string };
  let check: AnswerCheck;

  beforeAll(async () => {
    if (!available) return;
    env = await startEngineApp(engine);
    const { store } = env.app;
    admin = await insertApiKey(store, { name: "admin phone", scopes: ["*"] });
    viewer = await insertApiKey(store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
    const passwordHash = await hashPassword(PASSWORD);
    for (const [username, roles] of [
      ["root", ["admin"]],
      ["ann", ["viewer"]],
      ["bob", ["viewer"]],
      ["cy", ["viewer"]],
    ] as const) {
      await store.insertUser({ username, passwordHash, roles, createdAt: Date.now() });
    }
    await store.insertPasskey(passkey("YW5uLXBob25l", "ann", "Phone", 1_700_000_000_000));
    await store.insertPasskey(passkey("-YW5uLWtleQ", "ann", "Security key", 1_700_000_100_000));
    await store.insertPasskey(passkey("Ym9iLWxhcHRvcA", "bob", "Laptop", 1_700_000_200_000));
    await store.setPasskeyRequired("bob", true, Date.now());
    await env.app.app.keyring.refresh();
    check = await loadAnswerCheck(env.app.http);
  });
  afterAll(async () => {
    if (available) await env[Symbol.asyncDispose]();
  });

  /** The admin API as this file's admin; every answer joins the leak scan. */
  const call = createCapturedAdminCaller<Body>(
    () => env.app.http,
    () => admin.token,
  );
  const auditLines = () => env.app.audit.map((line) => JSON.parse(line) as Record<string, unknown>);
  const adminActions = (action: string) => auditLines().filter((line) => line.action === action);
  const removalEvents = () => auditLines().filter((line) => line.audit === "passkey.removed");
  const storedIds = async (username: string) => (await env.app.store.listPasskeys(username)).map((record) => record.id);

  describe("list", () => {
    it("everyone's: id, username, name and times only; never the public key, counter or transports", async () => {
      const listed = await call("/users/passkeys");
      expect(listed.status).toBe(200);
      check("get", "/users/passkeys", listed);
      expect(listed.body.passkeys).toEqual([
        { id: "YW5uLXBob25l", username: "ann", name: "Phone", created_at: "2023-11-14T22:13:20.000Z", last_used_at: null },
        { id: "-YW5uLWtleQ", username: "ann", name: "Security key", created_at: "2023-11-14T22:15:00.000Z", last_used_at: null },
        { id: "Ym9iLWxhcHRvcA", username: "bob", name: "Laptop", created_at: "2023-11-14T22:16:40.000Z", last_used_at: null },
      ]);
      expect(listed.text).not.toMatch(/public|counter|transports/);
    });

    it.each([
      ["ann", 200, { username: "ann", passkey_required: false }, 2],
      ["bob", 200, { username: "bob", passkey_required: true }, 1],
      ["cy", 200, { username: "cy", passkey_required: false }, 0],
      ["nobody", 404, { code: "not_found", detail: "No user named nobody" }, undefined],
    ] as const)("one user's (%s): %d", async (username, status, expected, count) => {
      const answer = await call("/users/passkeys", { body: { username } });
      expect(answer.status).toBe(status);
      check("post", "/users/passkeys", answer);
      expect(answer.body).toMatchObject(expected);
      if (count !== undefined) expect(answer.body.passkeys).toHaveLength(count);
    });

    it.each([
      ["no username", {}, ["username"]],
      ["a malformed username", { username: "a b" }, ["username"]],
      ["a number", { username: 7 }, ["username"]],
    ])("one user's with %s: 400 naming the field", async (_name, body, fields) => {
      const answer = await call("/users/passkeys", { body });
      expect(answer.status).toBe(400);
      check("post", "/users/passkeys", answer);
      for (const field of fields) expect(answer.body.detail).toContain(`${field}:`);
    });
  });

  describe("remove", () => {
    it("one passkey: 200 with the view and how many are left, gone from the store, audited with the actor", async () => {
      const removed = await call("/users/passkeys/remove", { body: { username: "ann", id: "-YW5uLWtleQ" } });
      expect(removed.status).toBe(200);
      check("post", "/users/passkeys/remove", removed);
      expect(removed.body).toEqual({
        passkey: { id: "-YW5uLWtleQ", username: "ann", name: "Security key", created_at: "2023-11-14T22:15:00.000Z", last_used_at: null },
        remaining: 1,
      });
      expect(await storedIds("ann")).toEqual(["YW5uLXBob25l"]);
      expect(adminActions("users.passkeys.remove")).toContainEqual(
        expect.objectContaining({
          audit: "admin.action",
          by: admin.id,
          by_kind: "key",
          username: "ann",
          passkey_id: "-YW5uLWtleQ",
          remaining: 1,
        }),
      );
      // The event a user's own removal records as well, with the admin as the one who removed it.
      expect(removalEvents()).toContainEqual({
        time: expect.any(String),
        audit: "passkey.removed",
        user: "ann",
        passkey: "-YW5uLWtleQ",
        by: admin.id,
      });
    });

    it.each([
      ["a passkey already removed", { username: "ann", id: "-YW5uLWtleQ" }, "ann has no passkey -YW5uLWtleQ"],
      ["another user's passkey", { username: "ann", id: "Ym9iLWxhcHRvcA" }, "ann has no passkey Ym9iLWxhcHRvcA"],
      ["an unknown user", { username: "nobody", id: "YW5uLXBob25l" }, "No user named nobody"],
    ])("%s: 404, nothing removed", async (_name, body, detail) => {
      const before = await env.app.store.listPasskeys();
      const answer = await call("/users/passkeys/remove", { body });
      expect(answer.status).toBe(404);
      check("post", "/users/passkeys/remove", answer);
      expect(answer.body).toMatchObject({ code: "not_found", detail });
      expect(await env.app.store.listPasskeys()).toEqual(before);
    });

    it.each([
      ["nothing", {}, ["username", "id"]],
      ["a malformed id", { username: "ann", id: "no spaces" }, ["id"]],
      ["a malformed username", { username: "a:b", id: "YW5uLXBob25l" }, ["username"]],
    ])("with %s: 400 naming each field", async (_name, body, fields) => {
      const answer = await call("/users/passkeys/remove", { body });
      expect(answer.status).toBe(400);
      check("post", "/users/passkeys/remove", answer);
      for (const field of fields) expect(answer.body.detail).toContain(`${field}:`);
    });

    it("the last passkey of a user who must use one stays: 409 here, exit 4 from the CLI; allowed once the requirement is off", async () => {
      const refused = await call("/users/passkeys/remove", { body: { username: "bob", id: "Ym9iLWxhcHRvcA" } });
      expect(refused.status).toBe(409);
      check("post", "/users/passkeys/remove", refused);
      expect(refused.body.code).toBe("conflict");
      expect(refused.body.detail).toContain("bob must sign in with a passkey and this is their last one");
      const viaCli = await env.cli("users", "passkeys", "remove", "bob", "Ym9iLWxhcHRvcA");
      expect(viaCli.code).toBe(EXIT.conflict);
      expect(viaCli.stderr).toContain("users require-passkey bob --off");
      expect(await storedIds("bob")).toEqual(["Ym9iLWxhcHRvcA"]);
      expect(adminActions("users.passkeys.remove").some((line) => line.username === "bob")).toBe(false);
      expect(removalEvents().some((line) => line.user === "bob")).toBe(false);

      expect((await call("/users/require-passkey", { body: { username: "bob", required: false } })).status).toBe(200);
      const removed = await call("/users/passkeys/remove", { body: { username: "bob", id: "Ym9iLWxhcHRvcA" } });
      expect(removed.status).toBe(200);
      expect(removed.body.remaining).toBe(0);
      expect(await storedIds("bob")).toEqual([]);
    });
  });

  describe("who may call it", () => {
    it.each(OUTSIDERS)("%s: refused on every endpoint, nothing removed", async (_name, outsider, status, code) => {
      const before = await env.app.store.listPasskeys();
      const requests = [
        ["/users/passkeys", undefined],
        ["/users/passkeys", { username: "ann" }],
        ["/users/passkeys/remove", { username: "ann", id: "YW5uLXBob25l" }],
      ] as const;
      await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
      expect(await env.app.store.listPasskeys()).toEqual(before);
    });

    it("an admin signed in with the cookie: a POST needs the page's Origin (CSRF), a GET does not", async () => {
      const { cookie } = await signInWithPassword(env.app.http, "root", PASSWORD);
      await env.app.store.insertPasskey(passkey("Y3ktcGhvbmU", "cy", "Phone", Date.now()));
      expect((await call("/users/passkeys", { token: null, headers: { cookie } })).status).toBe(200);
      for (const [path, body] of [
        ["/users/passkeys", { username: "cy" }],
        ["/users/passkeys/remove", { username: "cy", id: "Y3ktcGhvbmU" }],
      ] as const) {
        const forged = await call(path, { token: null, headers: { cookie }, body });
        expect(forged.status).toBe(403);
        expect(forged.body.code).toBe("forbidden_origin");
      }
      expect(await storedIds("cy")).toEqual(["Y3ktcGhvbmU"]);
      const headers = { cookie, origin: env.app.http };
      const own = await call("/users/passkeys/remove", { token: null, headers, body: { username: "cy", id: "Y3ktcGhvbmU" } });
      expect(own.status).toBe(200);
      expect(adminActions("users.passkeys.remove").at(-1)).toMatchObject({ by: "user:root", by_kind: "user", username: "cy" });
      expect(removalEvents().at(-1)).toMatchObject({ user: "cy", passkey: "Y3ktcGhvbmU", by: "user:root" });
    });
  });

  describe("one implementation, two faces", () => {
    it("a passkey removed by the CLI and one by the API leave the same store, and both faces list the same passkeys", async () => {
      const at = 1_700_001_000_000;
      for (const id of ["dHdpbi1jbGk", "dHdpbi1hcGk", "dHdpbi1rZXB0"]) await env.app.store.insertPasskey(passkey(id, "cy", "Twin", at));
      const byCliList = JSON.parse((await env.cli("users", "passkeys", "cy", "--json")).stdout) as Array<Record<string, unknown>>;
      const byApiList = (await call("/users/passkeys", { body: { username: "cy" } })).body.passkeys!;
      // The CLI's --json keeps its fields (transports, no username); the rest is the one view.
      expect(byCliList.map(({ transports: _transports, ...rest }) => rest)).toEqual(
        byApiList.map(({ username: _username, ...rest }) => rest),
      );

      const viaCli = await env.cli("users", "passkeys", "remove", "cy", "dHdpbi1jbGk");
      expect(viaCli.code).toBe(EXIT.ok);
      expect(viaCli.stdout).toBe("Removed passkey dHdpbi1jbGk of cy; it no longer signs in.\n");
      expect((await call("/users/passkeys/remove", { body: { username: "cy", id: "dHdpbi1hcGk" } })).status).toBe(200);
      expect(await storedIds("cy")).toEqual(["dHdpbi1rZXB0"]);
      // Both faces say "not found" alike for either removed passkey: exit 3, 404.
      expect((await env.cli("users", "passkeys", "remove", "cy", "dHdpbi1hcGk")).code).toBe(EXIT.notFound);
      expect((await call("/users/passkeys/remove", { body: { username: "cy", id: "dHdpbi1jbGk" } })).status).toBe(404);
      expect((await env.cli("users", "passkeys", "remove", "nobody", "dHdpbi1rZXB0")).stderr).toContain("No user named nobody");
    });
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
