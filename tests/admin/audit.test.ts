/**
 * The admin API's Activity: recent audit events from the audit log's bounded ring, newest first,
 * filtered by event or family, holding exactly what the log holds (never a secret).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createAuditLog, RECENT_EVENTS } from "../../auth/guard/audit.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

let app: TestApp;
let admin: { id: string; token: string };

beforeAll(async () => {
  app = await startTestApp({ BAN_EXEMPT: "" });
  admin = await insertApiKey(app.store, { name: "admin", scopes: ["*"] });
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

const headers = { "x-auth-token": "", "content-type": "application/json" };
const asAdmin = () => ({ ...headers, "x-auth-token": admin.token });

describe("recent events", () => {
  test("newest first; filtered by event or by family; limited; never a secret", async () => {
    const wrong = trackSecret(`tg_${admin.id}_${"A".repeat(43)}`);
    expect((await fetch(`${app.http}/secure-data`, { headers: { "x-auth-token": wrong } })).status).toBe(401);
    const created = await fetch(`${app.http}/admin/api/keys`, {
      method: "POST",
      headers: asAdmin(),
      body: JSON.stringify({ name: "lamp" }),
    });
    trackSecret(((await created.json()) as { secret: string }).secret);

    const latest = (await (await fetch(`${app.http}/admin/api/audit`, { headers: asAdmin() })).json()) as {
      events: Array<Record<string, unknown>>;
    };
    const names = latest.events.map((event) => event.audit);
    expect(names.indexOf("admin.action")).toBeGreaterThanOrEqual(0);
    expect(names.indexOf("admin.action")).toBeLessThan(names.indexOf("auth.failure"));
    expect(latest.events.find((event) => event.audit === "auth.failure")).toMatchObject({
      reason: "invalid_token",
      key_id: admin.id,
      path: "/secure-data",
    });
    expect(JSON.stringify(latest)).not.toContain(wrong);

    const search = async (body: unknown) =>
      fetch(`${app.http}/admin/api/audit`, { method: "POST", headers: asAdmin(), body: JSON.stringify(body) });
    const failures = (await (await search({ event: "auth.failure" })).json()) as { events: Array<{ audit: string }> };
    expect(failures.events.length).toBeGreaterThan(0);
    expect(new Set(failures.events.map((event) => event.audit))).toEqual(new Set(["auth.failure"]));
    const admins = (await (await search({ event: "admin.", limit: 1 })).json()) as { events: Array<{ action: string }> };
    expect(admins.events).toEqual([expect.objectContaining({ audit: "admin.action", action: "keys.create", by: admin.id })]);
    for (const body of [{ event: "Auth Failure" }, { limit: 0 }, { limit: RECENT_EVENTS + 1 }]) {
      const refused = await search(body);
      expect(refused.status).toBe(400);
    }
  });

  test("a key without the admin scope gets 403, and no credential 401", async () => {
    const viewer = await insertApiKey(app.store, { name: "viewer", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    expect((await fetch(`${app.http}/admin/api/audit`, { headers: { "x-auth-token": viewer.token } })).status).toBe(403);
    expect((await fetch(`${app.http}/admin/api/audit`)).status).toBe(401);
  });
});

test("the ring keeps the last RECENT_EVENTS events and writes every one to the log", () => {
  const lines: string[] = [];
  const audit = createAuditLog({ write: (line) => lines.push(line), successSample: 0, now: () => 1_000 });
  for (let index = 0; index < RECENT_EVENTS + 5; index++) audit.record("ban.ended", { subject: `addr:10.0.0.${index % 250}`, n: index });
  expect(lines).toHaveLength(RECENT_EVENTS + 5);
  const recent = audit.recent();
  expect(recent).toHaveLength(RECENT_EVENTS);
  expect(recent[0]).toMatchObject({ audit: "ban.ended", n: RECENT_EVENTS + 4 });
  expect(recent.at(-1)).toMatchObject({ n: 5 });
  expect(audit.recent({ limit: 2 }).map((event) => event.n)).toEqual([RECENT_EVENTS + 4, RECENT_EVENTS + 3]);
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
