/**
 * The admin API is not answered on a host the routes file gives to a service: a service's page runs
 * on that origin with the person's cookie for it (same Origin, so CSRF passes), and must not reach
 * the gate's administration. On the gate's own host the same admin gets in.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput } from "../support/secrets.ts";
import { signInWithPassword } from "../support/sessions.ts";
import { startUpstream } from "../support/upstream.ts";

const PASSWORD = "correct horse battery staple";
const dir = mkdtempSync(join(tmpdir(), "tokengate-admin-host-"));
const upstream = startUpstream();
let app: TestApp;

beforeAll(async () => {
  const file = join(dir, "routes.toml");
  writeFileSync(file, `[[route]]\nname = "cam"\nmatch = { host = "cam.local" }\nupstream = "${upstream.url}"\nscope = "cam"\n`);
  app = await startTestApp({ ROUTES_FILE: file });
  await app.store.insertUser({ username: "root", passwordHash: await hashPassword(PASSWORD), roles: ["admin"], createdAt: Date.now() });
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** Signs in as the admin on `host` (the cookie that host's pages would carry). */
const signInOn = async (host: string) => (await signInWithPassword(app.http, "root", PASSWORD, { host })).cookie;

test("a service host's page with the admin's cookie there: 404 on every admin endpoint, nothing made", async () => {
  const cookie = await signInOn("cam.local");
  const before = (await app.store.listKeys()).length;
  const asPage = { cookie, host: "cam.local", origin: "http://cam.local", "content-type": "application/json" };
  expect((await fetch(`${app.http}/admin/api/keys`, { headers: asPage })).status).toBe(404);
  const minted = await fetch(`${app.http}/admin/api/keys`, {
    method: "POST",
    headers: asPage,
    body: JSON.stringify({ name: "planted", scopes: ["*"] }),
  });
  expect(minted.status).toBe(404);
  expect((await app.store.listKeys()).length).toBe(before);
});

test("on the gate's own host the admin's cookie works", async () => {
  const cookie = await signInOn(new URL(app.http).host);
  const answer = await fetch(`${app.http}/admin/api/keys`, { headers: { cookie } });
  expect(answer.status).toBe(200);
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
