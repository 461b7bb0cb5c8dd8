/**
 * Users and Basic auth through the real gate: real SQLite store, real argon2id (Bun.password), the
 * real curl binary for `curl -u`, and a bounded verification queue under concurrent load. Passwords
 * in every Unicode spelling go through the real CLI and the real server as subprocesses.
 */
import { describe, expect, test } from "bun:test";
import { BASIC_CHALLENGE } from "../../auth/http/responses.ts";
import { startListener } from "../../auth/http/listener.ts";
import { createLogger } from "../../auth/core/log.ts";
import { createPasswordVerifier, hashPassword, type PasswordVerifier } from "../../auth/secrets/passwords.ts";
import { createBootstrapAuthenticator } from "../../auth/authn/static-token.ts";
import { createSeedRoutes } from "../../auth/http/routes.ts";
import { openDataDirStore } from "../support/stores.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { createPasswordAuthenticator } from "../../auth/authn/users.ts";
import { runCliProcess } from "../support/cli.ts";
import { curl, makeTempDir, rawRequest, ServerProcess, WsProbe } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

const PASSWORD = trackSecret("correct horse battery staple");
const OPS_PASSWORD = trackSecret("opsopsops-secret-pass");
const roleScopes = new Map<string, readonly string[]>([
  ["admin", ["*"]],
  ["viewer", ["data:read", "ws:connect"]],
  ["kiosk", ["ws:connect"]],
]);

async function startUserGate(limits = { concurrency: 1, queueLimit: 8 }) {
  const dir = makeTempDir();
  const store = await openDataDirStore(dir.path);
  const now = Date.now();
  await store.insertUser({ username: "alice", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: now });
  await store.insertUser({ username: "kiosk1", passwordHash: await hashPassword(OPS_PASSWORD), roles: ["kiosk"], createdAt: now });
  await store.insertUser({ username: "gone", passwordHash: await hashPassword(PASSWORD), roles: ["admin"], createdAt: now });
  await store.setDisabled("gone", now, now);
  const inner = createPasswordVerifier(limits);
  let verifications = 0;
  // Counting wrapper around the real verifier: proves unknown users cost a verification too.
  const verifier: PasswordVerifier = {
    verify: (password, hash, holders) => ((verifications += 1), inner.verify(password, hash, holders)),
    get active() {
      return inner.active;
    },
    get queued() {
      return inner.queued;
    },
  };
  const token = newSecret();
  const lines: string[] = [];
  const listener = startListener({
    now: Date.now,
    port: 0,
    host: "127.0.0.1",
    authenticate: createBootstrapAuthenticator(digestToken(token)),
    authenticatePassword: createPasswordAuthenticator({ users: store, verifier, roleScopes }),
    routes: createSeedRoutes(),
    logger: createLogger({
      now: Date.now,
      level: "debug",
      format: "json",
      sink: { write: (line) => (lines.push(line), captureOutput(line)) },
    }),
    accessLog: "all",
    wsMaxPayload: 65536,
    wsIdleTimeout: 120,
    httpIdleTimeout: 10,
    shutdownTimeout: 2,
  });
  const port = listener.server.port!;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    token,
    store,
    lines,
    verifications: () => verifications,
    async [Symbol.asyncDispose]() {
      await listener.shutdown();
      await store.close();
      dir[Symbol.dispose]();
    },
  };
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("Basic auth (RFC 7617)", () => {
  test("curl -u works, and whoami describes the user with the scopes of its roles", async () => {
    await using gate = await startUserGate();
    const ok = await curl(["-u", `alice:${PASSWORD}`, `${gate.url}/secure-data`]);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ message: "✅ Access granted", data: "Here is your secret data!" });
    const whoami = await curl(["-u", `alice:${PASSWORD}`, `${gate.url}/auth/whoami`]);
    expect(JSON.parse(whoami.body)).toEqual({
      id: "user:alice",
      kind: "user",
      name: "alice",
      scopes: ["data:read", "ws:connect"],
      expires_at: null,
    });
  });

  test.each([
    ["wrong password", "alice", "not the password"],
    ["unknown user", "mallory", PASSWORD],
    ["disabled user, right password", "gone", PASSWORD],
  ])("%s: 401 invalid_credentials with both challenges, after a full verification", async (_name, user, password) => {
    await using gate = await startUserGate();
    const before = gate.verifications();
    const response = await fetch(`${gate.url}/secure-data`, { headers: { Authorization: basic(user, password) } });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ detail: "Invalid or missing token", code: "invalid_credentials" });
    const challenges = response.headers.get("www-authenticate")!;
    expect(challenges).toContain('Bearer realm="tokengate"');
    expect(challenges).toContain(BASIC_CHALLENGE);
    expect(gate.verifications() - before).toBe(1);
  });

  test("a user whose roles lack data:read gets 403 insufficient_scope", async () => {
    await using gate = await startUserGate();
    const response = await fetch(`${gate.url}/secure-data`, { headers: { Authorization: basic("kiosk1", OPS_PASSWORD) } });
    expect(response.status).toBe(403);
    expect(response.headers.get("www-authenticate")).toContain('scope="data:read"');
  });

  test("the missing-token 401 offers Basic too, so curl --anyauth and browsers can pick it", async () => {
    await using gate = await startUserGate();
    const response = await fetch(`${gate.url}/secure-data`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain(BASIC_CHALLENGE);
  });

  test.each([
    ["not base64", "Basic !!!!"],
    ["no colon", `Basic ${Buffer.from("alice").toString("base64")}`],
    ["empty username", `Basic ${Buffer.from(":pw").toString("base64")}`],
    ["control byte", `Basic ${Buffer.from("alice:pw\u0001x").toString("base64")}`],
    ["invalid UTF-8", `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString("base64")}`],
    ["missing payload", "Basic"],
  ])("malformed Basic (%s): 400 invalid_request, no verification spent", async (_name, header) => {
    await using gate = await startUserGate();
    const before = gate.verifications();
    const response = await fetch(`${gate.url}/secure-data`, { headers: { Authorization: header } });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: "invalid_request" });
    expect(gate.verifications()).toBe(before);
  });

  test("UTF-8 usernames and passwords survive the round trip (charset=UTF-8)", async () => {
    await using gate = await startUserGate();
    const password = trackSecret("pässwörd-ünïcode-✓");
    await gate.store.insertUser({ username: "jose", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
    const response = await fetch(`${gate.url}/secure-data`, { headers: { Authorization: basic("jose", password) } });
    expect(response.status).toBe(200);
  });

  test("Basic is not accepted for WebSocket upgrades (tokens only)", async () => {
    await using gate = await startUserGate();
    const probe = new WsProbe(`ws://127.0.0.1:${gate.port}/ws`, { headers: new Headers({ Authorization: basic("alice", PASSWORD) }) });
    expect(await probe.opened).toBe(false);
  });
});

