/**
 * GET /metrics end to end: the whole app (startApp) with a routes file in front of a real service,
 * traffic of every kind (successes, refusals, a ban, a WebSocket revoked while open, proxied
 * answers, password checks), then a scrape checked by Prometheus's own promtool and read back.
 * Who may scrape (loopback, METRICS_ALLOW, a credential with metrics:read), METRICS=false, and a
 * fuzzed flood of paths, tokens, methods and hosts that must not add series beyond a fixed bound.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statusLabel, UNMATCHED_ROUTE } from "../../auth/core/gate-metrics.ts";
import { EXPOSITION_TYPE } from "../../auth/core/metrics.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import {
  checkMetrics,
  findSample,
  parseSamples,
  promtoolAvailable,
  requirePromtool,
  sumSamples,
  type Sample,
} from "../support/promtool.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

requirePromtool("metrics scrape checks");

const dir = mkdtempSync(join(tmpdir(), "tokengate-metrics-"));
const PASSWORD = trackSecret("correct horse battery staple 42");
let upstream: Upstream;
let app: TestApp;
let keys: Record<"service" | "socket" | "scraper" | "reader", { id: string; token: string }>;

beforeAll(async () => {
  upstream = startUpstream();
  const file = join(dir, "routes.toml");
  writeFileSync(
    file,
    `[[route]]
name = "svc"
match = { path_prefix = "/svc/" }
upstream = "${upstream.url}"
scope = "svc"
strip_prefix = true

[[route]]
name = "gone"
match = { path_prefix = "/gone/" }
upstream = "http://127.0.0.1:9"
scope = "svc"

[[route]]
name = "camera"
match = { host = "cam.example" }
upstream = "${upstream.url}"
scope = "svc"
`,
  );
  // Loopback is a trusted proxy here, so a test can speak as any client address through X-Forwarded-For.
  app = await startTestApp({ ROUTES_FILE: file, TRUSTED_PROXIES: "127.0.0.1", ALLOWED_HOSTS: "cam.example" });
  keys = {
    service: await insertApiKey(app.store, { name: "tablet", scopes: ["svc"] }),
    socket: await insertApiKey(app.store, { name: "sensor", scopes: ["ws:connect"] }),
    scraper: await insertApiKey(app.store, { name: "prometheus", scopes: ["metrics:read"] }),
    reader: await insertApiKey(app.store, { name: "reader", scopes: ["data:read"] }),
  };
  await app.store.insertUser({ username: "alice", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
});

afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** A scrape of `base`, its text captured for the leak scan. */
async function scrape(base: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; text: string }> {
  const answer = await fetch(`${base}/metrics`, { headers });
  const text = await answer.text();
  captureOutput(text);
  return { status: answer.status, type: answer.headers.get("content-type"), text };
}

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${app.http}${path}`, { headers }).then((r) => (void r.arrayBuffer(), r));

/** HTTP traffic of every outcome: successes, a missing token, guesses until a ban, proxied answers, a 404. */
async function sendHttpTraffic(): Promise<void> {
  for (let i = 0; i < 3; i++) expect((await get("/secure-data", { "x-auth-token": app.token })).status).toBe(200);
  expect((await get("/secure-data")).status).toBe(401);
  const guesser = { "x-forwarded-for": "192.0.2.50" };
  const statuses: number[] = [];
  for (let i = 0; i < 11; i++) statuses.push((await get("/secure-data", { ...guesser, "x-auth-token": newSecret() })).status);
  expect(statuses.at(-1)).toBe(429);
  expect((await get("/svc/hello", { "x-auth-token": keys.service.token })).status).toBe(200);
  expect((await get("/gone/x", { "x-auth-token": keys.service.token })).status).toBe(502);
  expect((await get("/no/such/path")).status).toBe(404);
}

/** One right and one wrong password through the password grant (two argon2id checks), then the new JWT used once (a signature check). */
async function sendPasswordTraffic(): Promise<void> {
  const grant = (password: string) =>
    fetch(`${app.http}/auth/token`, { method: "POST", body: new URLSearchParams({ grant_type: "password", username: "alice", password }) });
  const granted = await grant(PASSWORD);
  expect(granted.status).toBe(200);
  const body = (await granted.json()) as { access_token: string; refresh_token: string };
  trackSecret(body.access_token);
  trackSecret(body.refresh_token);
  expect((await grant(`${PASSWORD}!`)).status).toBe(400);
  expect((await get("/auth/whoami", { authorization: `Bearer ${body.access_token}` })).status).toBe(200);
}

/** A socket opened with a key, then the key revoked in the store: the socket closes 4403. */
async function openAndRevokeSocket(): Promise<void> {
  const probe = new WsProbe(`${app.ws}/ws?token=${encodeURIComponent(keys.socket.token)}`);
  expect(await probe.opened).toBe(true);
  await probe.nextMessage(0);
  await app.store.revokeKey(keys.socket.id, Date.now());
  await app.app.keyring.refresh();
  expect((await probe.closed).code).toBe(4403);
}

/** Scrapes until a sample satisfies `ready` (timers and close handlers run a little later than the traffic). */
async function scrapeUntil(ready: (samples: readonly Sample[]) => boolean): Promise<{ text: string; samples: Sample[] }> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const { text } = await scrape(app.http);
    const samples = parseSamples(text);
    if (ready(samples) || Date.now() > deadline) return { text, samples };
    await Bun.sleep(50);
  }
}

describe("a scrape after traffic", () => {
  let text = "";
  let samples: Sample[] = [];

  beforeAll(async () => {
    await sendHttpTraffic();
    await sendPasswordTraffic();
    await openAndRevokeSocket();
    ({ text, samples } = await scrapeUntil(
      (found) =>
        (findSample(found, "tokengate_event_loop_lag_seconds_count")?.value ?? 0) >= 1 &&
        (findSample(found, "tokengate_websocket_closes_total", { code: "4403" })?.value ?? 0) >= 1,
    ));
  });

  test("answered from loopback without a credential, in the text exposition format", async () => {
    const answer = await scrape(app.http);
    expect(answer.status).toBe(200);
    expect(answer.type).toBe(EXPOSITION_TYPE);
  });

  test.skipIf(!promtoolAvailable)("promtool check metrics finds nothing to say", async () => {
    expect(await checkMetrics(text)).toEqual({ exitCode: 0, output: "" });
  });

  test("requests by route and status code: the route, never the request's path", () => {
    const requests = (route: string, code: string) => findSample(samples, "tokengate_http_requests_total", { route, code })?.value ?? 0;
    expect(requests("/secure-data", "200")).toBeGreaterThanOrEqual(3);
    // One without a token, nine guesses; the tenth guess starts the ban and is answered 429, as is the eleventh.
    expect(requests("/secure-data", "401")).toBeGreaterThanOrEqual(10);
    expect(requests("/secure-data", "429")).toBeGreaterThanOrEqual(2);
    expect(requests("svc", "200")).toBe(1);
    expect(requests("gone", "502")).toBe(1);
    expect(requests(UNMATCHED_ROUTE, "404")).toBe(1);
    expect(requests("/ws", "101")).toBe(1);
    expect(requests("/auth/token", "200")).toBe(1);
    expect(text).not.toContain("/no/such/path");
    expect(text).not.toContain("/svc/hello");
    expect(findSample(samples, "tokengate_http_request_duration_seconds_count", { route: "/secure-data" })?.value).toBeGreaterThanOrEqual(
      15,
    );
  });

  test("refusals by reason, and the ban they led to", () => {
    expect(findSample(samples, "tokengate_refusals_total", { reason: "missing_token" })?.value).toBeGreaterThanOrEqual(1);
    expect(findSample(samples, "tokengate_refusals_total", { reason: "unknown_token" })?.value).toBeGreaterThanOrEqual(10);
    expect(findSample(samples, "tokengate_refusals_total", { reason: "wrong_grant_secret" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_bans_started_total", { subject: "addr" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_bans_active", { subject: "addr" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_bans_active", { subject: "user" })?.value).toBe(0);
  });

  test("auth: every check counted by outcome; the ones that waited (a JWT's signature, argon2id) timed", () => {
    const checks = (credential: string, result: string) =>
      findSample(samples, "tokengate_auth_checks_total", { credential, result })?.value ?? 0;
    const timed = (credential: string, result: string) =>
      findSample(samples, "tokengate_auth_duration_seconds_count", { credential, result })?.value ?? 0;
    expect(checks("token", "valid")).toBeGreaterThanOrEqual(6);
    expect(checks("token", "invalid")).toBeGreaterThanOrEqual(10);
    expect(checks("password", "valid")).toBe(1);
    expect(checks("password", "invalid")).toBe(1);
    expect(timed("token", "valid")).toBeGreaterThanOrEqual(1);
    expect(timed("password", "valid")).toBe(1);
    expect(timed("password", "invalid")).toBe(1);
    // argon2id takes tens of milliseconds at least: the password checks' sum shows it.
    expect(findSample(samples, "tokengate_auth_duration_seconds_sum", { credential: "password", result: "valid" })?.value).toBeGreaterThan(
      0.01,
    );
    expect(findSample(samples, "tokengate_password_queue_depth")?.value).toBe(0);
    expect(sumSamples(samples, "tokengate_password_rejections_total")).toBe(0);
  });

  test("the proxy's look at whose a header is counts no second check: one request, one valid check, no invalid one", async () => {
    const count = async () => {
      const now = parseSamples((await scrape(app.http)).text);
      const checks = (result: string) => findSample(now, "tokengate_auth_checks_total", { credential: "token", result })?.value ?? 0;
      return { valid: checks("valid"), invalid: checks("invalid") };
    };
    const before = await count();
    // The gate's key in X-Auth-Token, and the web app's own bearer token, which the gate passes on unread.
    const answer = await get("/svc/hello", { "x-auth-token": keys.service.token, authorization: `Bearer ${newSecret()}` });
    expect(answer.status).toBe(200);
    expect(await count()).toEqual({ valid: before.valid + 1, invalid: before.invalid });
  });

  test("sockets: opened, closed 4403 on revocation, and how long after the revocation", () => {
    expect(findSample(samples, "tokengate_websockets_opened_total")?.value).toBe(1);
    expect(findSample(samples, "tokengate_websockets_open")?.value).toBe(0);
    expect(findSample(samples, "tokengate_websocket_closes_total", { code: "4403" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_revocation_close_seconds_count")?.value).toBe(1);
    expect(findSample(samples, "tokengate_revocation_close_seconds_sum")?.value).toBeLessThan(5);
  });

  test("the proxy: each service's answers by status (none when it never answered) and latency", () => {
    expect(findSample(samples, "tokengate_proxy_upstream_responses_total", { route: "svc", code: "200" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_proxy_upstream_responses_total", { route: "gone", code: "none" })?.value).toBe(1);
    expect(findSample(samples, "tokengate_proxy_upstream_duration_seconds_count", { route: "svc" })?.value).toBe(1);
  });

  test("the store's polls, the view's age, the process", () => {
    expect(findSample(samples, "tokengate_store_poll_duration_seconds_count")?.value).toBeGreaterThan(0);
    expect(findSample(samples, "tokengate_store_stale")?.value).toBe(0);
    expect(findSample(samples, "tokengate_store_sync_age_seconds")?.value).toBeLessThan(5);
    expect(findSample(samples, "process_resident_memory_bytes")?.value).toBeGreaterThan(10 * 1024 * 1024);
    expect(findSample(samples, "process_start_time_seconds")?.value).toBeLessThanOrEqual(Date.now() / 1000);
    expect(findSample(samples, "tokengate_event_loop_lag_seconds_count")?.value).toBeGreaterThanOrEqual(1);
  });

  test("no token, key id, username or address in the scrape", () => {
    for (const secret of [app.token, PASSWORD, ...Object.values(keys).map((key) => key.token)]) expect(text).not.toContain(secret);
    for (const name of [...Object.values(keys).map((key) => key.id), "alice", "192.0.2.50", "127.0.0.1"]) expect(text).not.toContain(name);
  });
});

describe("who may scrape", () => {
  const from = (address: string, extra: Record<string, string> = {}) => ({ "x-forwarded-for": address, ...extra });

  test("another address needs a credential: 401 without one, 403 without metrics:read, 200 with it", async () => {
    const refused = await scrape(app.http, from("192.0.2.60"));
    expect(refused.status).toBe(401);
    expect(refused.text).not.toContain("tokengate_");
    expect((await scrape(app.http, from("192.0.2.60", { "x-auth-token": keys.reader.token }))).status).toBe(403);
    expect((await scrape(app.http, from("192.0.2.60", { "x-auth-token": keys.scraper.token }))).status).toBe(200);
    expect((await scrape(app.http, from("192.0.2.60", { authorization: `Bearer ${app.token}` }))).status).toBe(200);
  });

  test("METRICS_ALLOW addresses scrape without a credential; others still need one", async () => {
    await using allowing = await startTestApp({ TRUSTED_PROXIES: "127.0.0.1", METRICS_ALLOW: "192.0.2.0/24, 2001:db8::9" });
    expect((await scrape(allowing.http, from("192.0.2.61"))).status).toBe(200);
    expect((await scrape(allowing.http, from("2001:db8::9"))).status).toBe(200);
    expect((await scrape(allowing.http, from("198.51.100.7"))).status).toBe(401);
    expect((await scrape(allowing.http)).status).toBe(200);
  });

  test("METRICS=false: no /metrics (404), and the gate works as before", async () => {
    await using off = await startTestApp({ METRICS: "false" });
    expect((await scrape(off.http)).status).toBe(404);
    expect((await fetch(`${off.http}/secure-data`, { headers: { "x-auth-token": off.token } })).status).toBe(200);
  });

  test("metrics:read is a known scope: the admin API gives it to a key without allow_new_scope", async () => {
    const created = await fetch(`${app.http}/admin/api/keys`, {
      method: "POST",
      headers: { "x-auth-token": app.token, "content-type": "application/json" },
      body: JSON.stringify({ name: "prometheus two", scopes: ["metrics:read"] }),
    });
    const body = (await created.json()) as { secret?: string };
    if (body.secret !== undefined) trackSecret(body.secret);
    expect(created.status).toBe(201);
  });

  test("a routes-file service on its own host keeps its own /metrics", async () => {
    const before = upstream.received.length;
    const answer = await get("/metrics", { host: "cam.example", "x-auth-token": keys.service.token });
    expect(answer.status).toBe(200);
    expect(upstream.received.slice(before).map((received) => received.target)).toEqual(["/metrics"]);
  });
});

/** Known paths the flood mixes in (so methods, tokens and hosts meet real routes too), the rest random. */
const FLOOD_PATHS = ["/secure-data", "/auth/whoami", "/ws", "/healthz", "/auth/token", "/svc/a", "/metrics", "/admin/api/keys"];
const FLOOD_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "BREW"];
/** Every route label this file's traffic and the flood can reach: gate paths, the three services, unmatched. */
const REACHABLE_ROUTES = new Set([...FLOOD_PATHS.filter((path) => !path.startsWith("/svc/")), "svc", "gone", "camera", UNMATCHED_ROUTE]);
/**
 * The README's bound: at most 260 series that no request can add to (refusal kinds, auth latency,
 * sockets, the store, the process), plus 56 per route label (39 code labels, a histogram's 17
 * series) and 56 per service's upstream. Here: 260 + 56 × (11 + 3) = 1044.
 */
const SERIES_BOUND = 260 + 56 * (REACHABLE_ROUTES.size + 3);

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const randomText = (length: number) => Array.from({ length }, () => pick([..."abcdefghijklmnopqrstuvwxyz0123456789-_.~%"])).join("");

/** One fuzzed request: a random or known path, a random credential in a random place, method and allowed Host. */
function floodRequest(port: number, marker: string): Promise<unknown> {
  const path = Math.random() < 0.3 ? pick(FLOOD_PATHS) : `/${marker}${randomText(12)}/${randomText(20)}`;
  const token = pick([
    `tg_${randomText(12)}_${randomText(30)}`,
    `${marker}${randomText(40)}`,
    `e${randomText(20)}.${randomText(30)}.${randomText(10)}`,
  ]);
  const headers: Record<string, string> = {
    host: pick([`127.0.0.1:${port}`, `localhost:${port}`, `testbox:${port}`, "testbox.local", "printer.local", "cam.example"]),
  };
  const place = pick(["x-auth-token", "authorization", "none"]);
  if (place === "x-auth-token") headers["x-auth-token"] = token;
  if (place === "authorization") headers.authorization = `Bearer ${token}`;
  return fetch(`http://127.0.0.1:${port}${path}`, { method: pick(FLOOD_METHODS), headers }).then(
    (answer) => answer.arrayBuffer(),
    () => undefined,
  );
}

describe("cardinality under a fuzzed flood", () => {
  test("2000 requests of random paths, tokens, methods and hosts add no series past the bound", async () => {
    const port = Number(new URL(app.http).port);
    const marker = "fz9";
    for (let batch = 0; batch < 80; batch++) await Promise.all(Array.from({ length: 25 }, () => floodRequest(port, marker)));
    const { text } = await scrape(app.http);
    const samples = parseSamples(text);
    expect(samples.length).toBeLessThanOrEqual(SERIES_BOUND);
    expect(text).not.toContain(marker);
    const routes = new Set(samples.flatMap((sample) => (sample.labels.route === undefined ? [] : [sample.labels.route])));
    expect([...routes].filter((route) => !REACHABLE_ROUTES.has(route))).toEqual([]);
    const codes = new Set(Array.from({ length: 1000 }, (_, status) => statusLabel(status)));
    for (const sample of samples)
      if (sample.labels.code !== undefined && sample.name !== "tokengate_websocket_closes_total")
        expect(codes.has(sample.labels.code)).toBe(true);
  }, 60_000);

  test("no secret reached any output", () => {
    expectNoSecretsInOutput();
  });
});
