/**
 * The OpenAPI document at /admin/api/openapi.json: a valid 3.1 shape that lists every admin
 * endpoint, and real answers of the API (successes and refusals) that validate against the schemas
 * it declares, checked with an independent JSON Schema validator (Ajv, draft 2020-12).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020.js";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

let app: TestApp;
let admin: { token: string };
let document: Record<string, any>;

beforeAll(async () => {
  app = await startTestApp();
  admin = await insertApiKey(app.store, { name: "admin", scopes: ["*"] });
  await app.app.keyring.refresh();
  const response = await fetch(`${app.http}/admin/api/openapi.json`);
  expect(response.status).toBe(200);
  document = (await response.json()) as Record<string, any>;
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
});

/** The schema the document declares for `path`'s `method` answering `status`, with its components. */
function schemaFor(path: string, method: string, status: number): object {
  const operation = document.paths[path]?.[method];
  expect(operation).toBeDefined();
  const content = operation.responses[String(status)]?.content?.["application/json"]?.schema;
  expect(content).toBeDefined();
  return { ...content, components: document.components };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });

async function expectAnswerMatches(path: string, method: "get" | "post", init: RequestInit): Promise<Record<string, unknown>> {
  const response = await fetch(`${app.http}${path}`, init);
  const body = (await response.json()) as Record<string, unknown>;
  if (typeof body.secret === "string") trackSecret(body.secret);
  const validate = ajv.compile(schemaFor(path, method, response.status));
  const valid = validate(body);
  if (!valid) console.error(JSON.stringify(validate.errors));
  expect(valid).toBe(true);
  return { status: response.status, ...body };
}

const json = (body: unknown, token = admin.token): RequestInit => ({
  method: "POST",
  headers: { "x-auth-token": token, "content-type": "application/json" },
  body: JSON.stringify(body),
});

describe("the document", () => {
  test("OpenAPI 3.1 with every admin endpoint, its request body and its answers", () => {
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths).sort()).toEqual([
      "/admin/api/audit",
      "/admin/api/bans",
      "/admin/api/bans/clear",
      "/admin/api/keys",
      "/admin/api/keys/revoke",
      "/admin/api/keys/rotate",
      "/admin/api/keys/update",
      "/admin/api/refresh-families",
      "/admin/api/refresh-families/revoke",
      "/admin/api/refresh-families/revoke-all",
      "/admin/api/scopes",
      "/admin/api/sessions",
      "/admin/api/sessions/revoke",
      "/admin/api/sessions/revoke-all",
      "/admin/api/signing-keys",
      "/admin/api/signing-keys/rotate",
      "/admin/api/users",
      "/admin/api/users/disable",
      "/admin/api/users/enable",
      "/admin/api/users/passkeys",
      "/admin/api/users/passkeys/remove",
      "/admin/api/users/password",
      "/admin/api/users/require-passkey",
      "/admin/api/users/roles",
    ]);
    expect(Object.keys(document.paths["/admin/api/keys"]).sort()).toEqual(["get", "post"]);
    // A filtered read takes its filter in a body, as POST /audit does; the GET beside it lists everything.
    for (const path of ["/admin/api/users/passkeys", "/admin/api/refresh-families"]) {
      expect(Object.keys(document.paths[path]).sort()).toEqual(["get", "post"]);
    }
    expect(document.paths["/admin/api/signing-keys/rotate"].post.responses["201"]).toBeDefined();
    const create = document.paths["/admin/api/keys"].post;
    expect(create.requestBody.content["application/json"].schema.required).toEqual(["name"]);
    expect(create.responses["201"]).toBeDefined();
    expect(create.responses["400"].content["application/json"].schema.$ref).toBe("#/components/schemas/Error");
    // Every schema the document holds compiles as JSON Schema 2020-12.
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations as Record<string, any>)) {
        for (const status of Object.keys(operation.responses))
          expect(() => ajv.compile(schemaFor(path, method, Number(status)))).not.toThrow();
      }
    }
  });
});