describe("bounded password verification", () => {
  test("a burst beyond the queue gets 503 + Retry-After, never a 500, and token requests are not held up", async () => {
    await using gate = await startUserGate({ concurrency: 1, queueLimit: 2 });
    const burst = Array.from({ length: 10 }, () =>
      fetch(`${gate.url}/secure-data`, { headers: { Authorization: basic("alice", PASSWORD) } }).then(async (response) => ({
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        finished: performance.now(),
      })),
    );
    // A token request sent while the burst is queued must be answered before the burst drains.
    await Bun.sleep(20);
    const tokenResponse = await fetch(`${gate.url}/secure-data`, { headers: { "X-Auth-Token": gate.token } });
    const tokenFinished = performance.now();
    expect(tokenResponse.status).toBe(200);
    const results = await Promise.all(burst);
    const statuses = results.map((result) => result.status).sort();
    // One client holds one running and one queued verification at most (fair shares of the queue).
    expect(statuses.filter((status) => status === 200).length).toBe(2);
    expect(statuses.filter((status) => status === 503).length).toBe(8);
    expect(results.filter((result) => result.status === 503).every((result) => result.retryAfter === "1")).toBe(true);
    expect(tokenFinished).toBeLessThan(Math.max(...results.map((result) => result.finished)));
  });
});

