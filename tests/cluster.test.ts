/**
 * Several real `bun run server.ts` processes sharing the machine's real PostgreSQL (a database of
 * their own per test) and Redis (a key prefix of their own per test), with the real CLI next to
 * them: shared keys and signing keys, revocation fan-out, one brute-force limit for all, and what
 * happens when PostgreSQL or Redis goes away and comes back. A TCP forwarder stands between one
 * instance and a service so that instance alone can lose it.
 */
import { RedisClient } from "bun";
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { makeTempDir, ROOT, ServerProcess, WsProbe, clockEnvironment } from "./support/harness.ts";
import { TcpProxy } from "./support/proxy.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";
import {
  createTestDatabase,
  createTestRedisPrefix,
  POSTGRES_URL,
  postgresService,
  REDIS_URL,
  redisService,
  type TestDatabase,
} from "./support/stores.ts";

const postgres = await postgresService();
const redis = await redisService();
const ready = postgres.available && redis.available;
if (!ready)
  console.warn(`skipped: cluster tests need PostgreSQL and Redis (${[postgres.reason, redis.reason].filter(Boolean).join("; ")})`);

interface Cluster extends AsyncDisposable {
  readonly database: TestDatabase;
  readonly prefix: string;
  readonly token: string;
  readonly instances: ServerProcess[];
  readonly urls: string[];
  /** Environment the instances share (for the CLI and for more instances). */
  readonly env: Record<string, string>;
  start(extra?: Record<string, string>): Promise<{ instance: ServerProcess; url: string }>;
}

async function startCluster(count: number, extra: (index: number) => Record<string, string> = () => ({})): Promise<Cluster> {
  const database = await createTestDatabase();
  const redisPrefix = await createTestRedisPrefix();
  const token = newSecret();
  const dirs: Array<ReturnType<typeof makeTempDir>> = [];
  const env = {
    STORE_URL: database.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: redisPrefix.prefix,
    AUTH_TOKEN: token,
    BAN_EXEMPT: "",
    LOG_LEVEL: "info",
  };
  const instances: ServerProcess[] = [];
  const urls: string[] = [];
  const start = async (more: Record<string, string> = {}) => {
    const dir = makeTempDir();
    dirs.push(dir);
    const instance = new ServerProcess({ ...env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path, ...more }, dir.path);
    instances.push(instance);
    const url = `http://127.0.0.1:${await instance.port()}`;
    urls.push(url);
    return { instance, url };
  };
  // All at once: they race to migrate the new database and to create the signing key.
  await Promise.all(Array.from({ length: count }, (_, index) => start(extra(index))));
  return {
    database,
    prefix: redisPrefix.prefix,
    token,
    instances,
    urls,
    env,
    start,
    async [Symbol.asyncDispose]() {
      await Promise.all(instances.map((instance) => instance.stop()));
      for (const dir of dirs) dir[Symbol.dispose]();
      await database[Symbol.asyncDispose]();
      await redisPrefix[Symbol.asyncDispose]();
    },
  };
}

async function cli(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, "run", join(ROOT, "cli.ts"), ...args], {
    env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), STORE_URL: env.STORE_URL! },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  captureOutput(stderr);
  return { code, stdout, stderr };
}

async function createKey(env: Record<string, string>, scopes = "data:read,ws:connect"): Promise<{ id: string; key: string }> {
  const result = await cli(env, "keys", "create", "--name", "shared", "--scopes", scopes, "--json");
  expect(result.code).toBe(0);
  const created = JSON.parse(result.stdout) as { id: string; key: string };
  trackSecret(created.key);
  return created;
}

const get = (url: string, token: string) => fetch(`${url}/secure-data`, { headers: { "X-Auth-Token": token } });

