/**
 * API keys through the real gate: a real SQLite store in a temp dir, a second connection playing
 * the CLI, real HTTP and WebSocket clients. Expiry is driven with setSystemTime.
 */
import { insertApiKey } from "../support/keys.ts";
import { GateError } from "../../auth/core/errors.ts";
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { createKeyring, type Keyring } from "../../auth/authn/keyring.ts";
import { startListener } from "../../auth/http/listener.ts";
import { createLogger } from "../../auth/core/log.ts";
import { createSeedRoutes } from "../../auth/http/routes.ts";
import type { KeyStore } from "../../auth/store/store.ts";
import { openDataDirStore } from "../support/stores.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { makeTempDir, WsProbe } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

afterEach(() => setSystemTime());

interface KeyedGate extends AsyncDisposable {
  readonly http: string;
  readonly ws: string;
  readonly keyring: Keyring;
  /** A second connection to the same database, as the CLI would have. */
  readonly cli: KeyStore;
  readonly lines: string[];
  readonly bootstrap: string;
  addKey(scopes: string[], expiresAt?: number | null): Promise<{ token: string; id: string }>;
}

async function startKeyedGate(): Promise<KeyedGate> {
  const dir = makeTempDir();
  const store = await openDataDirStore(dir.path);
  const cli = await openDataDirStore(dir.path);
  const bootstrap = newSecret();
  const keyring = await createKeyring({ store, bootstrapDigest: digestToken(bootstrap), now: Date.now });
  const lines: string[] = [];
  const logger = createLogger({
    now: Date.now,
    level: "debug",
    format: "json",
    sink: { write: (line) => (lines.push(line), captureOutput(line)) },
  });
  const listener = startListener({
    now: Date.now,
    port: 0,
    host: "127.0.0.1",
    authenticate: keyring.authenticate,
    recordUse: keyring.recordUse,
    revalidate: keyring.revalidate,
    routes: createSeedRoutes(),
    logger,
    accessLog: "all",
    wsMaxPayload: 65536,
    wsIdleTimeout: 120,
    httpIdleTimeout: 10,
    shutdownTimeout: 2,
  });
  await keyring.start(() => listener.revalidateSockets(), 50, 60_000);
  const port = listener.server.port!;
  return {
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    keyring,
    cli,
    lines,
    bootstrap,
    async addKey(scopes, expiresAt = null) {
      const key = generateApiKey();
      trackSecret(key.token);
      // Named after its own id, so it is built here rather than by insertApiKey.
      await cli.insertKey({
        id: key.id,
        name: `key ${key.id}`,
        scopes,
        secretHash: digestToken(key.secret),
        createdAt: Date.now(),
        expiresAt,
      });
      await keyring.refresh();
      return { token: key.token, id: key.id };
    },
    async [Symbol.asyncDispose]() {
      await keyring.stop();
      await listener.shutdown();
      await store.close();
      await cli.close();
      dir[Symbol.dispose]();
    },
  };
}

const get = (gate: KeyedGate, path: string, token: string) => fetch(`${gate.http}${path}`, { headers: { "X-Auth-Token": token } });

describe("authentication with API keys", () => {
  test("a key with data:read reads /secure-data; whoami describes it without the secret", async () => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(["data:read"]);
    expect((await get(gate, "/secure-data", key.token)).status).toBe(200);
    const whoami = await get(gate, "/auth/whoami", key.token);
    const body = (await whoami.json()) as Record<string, unknown>;
    expect(body).toEqual({ id: key.id, kind: "key", name: `key ${key.id}`, scopes: ["data:read"], expires_at: null });
    expect(JSON.stringify(body)).not.toContain(key.token.slice(16));
  });

  test("a key another process created a moment ago works on its very first request", async () => {
    await using gate = await startKeyedGate();
    const key = await insertApiKey(gate.cli, { name: "fresh", scopes: ["data:read"] });
    expect((await get(gate, "/secure-data", key.token)).status).toBe(200);
  });

  test("the bootstrap token stays the admin credential with every scope", async () => {
    await using gate = await startKeyedGate();
    const whoami = (await (await get(gate, "/auth/whoami", gate.bootstrap)).json()) as { kind: string; scopes: string[] };
    expect(whoami).toMatchObject({ kind: "bootstrap", scopes: ["*"] });
  });

  test.each<[string, string[], string, number]>([
    ["ws-only key on /secure-data", ["ws:connect"], "data:read", 403],
    ["data-only key on /secure-data", ["data:read"], "data:read", 200],
  ])("%s", async (_name, scopes, needed, status) => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(scopes);
    const response = await get(gate, "/secure-data", key.token);
    expect(response.status).toBe(status);
    if (status === 403) {
      expect(response.headers.get("www-authenticate")).toContain(`error="insufficient_scope"`);
      expect(response.headers.get("www-authenticate")).toContain(`scope="${needed}"`);
    }
  });

  test("a data-only key cannot open /ws: 403 before the upgrade", async () => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(["data:read"]);
    const probe = new WsProbe(`${gate.ws}/ws?token=${key.token}`);
    expect(await probe.opened).toBe(false);
  });

  test("unknown key, wrong secret for a known id: plain invalid_token", async () => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(["data:read"]);
    const forged = `${key.token.slice(0, 16)}${"A".repeat(43)}`;
    for (const token of [forged, trackSecret(generateApiKey().token)]) {
      const response = await get(gate, "/secure-data", token);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: "invalid_token", description: "The token is not valid" });
    }
  });

  test("revoked and expired keys say so, so a client can tell 'rotate me' from 'wrong'", async () => {
    await using gate = await startKeyedGate();
    const revoked = await gate.addKey(["data:read"]);
    await gate.cli.revokeKey(revoked.id, Date.now());
    await gate.keyring.refresh();
    const expiring = await gate.addKey(["data:read"], Date.now() + 60_000);
    expect((await get(gate, "/secure-data", expiring.token)).status).toBe(200);
    setSystemTime(new Date(Date.now() + 61_000));

    const r1 = await get(gate, "/secure-data", revoked.token);
    expect(r1.status).toBe(401);
    expect(r1.headers.get("www-authenticate")).toContain('error_description="The token has been revoked"');
    expect(await r1.json()).toMatchObject({ code: "invalid_token", description: "The token has been revoked" });
    const r2 = await get(gate, "/secure-data", expiring.token);
    expect(r2.status).toBe(401);
    expect(await r2.json()).toMatchObject({ code: "invalid_token", description: "The token has expired" });
  });

  test("last use (time and address) is recorded in batches, not per request", async () => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(["data:read"]);
    for (let i = 0; i < 5; i++) await get(gate, "/secure-data", key.token);
    expect((await gate.cli.getKey(key.id))?.lastUsedAt).toBeNull();
    gate.keyring.flushUsage();
    expect(await gate.cli.getKey(key.id)).toMatchObject({ lastUsedAddr: "127.0.0.1" });
    expect((await gate.cli.getKey(key.id))?.lastUsedAt).toBeGreaterThan(0);
  });
});