describe("raw bytes", () => {
  test("a Basic header sent twice is refused as malformed", async () => {
    await using gate = await startUserGate();
    const header = basic("alice", PASSWORD);
    const response = await rawRequest(
      gate.port,
      `GET /secure-data HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: ${header}\r\nAuthorization: ${header}\r\n\r\n`,
    );
    expect(response.status).toBe(400);
  });
});

/**
 * One password, three spellings: composed (NFC), decomposed (NFD, as macOS and some keyboards
 * type it) and as typed with astral-plane characters, one of them (U+1D15E) excluded from
 * composition, so even NFC decomposes it. Servers NFC-normalize what they receive (RFC 8265
 * OpaqueString), so the CLI must store the same form, or some spellings can never sign in.
 */
const WORDS = "Crème brûlée 🔐 \u{1D15E} naïve";
const SPELLINGS = {
  nfc: trackSecret(WORDS.normalize("NFC")),
  nfd: trackSecret(WORDS.normalize("NFD")),
  astral: trackSecret(WORDS),
} as const;
type Spelling = keyof typeof SPELLINGS;

async function signInEveryWay(url: string, username: string): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  for (const [name, password] of Object.entries(SPELLINGS)) {
    statuses[`basic ${name}`] = (await curl(["-u", `${username}:${password}`, `${url}/secure-data`])).status;
    const grant = await curl([
      "-d",
      "grant_type=password",
      "-d",
      `username=${username}`,
      "--data-urlencode",
      `password=${password}`,
      `${url}/auth/token`,
    ]);
    if (grant.status === 200) {
      const body = JSON.parse(grant.body) as { access_token: string; refresh_token: string };
      trackSecret(body.access_token);
      trackSecret(body.refresh_token);
    }
    statuses[`grant ${name}`] = grant.status;
  }
  return statuses;
}

const ALL_ACCEPTED = Object.fromEntries(
  Object.keys(SPELLINGS).flatMap((name) => [
    [`basic ${name}`, 200],
    [`grant ${name}`, 200],
  ]),
);

describe("passwords set by the CLI in any Unicode spelling", () => {
  test("the three spellings are different strings of one password", () => {
    expect(new Set(Object.values(SPELLINGS)).size).toBe(3);
    expect(new Set(Object.values(SPELLINGS).map((password) => password.normalize("NFC"))).size).toBe(1);
  });

  test.each(Object.keys(SPELLINGS) as Spelling[])(
    "set as %s (users add, stdin): curl -u and the password grant accept every spelling",
    async (spelling) => {
      using dir = makeTempDir();
      const server = new ServerProcess(
        { AUTH_TOKEN: newSecret(), BASIC_AUTH: "true", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path },
        dir.path,
      );
      try {
        const url = `http://127.0.0.1:${await server.port()}`;
        const added = await runCliProcess(["users", "add", "rene", "--role", "viewer"], {
          env: { DATA_DIR: dir.path },
          input: `${SPELLINGS[spelling]}\n`,
        });
        expect(added.code).toBe(0);
        expect(await signInEveryWay(url, "rene")).toEqual(ALL_ACCEPTED);
        // Normalizing must not make the check lenient: the same words without their accents fail.
        expect((await curl(["-u", `rene:${"Creme brulee 🔐 \u{1D15E} naive"}`, `${url}/secure-data`])).status).toBe(401);
      } finally {
        expect(await server.stop()).toBe(0);
      }
    },
  );

  test("set as nfd by users passwd: every spelling signs in, the old password no longer does", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess(
      { AUTH_TOKEN: newSecret(), BASIC_AUTH: "true", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path },
      dir.path,
    );
    try {
      const url = `http://127.0.0.1:${await server.port()}`;
      const env = { DATA_DIR: dir.path };
      expect((await runCliProcess(["users", "add", "rene", "--role", "viewer"], { env, input: `${PASSWORD}\n` })).code).toBe(0);
      expect((await runCliProcess(["users", "passwd", "rene"], { env, input: `${SPELLINGS.nfd}\n` })).code).toBe(0);
      expect(await signInEveryWay(url, "rene")).toEqual(ALL_ACCEPTED);
      expect((await curl(["-u", `rene:${PASSWORD}`, `${url}/secure-data`])).status).toBe(401);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

test("no password, token or Authorization value reached any server output", () => {
  expectNoSecretsInOutput();
});
