/**
 * The admin API for JWT signing keys over real sockets, on both store engines: the listing (kid,
 * algorithm, times and state; never key material), a rotation the server signs with on the very
 * next request while tokens of the old key keep working and the JWKS holds both, every refusal (401,
 * 403 without the admin scope, 403 for a cookie rotation without Origin, 400 for a body that is not
 * an object), answers checked against the OpenAPI document, the audit line with the actor, and the
 * CLI and the API rotating alike (a running server follows the CLI's rotation too).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import type { SigningKeyRecord } from "../../auth/secrets/jwt.ts";
import { createCapturedAdminCaller, expectRequestsRefused, loadAnswerCheck, OUTSIDERS, type AnswerCheck } from "../support/admin.ts";
import { ENGINES, requestTokens, startEngineApp, type EngineApp } from "../support/admin-engines.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = trackSecret("the signing keys test's passphrase");
const VIEW_FIELDS = ["alg", "created_at", "kid", "retired_at", "state"];

interface SigningKeyJson {
  readonly kid: string;
  readonly alg: string;
  readonly state: string;
  readonly [field: string]: unknown;
}
type Body = {
  signing_keys?: SigningKeyJson[];
  signing_key?: SigningKeyJson;
  code?: string;
  detail?: string;
  [field: string]: unknown;
};

/** Every member of a stored key's JWKs: the private `d` (or HS256's `k`) and the public `x` are key material. */
function trackKeyMaterial(records: readonly SigningKeyRecord[]): void {
  for (const record of records) {
    for (const jwk of [record.privateJwk, record.publicJwk]) {
      if (jwk === null) continue;
      for (const [name, value] of Object.entries(JSON.parse(jwk) as Record<string, string>)) {
        if (["d", "k", "x"].includes(name)) trackSecret(value);
      }
    }
  }
}

