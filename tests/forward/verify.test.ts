/**
 * Forward auth (`/auth/verify`): asked directly as a proxy would ask it, then through real nginx
 * (`auth_request`) and Caddy (`forward_auth`) in front of a real upstream that records what it got.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const ROUTES = `
[[route]]
name = "grafana"
match = { path_prefix = "/grafana/" }
upstream = "http://127.0.0.1:9"
scope = "grafana"

[[route]]
name = "public"
match = { path_prefix = "/public/" }
upstream = "http://127.0.0.1:9"
scope = "camera:view"

[[route]]
name = "camera"
match = { host = "cam.local" }
upstream = "http://127.0.0.1:9"
scope = "camera:view"
`;

const dir = mkdtempSync(join(tmpdir(), "tokengate-forward-"));
const routesFile = join(dir, "routes.toml");
writeFileSync(routesFile, ROUTES);
let app: TestApp;
const keys: Record<string, { id: string; token: string }> = {};

async function addKey(name: string, scopes: string[]) {
  const key = await insertApiKey(app.store, { name, scopes });
  keys[name] = { id: key.id, token: key.token };
}

beforeAll(async () => {
  app = await startTestApp({ ROUTES_FILE: routesFile, TRUSTED_PROXIES: "127.0.0.1", BAN_EXEMPT: "" });
  await addKey("dashboard tablet", ["grafana"]);
  await addKey("doorbell", ["camera:view"]);
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const verify = (headers: Record<string, string>, query = "") => fetch(`${app.http}/auth/verify${query}`, { headers });

describe("asked as a proxy asks", () => {
  test("the route's scope decides; identity headers come back; the secret does not", async () => {
    const response = await verify({
      "X-Forwarded-Uri": "/grafana/d/home",
      "X-Forwarded-Host": "gate.local",
      "X-Auth-Token": keys["dashboard tablet"]!.token,
    });
    expect(response.status).toBe(200);
    expect(
      Object.fromEntries(["x-auth-user", "x-auth-id", "x-auth-scopes", "x-auth-kind"].map((name) => [name, response.headers.get(name)])),
    ).toEqual({
      "x-auth-user": "dashboard tablet",
      "x-auth-id": keys["dashboard tablet"]!.id,
      "x-auth-scopes": "grafana",
      "x-auth-kind": "key",
    });
    expect(await response.text()).toBe("");
  });

  test.each<[string, Record<string, string>, string, number, string | undefined]>([
    ["no credential", { "X-Forwarded-Uri": "/grafana/" }, "", 401, "missing_token"],
    ["a key without the route's scope", { "X-Forwarded-Uri": "/grafana/", "X-Auth-Token": "doorbell" }, "", 403, "insufficient_scope"],
    [
      "a host route (nginx's X-Original-URI)",
      { "X-Original-URI": "/live", "X-Forwarded-Host": "cam.local", "X-Auth-Token": "doorbell" },
      "",
      200,
      undefined,
    ],
    ["the token in the original URI's query", { "X-Forwarded-Uri": "/grafana/?token=TABLET" }, "", 200, undefined],
    ["no route and no ?scope=", { "X-Forwarded-Uri": "/elsewhere", "X-Auth-Token": "doorbell" }, "", 403, "access_denied"],
    [
      "no route, ?scope= on the verify URL",
      { "X-Forwarded-Uri": "/elsewhere", "X-Auth-Token": "doorbell" },
      "?scope=camera:view",
      200,
      undefined,
    ],
    ["a credential on the verify URL itself", { "X-Forwarded-Uri": "/grafana/" }, "?token=x", 400, "invalid_request"],
    // A path that one reader could match to the weaker /public/ route while the upstream serves /grafana/.
    [
      "a URL in the original query",
      { "X-Forwarded-Uri": "/grafana/x?next=http://h/public/", "X-Auth-Token": "doorbell" },
      "",
      403,
      "insufficient_scope",
    ],
    ["dot segments", { "X-Forwarded-Uri": "/public/../grafana/x", "X-Auth-Token": "doorbell" }, "", 400, "invalid_request"],
    ["an encoded slash", { "X-Forwarded-Uri": "/public%2F..%2Fgrafana/x", "X-Auth-Token": "doorbell" }, "", 400, "invalid_request"],
    ["an absolute URL", { "X-Forwarded-Uri": "http://gate.local/public/", "X-Auth-Token": "doorbell" }, "", 400, "invalid_request"],
    [
      "a client's X-Forwarded-Uri beside nginx's X-Original-URI",
      { "X-Forwarded-Uri": "/public/", "X-Original-URI": "/grafana/", "X-Auth-Token": "doorbell" },
      "",
      400,
      "invalid_request",
    ],
    [
      "?scope= wins over a matching route",
      { "X-Forwarded-Uri": "/public/x", "X-Auth-Token": "doorbell" },
      "?scope=grafana",
      403,
      "insufficient_scope",
    ],
    ["a malformed ?scope=", { "X-Forwarded-Uri": "/grafana/", "X-Auth-Token": "doorbell" }, "?scope=%0Aevil%22", 400, "invalid_request"],
  ])("%s → %d", async (_name, headers, query, status, code) => {
    const withKeys = Object.fromEntries(
      Object.entries(headers).map(([name, value]) => [
        name,
        value === "doorbell" ? keys.doorbell!.token : value.replace("TABLET", encodeURIComponent(keys["dashboard tablet"]!.token)),
      ]),
    );
    const response = await verify(withKeys, query);
    expect(response.status).toBe(status);
    if (code !== undefined) expect(((await response.json()) as { code: string }).code).toBe(code);
  });

  test("a refusal is audited under the original path, redacted: a secret in the upstream's path stays out", async () => {
    const secretPath = trackSecret(generateApiKey().token);
    const response = await verify({ "X-Forwarded-Uri": `/grafana/share/${secretPath}`, "X-Auth-Token": keys.doorbell!.token });
    expect(response.status).toBe(403);
    expect(app.audit.some((line) => line.includes('"path":"/grafana/share/…"'))).toBe(true);
  });

  test("ten guesses through the proxy ban the client it names, with 429", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const guess = trackSecret(generateApiKey().token);
      statuses.push((await verify({ "X-Forwarded-Uri": "/grafana/", "X-Forwarded-For": "198.51.100.77", "X-Auth-Token": guess })).status);
    }
    expect(statuses.slice(0, 9).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(9)).toEqual([429, 429]);
    const genuine = await verify({
      "X-Forwarded-Uri": "/grafana/",
      "X-Forwarded-For": "198.51.100.77",
      "X-Auth-Token": keys["dashboard tablet"]!.token,
    });
    expect(genuine.status).toBe(429);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
