/**
 * The admin API for refresh-token families over real sockets, on both store engines: the listing
 * (never a token or its hash), revoking one family (its access token is refused on the very next
 * request, its socket closes 4403, its refresh token no longer refreshes) and all of a user's, every
 * refusal (401, 403 without the admin scope, 403 for a cookie change without Origin, 400 naming the
 * field, 404, 409 for a family revoked already or the caller's own without confirm), answers checked
 * against the OpenAPI document, the audit line with the actor, and the CLI and the API leaving the
 * same stored result.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import type { RefreshFamilyRecord } from "../../auth/store/store.ts";
import { createCapturedAdminCaller, expectRequestsRefused, loadAnswerCheck, OUTSIDERS, type AnswerCheck } from "../support/admin.ts";
import { ENGINES, requestTokens, startEngineApp, type EngineApp } from "../support/admin-engines.ts";
import { WsProbe } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = trackSecret("everyone's long test passphrase");
const FAMILY_FIELDS = [
  "client_id",
  "created_at",
  "expires_at",
  "family_id",
  "last_rotated_at",
  "revoked",
  "revoked_at",
  "scopes",
  "subject",
].sort();

interface FamilyJson {
  readonly family_id: string;
  readonly subject: string;
  readonly revoked: boolean;
  readonly [field: string]: unknown;
}
type Body = { families?: FamilyJson[]; family?: FamilyJson; code?: string; detail?: string; [field: string]: unknown };

/** Every form in which a refresh token's secret could leak: the token, and its stored digest as hex and base64. */
function trackRefreshToken(token: string): void {
  const digest = Buffer.from(digestToken(token.slice(21)));
  trackSecret(digest.toString("hex"));
  trackSecret(digest.toString("base64"));
  trackSecret(digest.toString("base64url"));
}