describe("reloads", () => {
  test("a usage flush is bookkeeping: it costs no reload anywhere; another process's revocation does", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    const cli = await openDataDirStore(dir.path);
    const key = await insertApiKey(cli, { name: "lamp", scopes: ["data:read"] });
    const keyring = await createKeyring({ store, bootstrapDigest: digestToken(newSecret()), now: Date.now });
    let reloads = 0;
    await keyring.start(() => (reloads += 1), 20, 60_000);
    const principal = keyring.authenticate(key.token);
    if (principal instanceof Promise || principal instanceof GateError) throw new Error("expected a key principal");
    keyring.recordUse(principal, () => "192.0.2.7");
    await keyring.flushUsage();
    await Bun.sleep(120);
    expect(reloads).toBe(0);
    expect((await cli.getKey(key.id))?.lastUsedAddr).toBe("192.0.2.7");
    await cli.revokeKey(key.id, Date.now());
    await Bun.sleep(120);
    expect(reloads).toBe(1);
    await keyring.stop();
    await store.close();
    await cli.close();
  });
});

describe("live revocation of open sockets", () => {
  test("revoking a key in another connection closes its sockets with 4403; other sockets stay open", async () => {
    await using gate = await startKeyedGate();
    const doomed = await gate.addKey(["ws:connect"]);
    const kept = await gate.addKey(["ws:connect"]);
    const victims = [0, 1].map(() => new WsProbe(`${gate.ws}/ws?token=${doomed.token}`));
    const survivor = new WsProbe(`${gate.ws}/ws?token=${kept.token}`);
    await Promise.all([...victims, survivor].map((probe) => probe.nextMessage(0)));

    const revokedAt = performance.now();
    await gate.cli.revokeKey(doomed.id, Date.now());
    const closes = await Promise.all(victims.map((probe) => probe.closed));
    const latency = performance.now() - revokedAt;
    expect(closes).toEqual([
      { code: 4403, reason: "The token has been revoked" },
      { code: 4403, reason: "The token has been revoked" },
    ]);
    expect(latency).toBeLessThan(1_000);
    survivor.socket.send("still here");
    expect(await survivor.nextMessage(1)).toBe("still here");
    survivor.socket.close();
    expect((await get(gate, "/secure-data", doomed.token)).status).toBe(401);
  });

  test("an expiring key's sockets are closed with 4401 when it expires", async () => {
    await using gate = await startKeyedGate();
    const key = await gate.addKey(["ws:connect"], Date.now() + 3_600_000);
    const probe = new WsProbe(`${gate.ws}/ws?token=${key.token}`);
    await probe.nextMessage(0);
    setSystemTime(new Date(Date.now() + 3_600_001));
    expect(await probe.closed).toEqual({ code: 4401, reason: "The token has expired" });
  });

  test("a rotation overlap keeps the old key's sockets open until it ends", async () => {
    await using gate = await startKeyedGate();
    const old = await gate.addKey(["ws:connect"]);
    const probe = new WsProbe(`${gate.ws}/ws?token=${old.token}`);
    await probe.nextMessage(0);
    const replacement = generateApiKey();
    trackSecret(replacement.token);
    await gate.cli.rotateKey(
      old.id,
      {
        id: replacement.id,
        name: "rotated",
        scopes: ["ws:connect"],
        secretHash: digestToken(replacement.secret),
        createdAt: Date.now(),
        expiresAt: null,
      },
      Date.now() + 60_000,
    );
    await Bun.sleep(400);
    probe.socket.send("during overlap");
    expect(await probe.nextMessage(1)).toBe("during overlap");
    setSystemTime(new Date(Date.now() + 60_001));
    expect((await probe.closed).code).toBe(4403);
  });

  test("bootstrap-token sockets are never revalidated away", async () => {
    await using gate = await startKeyedGate();
    const probe = new WsProbe(`${gate.ws}/ws?token=${gate.bootstrap}`);
    await probe.nextMessage(0);
    setSystemTime(new Date(Date.now() + 365 * 86_400_000));
    await Bun.sleep(400);
    probe.socket.send("ok");
    expect(await probe.nextMessage(1)).toBe("ok");
    probe.socket.close();
  });
});

test("no secret used in this file reached any server output", () => {
  expectNoSecretsInOutput();
});
