/**
 * The admin API for browser sessions over real sockets: listing (never a cookie), ending one (its
 * socket closes 4403 at once) and all of a subject, every refusal (401, 403 without the admin scope,
 * 403 for a cookie change without Origin, 400 naming the field, 404, 409 for the admin's own
 * session without confirm), the audit line of each change, and the CLI and the API ending sessions
 * alike.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { cli } from "../support/cli.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { adminCaller, expectRequestsRefused, OUTSIDERS, type AdminCallOptions } from "../support/admin.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = "correct horse battery staple";
let app: TestApp;
let admin: { id: string; token: string };
let viewer: { id: string; token: string };

beforeAll(async () => {
  app = await startTestApp();
  admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  viewer = await insertApiKey(app.store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
  const passwordHash = await hashPassword(PASSWORD);
  await app.store.insertUser({ username: "root", passwordHash, roles: ["admin"], createdAt: Date.now() });
  for (const username of ["jo", "ann", "max", "eve", "kim"]) {
    await app.store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: Date.now() });
  }
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

type Body = Record<string, unknown>;
interface SessionView {
  readonly id: string;
  readonly subject: string;
  readonly [field: string]: unknown;
}

/** The admin API as this file's admin. */
const call = (path: string, options: AdminCallOptions = {}) =>
  adminCaller(
    () => app.http,
    () => admin.token,
  )<Body>(path, options);

/** Signs in on the login page: the cookie (tracked as a secret) and the session's public id. */
const signIn = (username: string) => signInWithPassword(app.http, username, PASSWORD);

const whoami = async (cookie: string) => (await fetch(`${app.http}/auth/whoami`, { headers: { cookie } })).status;
const listed = async () => (await call("/sessions")).body.sessions as SessionView[];
const auditLines = () => app.audit.map((line) => JSON.parse(line) as Body);

describe("sessions", () => {
  test("list: every open session with who, how and from where; exactly the view's fields, never the cookie", async () => {
    const jo = await signIn("jo");
    const answer = await call("/sessions");
    expect(answer.status).toBe(200);
    const mine = (answer.body.sessions as SessionView[]).find((session) => session.id === jo.id);
    expect(mine).toMatchObject({ subject: "user:jo", method: "password", created_from: "127.0.0.1", scopes: expect.any(Array) });
    expect(Object.keys(mine!).sort()).toEqual(
      ["created_at", "created_from", "current", "expires_at", "id", "last_seen_at", "method", "scopes", "subject"].sort(),
    );
    // The admin's key is not jo's session; the list marks only the caller's own.
    expect(mine!.current).toBe(false);
    expect(JSON.stringify(answer.body)).not.toContain(jo.cookie.slice(4));
  });

  test("revoke: the session's socket (cookie + Origin) closes 4403 at once, the cookie is refused, audited", async () => {
    const jo = await signIn("jo");
    const probe = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie: jo.cookie, origin: app.http }) });
    expect(await probe.opened).toBe(true);
    const started = performance.now();
    const revoked = await call("/sessions/revoke", { body: { id: jo.id } });
    expect(revoked.status).toBe(200);
    expect(revoked.body.session).toMatchObject({ id: jo.id, subject: "user:jo" });
    expect(typeof revoked.body.ended_at).toBe("string");
    expect((await probe.closed).code).toBe(4403);
    const closedAfter = performance.now() - started;
    expect(closedAfter).toBeLessThan(1_000);
    console.log(`admin API session revocation: the browser's socket closed ${closedAfter.toFixed(0)} ms after the request was sent`);
    expect(await whoami(jo.cookie)).toBe(401);
    expect((await listed()).map((session) => session.id)).not.toContain(jo.id);
    expect(auditLines()).toContainEqual(
      expect.objectContaining({ audit: "admin.action", action: "sessions.revoke", by: admin.id, session_id: jo.id, subject: "user:jo" }),
    );
  });

  test("revoke: ending it again or an unknown id is 404; a malformed id is 400 naming id", async () => {
    const jo = await signIn("jo");
    expect((await call("/sessions/revoke", { body: { id: jo.id } })).status).toBe(200);
    const again = await call("/sessions/revoke", { body: { id: jo.id } });
    expect(again.status).toBe(404);
    expect(again.body.code).toBe("not_found");
    expect((await call("/sessions/revoke", { body: { id: "0123456789abcdef" } })).status).toBe(404);
    for (const body of [{}, { id: "not-a-session" }, { id: jo.cookie.slice(4) }, { id: "0123456789abcdef", confirm: "yes" }]) {
      const refused = await call("/sessions/revoke", { body });
      expect(refused.status).toBe(400);
      expect(refused.body.detail).toContain("confirm" in body ? "confirm:" : "id:");
      // A cookie pasted where the id goes is not echoed back.
      expect(String(refused.body.detail)).not.toContain(jo.cookie.slice(4));
    }
  });

  test("revoke-all: every open session of that person and no one else's, audited with the count; none left is 404", async () => {
    const first = await signIn("ann");
    const second = await signIn("ann");
    const other = await signIn("jo");
    const ended = await call("/sessions/revoke-all", { body: { subject: "user:ann" } });
    expect(ended.status).toBe(200);
    expect(ended.body).toEqual({ subject: "user:ann", ended: 2 });
    expect(await whoami(first.cookie)).toBe(401);
    expect(await whoami(second.cookie)).toBe(401);
    expect(await whoami(other.cookie)).toBe(200);
    expect(auditLines()).toContainEqual(expect.objectContaining({ action: "sessions.revoke-all", subject: "user:ann", ended: 2 }));
    const again = await call("/sessions/revoke-all", { body: { subject: "user:ann" } });
    expect(again.status).toBe(404);
    expect(again.body.detail).toContain("user:ann");
    for (const subject of ["ann", "user:a b", "key:xyz", "addr:127.0.0.1", 7]) {
      const refused = await call("/sessions/revoke-all", { body: { subject } });
      expect(refused.status).toBe(400);
      expect(refused.body.detail).toContain("subject:");
    }
  });
});

