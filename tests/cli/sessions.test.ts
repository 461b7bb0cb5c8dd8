/**
 * `sessions list | revoke` as an operator runs them: the real CLI process against the data
 * directory of a running server. Revoking from the CLI signs the browser out and closes its socket
 * with 4403 within the usual bound; nothing it prints holds a cookie.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { cli } from "../support/cli.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = "correct horse battery staple";
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp();
  const passwordHash = await hashPassword(PASSWORD);
  for (const username of ["jo", "ann"]) await app.store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: Date.now() });
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

const signIn = (username: string) => signInWithPassword(app.http, username, PASSWORD);

describe("sessions list", () => {
  test("lists open sessions with who, how and from where, filtered by --user; never a cookie", async () => {
    const jo = await signIn("jo");
    const ann = await signIn("ann");
    const all = await cli(app.dataDir, "sessions", "list", "--json");
    expect(all.code).toBe(0);
    const listed = JSON.parse(all.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((session) => session.id)).toEqual(expect.arrayContaining([jo.id, ann.id]));
    expect(listed.find((session) => session.id === jo.id)).toMatchObject({
      subject: "user:jo",
      method: "password",
      created_from: "127.0.0.1",
    });
    const onlyAnn = JSON.parse((await cli(app.dataDir, "sessions", "list", "--user", "ann", "--json")).stdout) as Array<{
      subject: string;
    }>;
    expect(new Set(onlyAnn.map((session) => session.subject))).toEqual(new Set(["user:ann"]));
    const table = await cli(app.dataDir, "sessions", "list");
    expect(table.stdout).toContain("WHO");
    expect(table.stdout).toContain(jo.id);
  });
});

describe("sessions revoke", () => {
  test("one session: the browser is signed out and its socket closes 4403", async () => {
    const { cookie, id } = await signIn("jo");
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    const started = performance.now();
    const revoked = await cli(app.dataDir, "sessions", "revoke", id);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`Ended session ${id} of user:jo.\n`);
    expect((await probe.closed).code).toBe(4403);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie } })).status).toBe(401);
    const again = await cli(app.dataDir, "sessions", "revoke", id);
    expect(again.code).toBe(3);
  });

  test("--user ends every open session of that person and no one else's", async () => {
    const first = await signIn("ann");
    const second = await signIn("ann");
    const other = await signIn("jo");
    const revoked = await cli(app.dataDir, "sessions", "revoke", "--user", "ann");
    expect(revoked.code).toBe(0);
    await app.app.keyring.refresh();
    for (const session of [first, second])
      expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie: session.cookie } })).status).toBe(401);
    expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie: other.cookie } })).status).toBe(200);
  });

  test.each([
    [["sessions", "revoke"], 2],
    [["sessions", "revoke", "not-an-id"], 2],
    [["sessions", "revoke", "abcdef0123456789", "--user", "jo"], 2],
    [["sessions", "revoke", "--user", "jo", "--key", "0123456789ab"], 2],
    [["sessions", "revoke", "--key", "xyz"], 2],
    [["sessions", "revoke", "abcdef0123456789"], 3],
    [["sessions", "list", "--user", "a b"], 2],
  ])("%j → exit %d", async (args, code) => {
    const result = await cli(app.dataDir, ...args);
    expect(result.code).toBe(code);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