async function clientCredentials(url: string, key: { id: string; key: string }): Promise<string> {
  const response = await fetch(`${url}/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: key.id, client_secret: key.key }),
  });
  expect(response.status).toBe(200);
  return trackSecret(((await response.json()) as { access_token: string }).access_token);
}

/** Polls until `check` holds or the time is up; returns how long it took (ms). */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`condition not met within ${ms} ms`);
    await Bun.sleep(25);
  }
  return performance.now() - started;
}

describe.skipIf(!ready)("several instances on PostgreSQL and Redis", () => {
  test("instances started at once share keys and one signing key: any instance verifies any instance's JWTs", async () => {
    await using cluster = await startCluster(3);
    const key = await createKey(cluster.env);
    for (const url of cluster.urls) expect((await get(url, key.key)).status).toBe(200);

    const jwks = await Promise.all(cluster.urls.map(async (url) => (await fetch(`${url}/.well-known/jwks.json`)).text()));
    expect(new Set(jwks).size).toBe(1);
    expect((JSON.parse(jwks[0]!) as { keys: unknown[] }).keys).toHaveLength(1);

    const jwt = await clientCredentials(cluster.urls[0]!, key);
    for (const url of cluster.urls)
      expect((await fetch(`${url}/secure-data`, { headers: { authorization: `Bearer ${jwt}` } })).status).toBe(200);

    // A signing-key rotation by the CLI reaches every instance; old tokens keep verifying.
    expect((await cli(cluster.env, "signing-keys", "rotate")).code).toBe(0);
    await within(2_000, async () => {
      const now = await Promise.all(cluster.urls.map(async (url) => (await fetch(`${url}/.well-known/jwks.json`)).text()));
      return new Set(now).size === 1 && (JSON.parse(now[0]!) as { keys: unknown[] }).keys.length === 2;
    });
    const fresh = await clientCredentials(cluster.urls[2]!, key);
    for (const token of [jwt, fresh]) {
      for (const url of cluster.urls)
        expect((await fetch(`${url}/secure-data`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    }
  }, 30_000);

  test("a revocation anywhere closes the key's sockets on every instance within 1 s, and every instance refuses the key within one poll (ms in practice)", async () => {
    await using cluster = await startCluster(3);
    const key = await createKey(cluster.env);
    const sockets = cluster.urls.map((url) => new WsProbe(`${url.replace("http", "ws")}/ws?token=${encodeURIComponent(key.key)}`));
    for (const socket of sockets) expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");

    const revoked = await cli(cluster.env, "keys", "revoke", key.id);
    expect(revoked.code).toBe(0);
    const returned = performance.now();
    // The CLI has committed; every instance hears the NOTIFY within ms (a 100 ms poll is the backstop).
    for (const url of cluster.urls) await within(150, async () => (await get(url, key.key)).status === 401);
    const closes = await Promise.all(sockets.map(async (socket) => ({ ...(await socket.closed), after: performance.now() - returned })));
    for (const close of closes) {
      expect(close.code).toBe(4403);
      expect(close.after).toBeLessThan(1_000);
    }
    console.log(
      `revocation fan-out: sockets closed ${closes.map((close) => `${close.after.toFixed(0)} ms`).join(", ")} after the CLI returned`,
    );

    // An access token revoked through one instance's /auth/revoke dies on the others too.
    const other = await createKey(cluster.env);
    const jwt = await clientCredentials(cluster.urls[0]!, other);
    const socket = new WsProbe(`${cluster.urls[2]!.replace("http", "ws")}/ws`, {
      protocols: ["tokengate", `tokengate.bearer.${Buffer.from(jwt).toString("base64url")}`],
    });
    expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    const revoke = await fetch(`${cluster.urls[1]!}/auth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: jwt }),
    });
    expect(revoke.status).toBe(200);
    const at = performance.now();
    expect((await socket.closed).code).toBe(4403);
    expect(performance.now() - at).toBeLessThan(1_000);
    // Instance 0 learns of it from the same NOTIFY (or, at the latest, its next 100 ms poll); a
    // request racing that notification by a few ms can still pass, so this waits at most one poll.
    const refusedAfter = await within(
      150,
      async () => (await fetch(`${cluster.urls[0]!}/secure-data`, { headers: { authorization: `Bearer ${jwt}` } })).status === 401,
    );
    console.log(
      `access-token revocation through instance 1: socket on instance 2 closed, instance 0 refusing ${refusedAfter.toFixed(0)} ms later`,
    );
  }, 30_000);

  test("a browser session opened on one instance works on the others at once; signing out there closes its socket here", async () => {
    await using cluster = await startCluster(2);
    const key = await createKey(cluster.env);
    const signIn = await fetch(`${cluster.urls[0]!}/auth/login`, {
      method: "POST",
      redirect: "manual",
      body: new URLSearchParams({ api_key: key.key }),
    });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    trackSecret(cookie.slice(4));
    // The other instance has not polled yet: an unknown session id makes it look in the store at once.
    expect((await fetch(`${cluster.urls[1]!}/secure-data`, { headers: { cookie } })).status).toBe(200);
    const socket = new WsProbe(`${cluster.urls[1]!.replace("http", "ws")}/ws`, {
      headers: new Headers({ cookie, origin: cluster.urls[1]! }),
    });
    expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    const out = await fetch(`${cluster.urls[0]!}/auth/logout`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, origin: cluster.urls[0]! },
    });
    expect(out.status).toBe(303);
    const at = performance.now();
    expect((await socket.closed).code).toBe(4403);
    expect(performance.now() - at).toBeLessThan(1_000);
    expect((await fetch(`${cluster.urls[1]!}/secure-data`, { headers: { cookie } })).status).toBe(401);
  }, 30_000);

  test("one failed-attempt limit for all instances: 10 guesses spread over 3 instances ban the address on every one", async () => {
    await using cluster = await startCluster(3);
    const key = await createKey(cluster.env);
    for (let i = 0; i < 9; i++) {
      expect((await get(cluster.urls[i % 3]!, `tg_${"0".repeat(12)}_${newSecret().slice(0, 43)}`)).status).toBe(401);
    }
    // The counter lives in Redis under this deployment's prefix: a sliding window of failure times.
    const client = new RedisClient(REDIS_URL);
    expect(await client.send("ZCARD", [`${cluster.prefix}attempts:sliding:addr:127.0.0.1`])).toBe(9);
    client.close();
    expect((await get(cluster.urls[0]!, "wrong-guess-number-ten-0123456789abcdef")).status).toBe(401);
    // The ban reaches the others through the store within a moment; even the genuine key is turned away.
    await within(1_000, async () => {
      const statuses = await Promise.all(cluster.urls.map(async (url) => (await get(url, key.key)).status));
      return statuses.every((status) => status === 429);
    });
    const refused = await get(cluster.urls[2]!, key.key);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect((await cli(cluster.env, "bans", "list", "--json")).stdout).toContain("addr:127.0.0.1");
  }, 30_000);

  test("without REDIS_URL each instance counts alone: the same 10 guesses ban nobody (why the shared counter matters)", async () => {
    await using cluster = await startCluster(3, () => ({ REDIS_URL: "" }));
    const key = await createKey(cluster.env);
    for (let i = 0; i < 10; i++) expect((await get(cluster.urls[i % 3]!, `guess-${i}-${newSecret()}`)).status).toBe(401);
    await Bun.sleep(300);
    for (const url of cluster.urls) expect((await get(url, key.key)).status).toBe(200);
  }, 30_000);

  test("PostgreSQL lost by one instance: it fails closed (503), says why, and recovers without a restart", async () => {
    await using cluster = await startCluster(1);
    using proxy = new TcpProxy("127.0.0.1", Number(new URL(POSTGRES_URL).port || 5432));
    const viaProxy = new URL(cluster.database.url);
    viaProxy.port = String(proxy.port);
    const { instance, url } = await cluster.start({ STORE_URL: viaProxy.toString() });
    const key = await createKey(cluster.env);
    expect((await get(url, key.key)).status).toBe(200);

    proxy.cut();
    const wentStale = await within(10_000, async () => (await get(url, key.key)).status === 503);
    const refused = await get(url, key.key);
    expect(refused.headers.get("retry-after")).toBe("2");
    expect(((await refused.json()) as { code: string }).code).toBe("temporarily_unavailable");
    await instance.waitFor((line) => typeof line.msg === "string" && line.msg.startsWith("store unreachable"));
    // The bootstrap token is configuration, not store data: the operator can still get in.
    expect((await get(url, cluster.token)).status).toBe(200);
    // The token endpoint answers 503 in its own error shape, never 500, and counts no guess.
    const grant = await fetch(`${url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: key.id, client_secret: key.key }),
    });
    expect(grant.status).toBe(503);
    expect(((await grant.json()) as { error: string }).error).toBe("temporarily_unavailable");

    // Meanwhile the key is revoked on the healthy instance: the lost one must not miss it.
    expect((await cli(cluster.env, "keys", "revoke", key.id)).code).toBe(0);
    proxy.restore();
    const recovered = await within(15_000, async () => (await get(url, key.key)).status === 401);
    await instance.waitFor((line) => line.msg === "store reachable again; authenticating from it");
    console.log(`postgres outage: 503 after ${wentStale.toFixed(0)} ms; recovered ${recovered.toFixed(0)} ms after the link came back`);
    expect(instance.proc.exitCode).toBeNull();
  }, 60_000);

  test("Redis lost by one instance: it counts attempts locally meanwhile, says so, and goes back to Redis", async () => {
    await using cluster = await startCluster(0);
    using proxy = new TcpProxy("127.0.0.1", Number(new URL(REDIS_URL).port || 6379));
    const { instance, url } = await cluster.start({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    expect((await get(url, "first-guess-0123456789abcdefghijklmnop")).status).toBe(401);

    proxy.cut();
    // Every failure is also counted in this process at once, so the 10th (one before the cut, nine
    // after) is already answered 429 while Redis has not answered at all.
    for (let i = 0; i < 8; i++) expect((await get(url, `guess-${i}-${newSecret()}`)).status).toBe(401);
    expect((await get(url, `guess-9-${newSecret()}`)).status).toBe(429);
    await instance.waitFor((line) => typeof line.msg === "string" && line.msg.startsWith("attempt counter store unreachable"));
    await within(2_000, async () => (await get(url, cluster.token)).status === 429);

    proxy.restore();
    expect((await cli(cluster.env, "bans", "clear")).code).toBe(0);
    await within(2_000, async () => (await get(url, cluster.token)).status === 200);
    await within(10_000, async () => {
      await get(url, `after-${newSecret()}`);
      return instance.logLines().some((line) => line.msg === "attempt counter store reachable again");
    });
  }, 60_000);

  test("a PostgreSQL that cannot be reached at startup: exit 78 naming STORE_URL, without its password", async () => {
    using dir = makeTempDir();
    const password = trackSecret(`pw-${newSecret().slice(0, 20)}`);
    const instance = new ServerProcess(
      { STORE_URL: `postgres://gate:${password}@127.0.0.1:1/tokengate`, PORT: "0", DATA_DIR: dir.path },
      dir.path,
    );
    expect(await instance.exited()).toBe(78);
    expect(instance.stderr).toContain("STORE_URL");
    expect(instance.stderr).not.toContain(password);
  }, 30_000);
});

afterAll(() => expectNoSecretsInOutput());

describe("a burst against the shared counter", () => {
  test("pipelined guesses are cut off at the limit while Redis answers: the local count does not wait for it", async () => {
    await using cluster = await startCluster(1);
    const url = cluster.urls[0]!;
    const statuses = await Promise.all(
      Array.from({ length: 60 }, (_, i) => get(url, `burst-${i}-${newSecret()}`).then((response) => response.status)),
    );
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(10);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(50);
  }, 30_000);
});