describe("real answers validate against it", () => {
  test("list, create, revoke, rotate, and their refusals", async () => {
    await expectAnswerMatches("/admin/api/keys", "get", { headers: { "x-auth-token": admin.token } });
    const created = await expectAnswerMatches("/admin/api/keys", "post", json({ name: "lamp", scopes: ["data:read"], expires: "30d" }));
    expect(created.status).toBe(201);
    const id = (created.key as { id: string }).id;
    const rotated = await expectAnswerMatches("/admin/api/keys/rotate", "post", json({ id, overlap: "1h" }));
    expect(rotated.status).toBe(201);
    const revoked = await expectAnswerMatches("/admin/api/keys/revoke", "post", json({ id: (rotated.key as { id: string }).id }));
    expect(revoked.status).toBe(200);
    for (const [path, body, status] of [
      ["/admin/api/keys", { name: "" }, 400],
      ["/admin/api/keys/revoke", { id: "0123456789ab" }, 404],
      ["/admin/api/keys/revoke", { id: (rotated.key as { id: string }).id }, 409],
    ] as const) {
      const answer = await expectAnswerMatches(path, "post", json(body));
      expect(answer.status).toBe(status);
    }
    const unauthenticated = await expectAnswerMatches("/admin/api/keys", "get", {});
    expect(unauthenticated.status).toBe(401);
  });

  test("every list (users, sessions, bans, audit) and a user's whole life", async () => {
    for (const path of ["/admin/api/users", "/admin/api/sessions", "/admin/api/bans", "/admin/api/audit"]) {
      const answer = await expectAnswerMatches(path, "get", { headers: { "x-auth-token": admin.token } });
      expect(answer.status).toBe(200);
    }
    const password = trackSecret("a long enough password for ann");
    expect((await expectAnswerMatches("/admin/api/users", "post", json({ username: "ann", roles: ["viewer"], password }))).status).toBe(
      201,
    );
    expect((await expectAnswerMatches("/admin/api/users/disable", "post", json({ username: "ann" }))).status).toBe(200);
    expect((await expectAnswerMatches("/admin/api/users/enable", "post", json({ username: "ann" }))).status).toBe(200);
    expect((await expectAnswerMatches("/admin/api/users/roles", "post", json({ username: "ann", roles: ["admin"] }))).status).toBe(200);
    // ann is now the one admin among the users: disabling her would leave none.
    expect((await expectAnswerMatches("/admin/api/users/disable", "post", json({ username: "ann", confirm: true }))).status).toBe(409);
    expect((await expectAnswerMatches("/admin/api/users/enable", "post", json({ username: "nobody" }))).status).toBe(404);
    expect((await expectAnswerMatches("/admin/api/bans/clear", "post", json({}))).status).toBe(200);
    expect((await expectAnswerMatches("/admin/api/audit", "post", json({ event: "admin." }))).status).toBe(200);
  });

  test("passkeys, refresh families and signing keys: lists, changes and refusals", async () => {
    for (const path of ["/admin/api/users/passkeys", "/admin/api/refresh-families", "/admin/api/signing-keys"]) {
      const answer = await expectAnswerMatches(path, "get", { headers: { "x-auth-token": admin.token } });
      expect(answer.status).toBe(200);
    }
    const rotated = await expectAnswerMatches("/admin/api/signing-keys/rotate", "post", json({}));
    expect(rotated.status).toBe(201);
    for (const [path, body, status] of [
      ["/admin/api/users/passkeys", { username: "ann" }, 200],
      ["/admin/api/users/passkeys", { username: "nobody" }, 404],
      ["/admin/api/users/passkeys/remove", { username: "ann", id: "bm9uZQ" }, 404],
      ["/admin/api/users/passkeys/remove", { username: "ann" }, 400],
      ["/admin/api/refresh-families", { username: "ann" }, 200],
      ["/admin/api/refresh-families/revoke", { family_id: crypto.randomUUID() }, 404],
      ["/admin/api/refresh-families/revoke", { family_id: "nope" }, 400],
      ["/admin/api/refresh-families/revoke-all", { username: "ann" }, 404],
    ] as const) {
      const answer = await expectAnswerMatches(path, "post", json(body));
      expect(answer.status).toBe(status);
    }
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