describe.each(ENGINES)("refresh-token families on %s", (engine, available) => {
  const it = available ? test : test.skip;
  let env: EngineApp;
  let admin: { id: string; token: string };
  let viewer: { id: string; token: string };
  let check: AnswerCheck;
  const answers: string[] = [];

  beforeAll(async () => {
    if (!available) return;
    env = await startEngineApp(engine);
    const { store } = env.app;
    admin = await insertApiKey(store, { name: "admin phone", scopes: ["*"] });
    viewer = await insertApiKey(store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
    const passwordHash = await hashPassword(PASSWORD);
    await store.insertUser({ username: "root", passwordHash, roles: ["admin"], createdAt: Date.now() });
    for (const username of ["ann", "jo", "max", "eve"]) {
      await store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: Date.now() });
    }
    await env.app.app.keyring.refresh();
    check = await loadAnswerCheck(env.app.http);
  });
  afterAll(async () => {
    if (available) await env[Symbol.asyncDispose]();
  });

  /** The admin API as this file's admin; every answer's text is kept for the token scan. */
  const call = createCapturedAdminCaller<Body>(
    () => env.app.http,
    () => admin.token,
    (answer) => {
      answers.push(answer.text);
    },
  );

  /** A password sign-in at /auth/token: a new family. Its tokens are registered with the leak scan. */
  async function signIn(username: string, fields: Record<string, string> = {}) {
    const granted = await requestTokens(env.app, { grant_type: "password", username, password: PASSWORD, ...fields });
    expect(granted.status).toBe(200);
    trackRefreshToken(granted.refresh_token!);
    const stored = await env.app.store.getRefreshToken(granted.refresh_token!.slice(4, 20));
    return { access: granted.access_token!, refresh: granted.refresh_token!, familyId: stored!.familyId };
  }

  const refresh = async (token: string) => {
    const granted = await requestTokens(env.app, { grant_type: "refresh_token", refresh_token: token });
    if (granted.refresh_token !== undefined) trackRefreshToken(granted.refresh_token);
    return granted;
  };
  const useToken = async (access: string) =>
    (await fetch(`${env.app.http}/secure-data`, { headers: { authorization: `Bearer ${access}` } })).status;
  const storedFamily = async (familyId: string): Promise<RefreshFamilyRecord | undefined> =>
    (await env.app.store.listRefreshFamilies(Date.now(), { familyId }))[0];
  const adminActions = (action: string) =>
    env.app.audit.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.action === action);

  describe("list", () => {
    it("every family with who, client, scopes and times, exactly the view's fields; a refresh sets last_rotated_at", async () => {
      const first = await signIn("ann", { client_id: "ann-phone", scope: "data:read" });
      const second = await signIn("jo");
      const listed = await call("/refresh-families");
      expect(listed.status).toBe(200);
      check("get", "/refresh-families", listed);
      const ann = listed.body.families!.find((family) => family.family_id === first.familyId)!;
      expect(Object.keys(ann).sort()).toEqual(FAMILY_FIELDS);
      expect(ann).toMatchObject({
        subject: "user:ann",
        client_id: "ann-phone",
        scopes: ["data:read"],
        last_rotated_at: null,
        revoked: false,
        revoked_at: null,
      });
      expect(listed.body.families!.map((family) => family.family_id)).toContain(second.familyId);

      expect((await refresh(first.refresh)).status).toBe(200);
      const after = (await call("/refresh-families")).body.families!.find((family) => family.family_id === first.familyId)!;
      expect(after.last_rotated_at).toEqual(expect.any(String));
      expect(after.created_at).toBe(ann.created_at);
      expect(Date.parse(String(after.expires_at))).toBeGreaterThanOrEqual(Date.parse(String(ann.expires_at)));
    });

    it("one user's (POST with username): theirs only; an unknown user 404, a malformed name 400 naming username", async () => {
      await signIn("eve");
      const eve = await call("/refresh-families", { body: { username: "eve" } });
      expect(eve.status).toBe(200);
      check("post", "/refresh-families", eve);
      expect(eve.body.families!.length).toBeGreaterThanOrEqual(1);
      expect(new Set(eve.body.families!.map((family) => family.subject))).toEqual(new Set(["user:eve"]));
      const unknown = await call("/refresh-families", { body: { username: "nobody" } });
      expect(unknown.status).toBe(404);
      check("post", "/refresh-families", unknown);
      expect(unknown.body).toMatchObject({ code: "not_found", detail: "No user named nobody" });
      for (const body of [{}, { username: "a b" }, { username: 7 }]) {
        const refused = await call("/refresh-families", { body });
        expect(refused.status).toBe(400);
        check("post", "/refresh-families", refused);
        expect(refused.body.detail).toContain("username:");
      }
    });
  });

  describe("revoke", () => {
    it("the family's access token is refused on the very next request, its socket closes 4403, its refresh token is dead; audited", async () => {
      const max = await signIn("max");
      expect(await useToken(max.access)).toBe(200);
      const probe = new WsProbe(`${env.app.ws}/ws`, { headers: new Headers({ "x-auth-token": max.access }) });
      expect(await probe.opened).toBe(true);
      const revoked = await call("/refresh-families/revoke", { body: { family_id: max.familyId } });
      expect(revoked.status).toBe(200);
      check("post", "/refresh-families/revoke", revoked);
      expect(revoked.body.family).toMatchObject({ family_id: max.familyId, subject: "user:max", revoked: true });
      expect(revoked.body.family!.revoked_at).toEqual(expect.any(String));
      expect(await useToken(max.access)).toBe(401);
      expect((await probe.closed).code).toBe(4403);
      expect((await refresh(max.refresh)).status).toBe(400);
      expect((await storedFamily(max.familyId))!.revokedAt).not.toBeNull();
      expect(adminActions("refresh.revoke")).toContainEqual(
        expect.objectContaining({ audit: "admin.action", by: admin.id, by_kind: "key", family_id: max.familyId, subject: "user:max" }),
      );
    });

    it("again: 409, its first end kept; an unknown family 404; a malformed id or confirm 400 naming the field", async () => {
      const jo = await signIn("jo");
      expect((await call("/refresh-families/revoke", { body: { family_id: jo.familyId } })).status).toBe(200);
      const endedAt = (await storedFamily(jo.familyId))!.revokedAt;
      const again = await call("/refresh-families/revoke", { body: { family_id: jo.familyId } });
      expect(again.status).toBe(409);
      check("post", "/refresh-families/revoke", again);
      expect(again.body.detail).toContain("already revoked");
      expect((await storedFamily(jo.familyId))!.revokedAt).toBe(endedAt);
      const unknown = await call("/refresh-families/revoke", { body: { family_id: crypto.randomUUID() } });
      expect(unknown.status).toBe(404);
      check("post", "/refresh-families/revoke", unknown);
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{}, "family_id:"],
        [{ family_id: "not-a-family" }, "family_id:"],
        [{ family_id: jo.refresh }, "family_id:"],
        [{ family_id: jo.familyId.toUpperCase() }, "family_id:"],
        [{ family_id: jo.familyId, confirm: "yes" }, "confirm:"],
      ];
      for (const [body, field] of cases) {
        const refused = await call("/refresh-families/revoke", { body });
        expect(refused.status).toBe(400);
        check("post", "/refresh-families/revoke", refused);
        expect(refused.body.detail).toContain(field);
        // A refresh token pasted where the id goes is not echoed back.
        expect(refused.text).not.toContain(jo.refresh.slice(21));
      }
    });

    it("revoke-all: every live family of the user and no one else's, audited with the count; none left or no such user 404", async () => {
      const [a, b, other] = [await signIn("ann"), await signIn("ann"), await signIn("eve")];
      const ended = await call("/refresh-families/revoke-all", { body: { username: "ann" } });
      expect(ended.status).toBe(200);
      check("post", "/refresh-families/revoke-all", ended);
      expect(ended.body.username).toBe("ann");
      expect(ended.body.revoked).toBeGreaterThanOrEqual(2);
      for (const family of [a, b]) {
        expect(await useToken(family.access)).toBe(401);
        expect((await storedFamily(family.familyId))!.revokedAt).not.toBeNull();
      }
      expect(await useToken(other.access)).toBe(200);
      expect(adminActions("refresh.revoke-all")).toContainEqual(
        expect.objectContaining({ by: admin.id, username: "ann", revoked: ended.body.revoked }),
      );
      const again = await call("/refresh-families/revoke-all", { body: { username: "ann" } });
      expect(again.status).toBe(404);
      expect(again.body.detail).toBe("ann has no live refresh-token family");
      const nobody = await call("/refresh-families/revoke-all", { body: { username: "nobody" } });
      expect(nobody.status).toBe(404);
      check("post", "/refresh-families/revoke-all", nobody);
      const malformed = await call("/refresh-families/revoke-all", { body: { username: "user:ann" } });
      expect(malformed.status).toBe(400);
      expect(malformed.body.detail).toContain("username:");
    });
  });

  describe("the admin's own sign-in", () => {
    it("with an access token of their own family, an admin revokes it, or all of theirs, only with confirm: true", async () => {
      const root = await signIn("root");
      const as = { token: root.access };
      const one = await call("/refresh-families/revoke", { ...as, body: { family_id: root.familyId } });
      expect(one.status).toBe(409);
      check("post", "/refresh-families/revoke", one);
      expect(one.body.detail).toContain("confirm: true");
      const all = await call("/refresh-families/revoke-all", { ...as, body: { username: "root" } });
      expect(all.status).toBe(409);
      expect(await useToken(root.access)).toBe(200);
      const confirmed = await call("/refresh-families/revoke-all", { ...as, body: { username: "root", confirm: true } });
      expect(confirmed.status).toBe(200);
      expect(await useToken(root.access)).toBe(401);
      expect(adminActions("refresh.revoke-all")).toContainEqual(
        expect.objectContaining({ by: "user:root", by_kind: "user", username: "root" }),
      );
    });
  });

  describe("who may call it", () => {
    it.each(OUTSIDERS)("%s: refused on every endpoint, nothing revoked", async (_name, outsider, status, code) => {
      const jo = await signIn("jo");
      const requests = [
        ["/refresh-families", undefined],
        ["/refresh-families", { username: "jo" }],
        ["/refresh-families/revoke", { family_id: jo.familyId }],
        ["/refresh-families/revoke-all", { username: "jo" }],
      ] as const;
      await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
      expect(await useToken(jo.access)).toBe(200);
    });

    it("an admin signed in with the cookie: a POST needs the page's Origin (CSRF), a GET does not", async () => {
      const { cookie } = await signInWithPassword(env.app.http, "root", PASSWORD);
      const eve = await signIn("eve");
      expect((await call("/refresh-families", { token: null, headers: { cookie } })).status).toBe(200);
      for (const [path, body] of [
        ["/refresh-families", { username: "eve" }],
        ["/refresh-families/revoke", { family_id: eve.familyId }],
        ["/refresh-families/revoke-all", { username: "eve" }],
      ] as const) {
        const forged = await call(path, { token: null, headers: { cookie }, body });
        expect(forged.status).toBe(403);
        expect(forged.body.code).toBe("forbidden_origin");
      }
      expect(await useToken(eve.access)).toBe(200);
      const own = await call("/refresh-families/revoke", {
        token: null,
        headers: { cookie, origin: env.app.http },
        body: { family_id: eve.familyId },
      });
      expect(own.status).toBe(200);
      expect(adminActions("refresh.revoke")).toContainEqual(expect.objectContaining({ by: "user:root", family_id: eve.familyId }));
    });
  });

  describe("one implementation, two faces", () => {
    it("a family revoked by the CLI and one by the API are stored alike, and both faces list the same views", async () => {
      const [viaCli, viaApi] = [await signIn("max", { client_id: "twin" }), await signIn("max", { client_id: "twin" })];
      const cli = await env.cli("refresh", "revoke", viaCli.familyId);
      expect(cli.code).toBe(EXIT.ok);
      expect(cli.stdout).toBe(`Revoked refresh-token family ${viaCli.familyId} of user:max.\n`);
      expect((await call("/refresh-families/revoke", { body: { family_id: viaApi.familyId } })).status).toBe(200);
      // Alike but for the ids and times: revoked, the same person, client and scopes, every token of it ended.
      const shape = (family: RefreshFamilyRecord | undefined) => ({
        revoked: family!.revokedAt !== null,
        subject: family!.subject,
        clientId: family!.clientId,
        scopes: family!.scopes,
        rotated: family!.lastRotatedAt !== null,
      });
      const [storedCli, storedApi] = [await storedFamily(viaCli.familyId), await storedFamily(viaApi.familyId)];
      expect(shape(storedCli)).toEqual({ revoked: true, subject: "user:max", clientId: "twin", scopes: expect.any(Array), rotated: false });
      expect(shape(storedCli)).toEqual(shape(storedApi));
      for (const family of [viaCli, viaApi]) expect(await useToken(family.access)).toBe(401);
      // Both faces say "already revoked" alike: exit 4, 409.
      expect((await env.cli("refresh", "revoke", viaApi.familyId)).code).toBe(EXIT.conflict);

      await signIn("jo");
      const byCli = JSON.parse((await env.cli("refresh", "list", "--user", "jo", "--json")).stdout) as FamilyJson[];
      const byApi = (await call("/refresh-families", { body: { username: "jo" } })).body.families!;
      expect(byCli).toEqual(byApi);
      const allByCli = JSON.parse((await env.cli("refresh", "list", "--json")).stdout) as FamilyJson[];
      expect(allByCli).toEqual((await call("/refresh-families")).body.families!);

      const cliAll = await env.cli("refresh", "revoke-all", "jo");
      expect(cliAll.code).toBe(EXIT.ok);
      expect(cliAll.stdout).toMatch(/^Revoked \d+ refresh-token famil(y|ies) of jo\.\n$/);
      expect((await call("/refresh-families/revoke-all", { body: { username: "jo" } })).status).toBe(404);
      expect((await env.cli("refresh", "revoke-all", "jo")).code).toBe(EXIT.notFound);
      const table = await env.cli("refresh", "list", "--user", "jo");
      expect(table.stdout).toStartWith("FAMILY");
      expect(table.stdout).toContain("revoked");
    });
  });

  it("no answer held a refresh token or its hash", () => {
    // The scan at the end of the file covers the logs and the CLI's output; this covers the answers.
    const text = answers.join("\n");
    expect(text).not.toContain("tgr_");
    expect(text).not.toMatch(/secret_hash|secretHash/);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