const kidOf = (jwt: string) => (JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;

describe.each(ENGINES)("signing keys on %s", (engine, available) => {
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
    await store.insertUser({ username: "root", passwordHash: await hashPassword(PASSWORD), roles: ["admin"], createdAt: Date.now() });
    await env.app.app.keyring.refresh();
    check = await loadAnswerCheck(env.app.http);
  });
  afterAll(async () => {
    if (available) await env[Symbol.asyncDispose]();
  });

  /** The admin API as this file's admin; every answer joins the leak scan, with the key material stored now. */
  const call = createCapturedAdminCaller<Body>(
    () => env.app.http,
    () => admin.token,
    async () => trackKeyMaterial(await env.app.store.listSigningKeys()),
  );
  const issueAccessToken = async () =>
    (await requestTokens(env.app, { grant_type: "password", username: "root", password: PASSWORD })).access_token!;
  const useToken = async (access: string) =>
    (await fetch(`${env.app.http}/secure-data`, { headers: { authorization: `Bearer ${access}` } })).status;
  const publishedKids = async () =>
    ((await (await fetch(`${env.app.http}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
  const adminActions = (action: string) =>
    env.app.audit.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.action === action);

  it("list: the key the server made at its first start, signing; kid, alg, times and state only", async () => {
    const listed = await call("/signing-keys");
    expect(listed.status).toBe(200);
    check("get", "/signing-keys", listed);
    expect(listed.body.signing_keys).toEqual([
      { kid: expect.any(String), alg: "EdDSA", created_at: expect.any(String), retired_at: null, state: "signing" },
    ]);
    expect(Object.keys(listed.body.signing_keys![0]!).sort()).toEqual(VIEW_FIELDS);
    expect(listed.text).not.toMatch(/jwk|"d"|"x"|"k"|private|public/i);
  });

  it("rotate: 201 with the new key; the next token is signed by it, an older token still works, the JWKS holds both; audited", async () => {
    const before = await issueAccessToken();
    const rotated = await call("/signing-keys/rotate", { body: {} });
    expect(rotated.status).toBe(201);
    check("post", "/signing-keys/rotate", rotated);
    const fresh = rotated.body.signing_key!;
    expect(fresh).toMatchObject({ alg: "EdDSA", retired_at: null, state: "signing" });
    expect(fresh.kid).not.toBe(kidOf(before));
    expect(rotated.body.signing_keys!.map((key) => [key.kid, key.state])).toEqual(
      expect.arrayContaining([
        [kidOf(before), "verifying"],
        [fresh.kid, "signing"],
      ]),
    );
    expect(rotated.text).not.toMatch(/jwk|private|public/i);
    // The very next request: no wait for a poll.
    const after = await issueAccessToken();
    expect(kidOf(after)).toBe(fresh.kid);
    for (const jwt of [before, after]) expect(await useToken(jwt)).toBe(200);
    expect((await publishedKids()).sort()).toEqual([kidOf(before), fresh.kid].sort());
    expect(adminActions("signing-keys.rotate")).toContainEqual(
      expect.objectContaining({ audit: "admin.action", by: admin.id, by_kind: "key", kid: fresh.kid, alg: "EdDSA" }),
    );
  });

  it.each([
    ["an array", "[]"],
    ["a string", '"rotate"'],
    ["not JSON", "rotate"],
  ])("rotate with %s as the body: 400, nothing rotated", async (_name, text) => {
    const before = await env.app.store.listSigningKeys();
    const response = await fetch(`${env.app.http}/admin/api/signing-keys/rotate`, {
      method: "POST",
      headers: { "x-auth-token": admin.token, "content-type": "application/json" },
      body: text,
    });
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status).toBe(400);
    check("post", "/signing-keys/rotate", { status: 400, text: JSON.stringify(body), body });
    expect(body.code).toBe("invalid_request");
    expect(await env.app.store.listSigningKeys()).toEqual(before);
  });

  describe("who may call it", () => {
    it.each(OUTSIDERS)("%s: refused on both endpoints, nothing rotated", async (_name, outsider, status, code) => {
      const before = await env.app.store.listSigningKeys();
      const requests = [
        ["/signing-keys", undefined],
        ["/signing-keys/rotate", {}],
      ] as const;
      await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
      expect(await env.app.store.listSigningKeys()).toEqual(before);
    });

    it("an admin signed in with the cookie: a rotation needs the page's Origin (CSRF), the list does not", async () => {
      const { cookie } = await signInWithPassword(env.app.http, "root", PASSWORD);
      expect((await call("/signing-keys", { token: null, headers: { cookie } })).status).toBe(200);
      const before = await env.app.store.listSigningKeys();
      const forged = await call("/signing-keys/rotate", { token: null, headers: { cookie }, body: {} });
      expect(forged.status).toBe(403);
      expect(forged.body.code).toBe("forbidden_origin");
      expect(await env.app.store.listSigningKeys()).toEqual(before);
      const own = await call("/signing-keys/rotate", { token: null, headers: { cookie, origin: env.app.http }, body: {} });
      expect(own.status).toBe(201);
      expect(adminActions("signing-keys.rotate").at(-1)).toMatchObject({
        by: "user:root",
        by_kind: "user",
        kid: own.body.signing_key!.kid,
      });
    });
  });

  describe("one implementation, two faces", () => {
    it("a rotation by the CLI and one by the API store alike; the running server follows the CLI's; both faces list the same", async () => {
      const viaCli = await env.cli("signing-keys", "rotate");
      expect(viaCli.code).toBe(EXIT.ok);
      const cliKid = /signing key (\S+);/.exec(viaCli.stdout)![1]!;
      expect(viaCli.stdout).toBe(`New EdDSA signing key ${cliKid}; the previous one only verifies from now on.\n`);
      // Another process rotated: the server finds it at its next look at the store (a poll, or PostgreSQL's NOTIFY).
      const deadline = Date.now() + 5_000;
      while (kidOf(await issueAccessToken()) !== cliKid && Date.now() < deadline) await Bun.sleep(50);
      expect(kidOf(await issueAccessToken())).toBe(cliKid);

      const viaApi = await call("/signing-keys/rotate", { body: {} });
      const apiKid = viaApi.body.signing_key!.kid;
      const stored = await env.app.store.listSigningKeys();
      const [byCli, byApi] = [stored.find((key) => key.kid === cliKid)!, stored.find((key) => key.kid === apiKid)!];
      // Alike but for the kid, the material and the times: the same algorithm, both with a public half, the CLI's retired by the API's.
      expect([byCli.alg, byCli.publicJwk !== null]).toEqual([byApi.alg, byApi.publicJwk !== null]);
      expect(byCli.retiredAt).toBe(byApi.createdAt);
      expect(stored.filter((key) => key.retiredAt === null).map((key) => key.kid)).toEqual([apiKid]);

      const listedByCli = JSON.parse((await env.cli("signing-keys", "list", "--json")).stdout) as SigningKeyJson[];
      expect(listedByCli).toEqual((await call("/signing-keys")).body.signing_keys!);
      trackKeyMaterial(stored);
    });
  });
});

test("no key material or other secret reached any output", () => {
  expectNoSecretsInOutput();
});
