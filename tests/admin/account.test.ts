/**
 * `/auth/account/…` over real sockets: anyone signed in lists their own browser sessions (this one
 * marked) and ends another of theirs (its socket closes 4403); nobody sees or ends someone else's
 * (404, exactly like an id that does not exist); a cookie change from a foreign page is refused
 * (403); a malformed id is a 400 naming the field; no credential is a 401. And `/admin/api/scopes`,
 * what the console's forms offer: the known scopes and the roles, admin only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { adminCaller, loadAnswerCheck, type AnswerCheck } from "../support/admin.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";

const PASSWORD = "correct horse battery staple";
let app: TestApp;
let admin: { id: string; token: string };
let viewer: { id: string; token: string };
let checkAnswer: AnswerCheck;

beforeAll(async () => {
  app = await startTestApp();
  admin = await insertApiKey(app.store, { name: "admin phone", scopes: ["*"] });
  viewer = await insertApiKey(app.store, { name: "viewer tablet", scopes: ["data:read", "ws:connect"] });
  const passwordHash = await hashPassword(PASSWORD);
  for (const username of ["jo", "ann"]) await app.store.insertUser({ username, passwordHash, roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
  checkAnswer = await loadAnswerCheck(app.http);
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

type Body = Record<string, any>;

const signIn = (username: string) => signInWithPassword(app.http, username, PASSWORD);

/** A request as the console page makes it: the cookie, and this gate's own Origin on a change. */
async function asPage(
  cookie: string,
  path: string,
  body?: unknown,
  origin: string | null = app.http,
): Promise<{ status: number; body: Body }> {
  const headers: Record<string, string> = { cookie };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (body !== undefined && origin !== null) headers.origin = origin;
  const response = await fetch(`${app.http}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Body };
}

describe("own sessions", () => {
  test("list: only mine, this one marked current; never a cookie", async () => {
    const laptop = await signIn("jo");
    const phone = await signIn("jo");
    const ann = await signIn("ann");
    const answer = await asPage(phone.cookie, "/auth/account/sessions");
    expect(answer.status).toBe(200);
    const ids = (answer.body.sessions as Body[]).map((session) => session.id).sort();
    expect(ids).toEqual([laptop.id, phone.id].sort());
    expect(ids).not.toContain(ann.id);
    expect((answer.body.sessions as Body[]).find((session) => session.current === true)?.id).toBe(phone.id);
    expect(JSON.stringify(answer.body)).not.toContain(phone.cookie.slice(4));
  });

  test("end another of mine: its socket closes 4403, its cookie is refused, audited with me as the actor", async () => {
    const laptop = await signIn("jo");
    const phone = await signIn("jo");
    const socket = new WsProbe(`${app.ws}/ws`, { headers: new Headers({ cookie: laptop.cookie, origin: app.http }) });
    expect(await socket.opened).toBe(true);
    const ended = await asPage(phone.cookie, "/auth/account/sessions/revoke", { id: laptop.id });
    expect(ended).toEqual({ status: 200, body: { ended: laptop.id } });
    expect((await socket.closed).code).toBe(4403);
    expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie: laptop.cookie } })).status).toBe(401);
    const line = app.audit.map((text) => JSON.parse(text) as Body).findLast((entry) => entry.action === "account.sessions.revoke");
    expect(line).toMatchObject({ audit: "admin.action", by: "user:jo", session_id: laptop.id });
  });

  test.each([
    ["someone else's session", async () => (await signIn("ann")).id, 404],
    ["a session that never was", async () => "0123456789abcdef", 404],
    ["an id of the wrong shape", async () => "not-an-id", 400],
  ])("refused: %s", async (_what, idOf, status) => {
    const jo = await signIn("jo");
    const answer = await asPage(jo.cookie, "/auth/account/sessions/revoke", { id: await idOf() });
    expect(answer.status).toBe(status);
    if (status === 400) expect(answer.body.detail).toContain("id:");
  });

  test("someone else's session stays open after the refusal", async () => {
    const ann = await signIn("ann");
    const jo = await signIn("jo");
    await asPage(jo.cookie, "/auth/account/sessions/revoke", { id: ann.id });
    expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie: ann.cookie } })).status).toBe(200);
  });

  test.each([
    ["a foreign Origin", "http://evil.example"],
    ["no Origin", null],
  ])("a cookie change with %s is refused 403, and nothing ends", async (_what, origin) => {
    const laptop = await signIn("jo");
    const phone = await signIn("jo");
    const answer = await asPage(phone.cookie, "/auth/account/sessions/revoke", { id: laptop.id }, origin);
    expect(answer.status).toBe(403);
    expect((await fetch(`${app.http}/auth/whoami`, { headers: { cookie: laptop.cookie } })).status).toBe(200);
  });

  test("no credential: 401", async () => {
    expect((await fetch(`${app.http}/auth/account/sessions`)).status).toBe(401);
  });

  test("a key lists the browser sessions it opened", async () => {
    const answer = await fetch(`${app.http}/auth/account/sessions`, { headers: { "x-auth-token": viewer.token } });
    expect(answer.status).toBe(200);
    expect((await answer.json()) as Body).toEqual({ sessions: [] });
  });
});

describe("/admin/api/scopes", () => {
  const call = adminCaller(
    () => app.http,
    () => admin.token,
  );

  test("the known scopes and the roles with what each grants, as the document says", async () => {
    const answer = await call<Body>("/scopes");
    expect(answer.status).toBe(200);
    checkAnswer("get", "/scopes", answer);
    expect(answer.body.scopes).toEqual(expect.arrayContaining(["*", "admin", "data:read", "ws:connect"]));
    expect(answer.body.roles).toEqual([
      { name: "admin", scopes: ["*"] },
      { name: "viewer", scopes: ["data:read", "ws:connect"] },
    ]);
  });

  test("without the admin scope: 403", async () => {
    const answer = await call<Body>("/scopes", { token: viewer.token });
    expect(answer.status).toBe(403);
    checkAnswer("get", "/scopes", answer);
  });
});

test("no secret reached any output", () => expectNoSecretsInOutput());
