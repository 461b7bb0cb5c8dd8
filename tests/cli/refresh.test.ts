/**
 * `refresh list | revoke | revoke-all` as an operator runs them: the real CLI process against the
 * data directory of a running server. Revoking from the CLI ends the family's access tokens on the
 * server within a poll interval; nothing the CLI prints holds a refresh token or its hash.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { requestTokens } from "../support/admin-engines.ts";
import { cli as runCli, makeDataDir } from "../support/cli.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const PASSWORD = trackSecret("the refresh command's passphrase");
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp();
  const passwordHash = await hashPassword(PASSWORD);
  for (const username of ["jo", "ann", "kim"])
    await app.store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: Date.now() });
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

/** The CLI on the app's data directory; stdout joins the leak scan too. */
async function cli(...args: string[]) {
  const result = await runCli(app.dataDir, ...args);
  captureOutput(result.stdout);
  return result;
}

/** A password sign-in at /auth/token: a new family. The refresh token and its stored digest are registered as secrets. */
async function signIn(username: string, fields: Record<string, string> = {}) {
  const granted = await requestTokens(app, { grant_type: "password", username, password: PASSWORD, ...fields });
  const refresh = granted.refresh_token!;
  const digest = Buffer.from(digestToken(refresh.slice(21)));
  for (const form of [digest.toString("hex"), digest.toString("base64")]) trackSecret(form);
  const stored = await app.store.getRefreshToken(refresh.slice(4, 20));
  return { access: granted.access_token!, refresh, familyId: stored!.familyId };
}

const useToken = async (access: string) =>
  (await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${access}` } })).status;

/** The server's answer to the token once it has looked at the store (it polls every 50 ms here). */
async function settledStatus(access: string, expected: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  let status = await useToken(access);
  while (status !== expected && Date.now() < deadline) {
    await Bun.sleep(20);
    status = await useToken(access);
  }
  return status;
}

describe("refresh list", () => {
  test("no families yet: says how one starts", async () => {
    using dir = await makeDataDir();
    const result = await runCli(dir.path, "refresh", "list");
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toBe("No refresh-token families. A password sign-in at /auth/token starts one.\n");
    expect((await runCli(dir.path, "refresh", "list", "--json")).stdout).toBe("[]\n");
  });

  test("every family with who, client, scopes, times and state; --user filters; never a token", async () => {
    const jo = await signIn("jo", { client_id: "jo-phone", scope: "data:read" });
    const ann = await signIn("ann");
    const all = await cli("refresh", "list", "--json");
    expect(all.code).toBe(EXIT.ok);
    const listed = JSON.parse(all.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((family) => family.family_id)).toEqual(expect.arrayContaining([jo.familyId, ann.familyId]));
    expect(listed.find((family) => family.family_id === jo.familyId)).toEqual({
      family_id: jo.familyId,
      subject: "user:jo",
      client_id: "jo-phone",
      scopes: ["data:read"],
      created_at: expect.any(String),
      last_rotated_at: null,
      expires_at: expect.any(String),
      revoked: false,
      revoked_at: null,
    });
    const onlyAnn = JSON.parse((await cli("refresh", "list", "--user", "ann", "--json")).stdout) as Array<{ subject: string }>;
    expect(new Set(onlyAnn.map((family) => family.subject))).toEqual(new Set(["user:ann"]));
    const table = await cli("refresh", "list");
    expect(table.stdout).toMatch(/^FAMILY +WHO +CLIENT +SCOPES +STARTED +REFRESHED +EXPIRES +STATE\n/);
    expect(table.stdout).toMatch(new RegExp(`\n${jo.familyId} +user:jo +jo-phone +data:read +\\S+ \\S+ +- +\\S+ \\S+ +active\n`));
    for (const output of [all.stdout, table.stdout]) {
      expect(output).not.toContain("tgr_");
      expect(output).not.toContain(jo.refresh.slice(21));
    }
  });
});

describe("refresh revoke", () => {
  test("one family: the running server refuses its access token within a poll; again is exit 4", async () => {
    const kim = await signIn("kim");
    expect(await useToken(kim.access)).toBe(200);
    const revoked = await cli("refresh", "revoke", kim.familyId);
    expect(revoked.code).toBe(EXIT.ok);
    expect(revoked.stdout).toBe(`Revoked refresh-token family ${kim.familyId} of user:kim.\n`);
    expect(await settledStatus(kim.access, 401)).toBe(401);
    expect((await requestTokens(app, { grant_type: "refresh_token", refresh_token: kim.refresh })).status).toBe(400);
    const again = await cli("refresh", "revoke", kim.familyId);
    expect(again.code).toBe(EXIT.conflict);
    expect(again.stderr).toContain("was already revoked at");
    const listed = JSON.parse((await cli("refresh", "list", "--user", "kim", "--json")).stdout) as Array<Record<string, unknown>>;
    expect(listed.find((family) => family.family_id === kim.familyId)).toMatchObject({ revoked: true, revoked_at: expect.any(String) });
  });

  test("revoke-all: every live family of that person and no one else's; none left is exit 3", async () => {
    const [first, second, other] = [await signIn("ann"), await signIn("ann"), await signIn("jo")];
    const revoked = await cli("refresh", "revoke-all", "ann");
    expect(revoked.code).toBe(EXIT.ok);
    expect(revoked.stdout).toMatch(/^Revoked [2-9] refresh-token families of ann\.\n$/);
    for (const family of [first, second]) expect(await settledStatus(family.access, 401)).toBe(401);
    expect(await useToken(other.access)).toBe(200);
    const again = await cli("refresh", "revoke-all", "ann");
    expect(again.code).toBe(EXIT.notFound);
    expect(again.stderr).toBe("ann has no live refresh-token family.\n");
  });

  test.each([
    [["refresh", "revoke"], EXIT.usage, "give one family id"],
    [["refresh", "revoke", "not-a-family"], EXIT.usage, "a family id is a UUID"],
    [["refresh", "revoke", "0b5e3d2a-7c41-4f7e-9a0e-3c1d2b4a5f60", "extra"], EXIT.usage, "give one family id"],
    [["refresh", "revoke", "0b5e3d2a-7c41-4f7e-9a0e-3c1d2b4a5f60"], EXIT.notFound, "No refresh-token family 0b5e3d2a"],
    [["refresh", "revoke-all"], EXIT.usage, "give one username"],
    [["refresh", "revoke-all", "a b"], EXIT.usage, "takes a username"],
    [["refresh", "revoke-all", "nobody"], EXIT.notFound, "No user named nobody"],
    [["refresh", "list", "--user", "a b"], EXIT.usage, "--user takes a username"],
    [["refresh", "list", "--user", "nobody"], EXIT.notFound, "No user named nobody. See: bun run cli users list"],
    [["refresh", "list", "--key", "0123456789ab"], EXIT.usage, "Unknown option"],
  ])("%j → exit %d", async (args, code, text) => {
    const result = await cli(...args);
    expect(result.code).toBe(code);
    expect(result.stderr).toContain(text);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