describe("the admin's own session", () => {
  test("signed in with the cookie, an admin cannot end their own session, or all of theirs, without confirm: true", async () => {
    const root = await signIn("root");
    const headers = { cookie: root.cookie, origin: app.http };
    const one = await call("/sessions/revoke", { token: null, headers, body: { id: root.id } });
    expect(one.status).toBe(409);
    expect(one.body.code).toBe("conflict");
    expect(one.body.detail).toContain("confirm: true");
    const all = await call("/sessions/revoke-all", { token: null, headers, body: { subject: "user:root" } });
    expect(all.status).toBe(409);
    expect(all.body.detail).toContain("confirm: true");
    expect(await whoami(root.cookie)).toBe(200);
    expect((await app.store.getSession(root.id))!.revokedAt).toBeNull();
    // Another admin may end it without confirming: it is not theirs.
    const byKey = await signIn("root");
    expect((await call("/sessions/revoke", { body: { id: byKey.id } })).status).toBe(200);
    const confirmed = await call("/sessions/revoke-all", { token: null, headers, body: { subject: "user:root", confirm: true } });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toEqual({ subject: "user:root", ended: 1 });
    expect(await whoami(root.cookie)).toBe(401);
  });

  test("a key's own sessions (key:<id>) are guarded alike", async () => {
    const refused = await call("/sessions/revoke-all", { body: { subject: `key:${admin.id}` } });
    expect(refused.status).toBe(409);
    // Confirmed, it goes on to the store: none are open.
    expect((await call("/sessions/revoke-all", { body: { subject: `key:${admin.id}`, confirm: true } })).status).toBe(404);
  });
});

describe("who may call it", () => {
  test.each(OUTSIDERS)("%s → %d %s, nothing ended", async (_name, outsider, status, code) => {
    const kim = await signIn("kim");
    const requests = [
      ["/sessions", undefined],
      ["/sessions/revoke", { id: kim.id }],
      ["/sessions/revoke-all", { subject: "user:kim" }],
    ] as const;
    await expectRequestsRefused(call, requests, { token: outsider === "VIEWER" ? viewer.token : null, status, code });
    expect(await whoami(kim.cookie)).toBe(200);
  });

  test("an admin signed in with the cookie: a change needs the page's Origin (CSRF), a read does not", async () => {
    const root = await signIn("root");
    const eve = await signIn("eve");
    expect((await call("/sessions", { token: null, headers: { cookie: root.cookie } })).status).toBe(200);
    for (const [path, body] of [
      ["/sessions/revoke", { id: eve.id }],
      ["/sessions/revoke-all", { subject: "user:eve" }],
    ] as const) {
      const forged = await call(path, { token: null, headers: { cookie: root.cookie }, body });
      expect(forged.status).toBe(403);
      expect(forged.body.code).toBe("forbidden_origin");
    }
    expect(await whoami(eve.cookie)).toBe(200);
    const own = await call("/sessions/revoke", { token: null, headers: { cookie: root.cookie, origin: app.http }, body: { id: eve.id } });
    expect(own.status).toBe(200);
    expect(auditLines()).toContainEqual(
      expect.objectContaining({ action: "sessions.revoke", by: "user:root", by_kind: "user", session_id: eve.id }),
    );
  });
});

describe("one implementation, two faces", () => {
  test("a session ended by the CLI and one ended by the API are stored alike, and both faces list the same views", async () => {
    const [a, b, kept] = [await signIn("max"), await signIn("max"), await signIn("eve")];
    const viaCli = await cli(app.dataDir, "sessions", "revoke", a.id);
    expect(viaCli.code).toBe(0);
    expect((await call("/sessions/revoke", { body: { id: b.id } })).status).toBe(200);
    const [storedA, storedB] = await Promise.all([app.store.getSession(a.id), app.store.getSession(b.id)]);
    // Alike but for the times: ended, by the same person, with the same scopes, from the same address.
    const shape = (record: typeof storedA) => ({
      ended: record!.revokedAt !== null,
      subject: record!.subject,
      scopes: record!.scopes,
      method: record!.method,
      from: record!.createdAddr,
    });
    expect(shape(storedA)).toEqual({ ended: true, subject: "user:max", scopes: expect.any(Array), method: "password", from: "127.0.0.1" });
    expect(shape(storedA)).toEqual(shape(storedB));
    const byCli = JSON.parse((await cli(app.dataDir, "sessions", "list", "--user", "eve", "--json")).stdout) as SessionView[];
    // The API marks the caller's own session (`current`), a fact of the request the CLI has no notion of.
    const byApi = (await listed()).filter((session) => session.subject === "user:eve").map(({ current: _current, ...view }) => view);
    expect(byCli).toEqual(byApi);
    expect(byApi.map((session) => session.id)).toContain(kept.id);
    // Both faces say "nothing open" for a subject with none: exit 3, 404.
    expect((await cli(app.dataDir, "sessions", "revoke", "--user", "max")).code).toBe(3);
    expect((await call("/sessions/revoke-all", { body: { subject: "user:max" } })).status).toBe(404);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
