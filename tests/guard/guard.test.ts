/**
 * The brute-force guard: counting, bans, escalation, exemptions, trusted proxies, key-id bans
 * that never lock out the genuine key, and the CLI lifting a ban on a running server.
 */
import { insertApiKey } from "../support/keys.ts";
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { clientAddress, createAddressList, guardBucketOf, normalizeAddress } from "../../auth/core/addresses.ts";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { createGuard, createMemoryAttemptStore, DEFAULT_LIMITS } from "../../auth/guard/guard.ts";
import { isBanSubject } from "../../auth/guard/refusals.ts";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { openDataDirStore } from "../support/stores.ts";
import { makeTempDir, ROOT, startTestApp, WsProbe, type TestApp, clockEnvironment } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

describe("addresses", () => {
  const proxies = createAddressList(["10.0.0.2", "192.168.50.0/24"]);
  // undefined: a trusted proxy sent something that names no client; the gate answers 400, never
  // taking the client for the proxy (which would make it loopback on a one-box setup).
  test.each<[string, string | null, string | undefined]>([
    ["203.0.113.9", null, "203.0.113.9"],
    ["203.0.113.9", "198.51.100.1", "203.0.113.9"],
    ["203.0.113.9", "garbage", "203.0.113.9"],
    ["10.0.0.2", "198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", "198.51.100.1, 192.168.50.7", "198.51.100.1"],
    ["10.0.0.2", "192.168.50.9, 192.168.50.7", "192.168.50.9"],
    ["10.0.0.2", "198.51.100.1:5678", "198.51.100.1"],
    ["10.0.0.2", "[2001:db8::7]", "2001:db8::7"],
    ["10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"],
    ["10.0.0.2", "2001:DB8::7", "2001:db8::7"],
    ["::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", "not-an-ip", undefined],
    ["10.0.0.2", "garbage", undefined],
    ["10.0.0.2", "", undefined],
    ["10.0.0.2", "198.51.100.1, ", undefined],
    ["10.0.0.2", "[2001:db8::7", undefined],
    ["10.0.0.2", "1.2.3.4:port", undefined],
    ["10.0.0.2", "999.1.1.1", undefined],
    ["10.0.0.2", "2001:db8::1::2", undefined],
    ["10.0.0.2", "unknown", undefined],
  ])("peer %s, X-Forwarded-For %p → %p", (peer, forwardedFor, client) => {
    expect(clientAddress(peer, { forwardedFor, forwarded: null }, proxies)).toBe(client);
  });

  test.each<[string, string | null, string | null, string | undefined]>([
    ["10.0.0.2", null, "for=198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", null, "for=198.51.100.1;proto=https;by=10.0.0.2", "198.51.100.1"],
    ["10.0.0.2", null, 'for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"],
    ["10.0.0.2", null, "for=6.6.6.6, for=198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", null, 'For="198.51.100.1:80"', "198.51.100.1"],
    ["10.0.0.2", "198.51.100.1", "for=198.51.100.1", "198.51.100.1"],
    ["10.0.0.2", null, "for=unknown", undefined],
    ["10.0.0.2", null, "for=_hidden", undefined],
    ["10.0.0.2", null, "proto=https", undefined],
    ["10.0.0.2", null, "for=1.2.3.4;for=5.6.7.8", undefined],
    ["10.0.0.2", null, 'for="1.2.3.4', undefined],
    ["10.0.0.2", "198.51.100.1", "for=198.51.100.2", undefined],
    ["203.0.113.9", null, "for=garbage", "203.0.113.9"],
  ])("peer %s, X-Forwarded-For %p, Forwarded %p → %p", (peer, forwardedFor, forwarded, client) => {
    expect(clientAddress(peer, { forwardedFor, forwarded }, proxies)).toBe(client);
  });

  test.each([
    ["198.51.100.7", "198.51.100.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::99", "2001:db8:1:2::/64"],
    ["::1", "::1"],
    ["fe80::1", "fe80::1"],
    ["fe80::a8bb:ccff:fedd:eeff", "fe80::a8bb:ccff:fedd:eeff"],
    ["fd12:3456:789a:1::5", "fd12:3456:789a:1::5"],
    ["::ffff:198.51.100.7", "198.51.100.7"],
  ])("guard bucket of %s is %s (IPv6 per /64)", (address, bucket) => {
    expect(guardBucketOf(address)).toBe(bucket);
  });

  test("CIDR and exact matching, IPv4-mapped IPv6 normalised", () => {
    expect(proxies.has("192.168.50.200")).toBe(true);
    expect(proxies.has("192.168.51.1")).toBe(false);
    expect(normalizeAddress("::FFFF:1.2.3.4")).toBe("1.2.3.4");
  });
});

describe("ban subjects a person may name to lift (bans clear, the admin API)", () => {
  test.each([
    ["addr:192.168.1.50", true],
    ["addr:2001:db8:1:2::/64", true],
    ["key:3f9a0c12be45", true],
    ["user:alice", true],
    ["codes:user:alice", true],
    ["codes:key:3f9a0c12be45", true],
    ["codes:addr:192.168.1.50", false],
    ["codes:codes:user:alice", false],
    ["codes:", false],
    ["codes:key:tg_3f9a0c12be45_secret", false],
    ["user:", false],
    ["host:alice", false],
  ])("%p → %p", (subject, expected) => {
    expect(isBanSubject(subject)).toBe(expected);
  });
});

describe("guard (unit, real SQLite ban store)", () => {
  test("10 failures in the window ban; the ban grows on repeat and ends by itself", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    let now = 1_000_000;
    const events: string[] = [];
    const guard = createGuard({
      attempts: createMemoryAttemptStore(),
      bans: store,
      exempt: () => false,
      now: () => now,
      onEvent: (event) => events.push(event.event),
    });
    for (let i = 0; i < 9; i++) await guard.recordFailure("192.0.2.1");
    expect(guard.retryAfter("192.0.2.1")).toBe(0);
    // In force within the failure that crosses the limit, before the store has written it.
    const written = guard.recordFailure("192.0.2.1");
    expect(guard.retryAfter("192.0.2.1")).toBe(60);
    await written;
    now += 61_000;
    expect(guard.retryAfter("192.0.2.1")).toBe(0);
    for (let i = 0; i < 10; i++) await guard.recordFailure("192.0.2.1");
    expect(guard.retryAfter("192.0.2.1")).toBe(120);
    expect(events).toEqual(["ban.started", "ban.ended", "ban.started"]);
    await store.close();
  });

  test("failures spread beyond the window never add up to a ban", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    let now = 0;
    const guard = createGuard({ attempts: createMemoryAttemptStore(), bans: store, exempt: () => false, now: () => now });
    for (let i = 0; i < 30; i++) {
      guard.recordFailure("192.0.2.2");
      now += 7_000;
    }
    expect(guard.retryAfter("192.0.2.2")).toBe(0);
    expect(guard.active).toBe(false);
    await store.close();
  });

  test("a sliding window: a burst across a window boundary is counted in full (no 17 guesses in 1.5 s)", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    let now = 1_000_000;
    const guard = createGuard({ attempts: createMemoryAttemptStore(), bans: store, exempt: () => false, now: () => now });
    guard.recordFailure("192.0.2.3");
    now += 59_000;
    for (let i = 0; i < 8; i++) guard.recordFailure("192.0.2.3");
    now += 1_500;
    // A fixed window would have restarted here, after 9 failures; the sliding one still holds 8 of them.
    for (let i = 0; i < 2; i++) guard.recordFailure("192.0.2.3");
    expect(guard.retryAfter("192.0.2.3")).toBeGreaterThan(0);
    await store.close();
  });

  test("an account still guessed when its ban ends is banned again, longer (the count is past the limit, not at it)", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    let now = 9_000_000;
    const guard = createGuard({ attempts: createMemoryAttemptStore(), bans: store, exempt: () => false, now: () => now });
    const guess = async (count: number) => {
      for (let i = 0; i < count; i++) {
        await guard.recordFailure(`203.0.113.${(i % 200) + 1}`, "key:0123456789ab");
        now += 100;
      }
    };
    await guess(10);
    expect(guard.retryAfter("198.51.100.1", "key:0123456789ab")).toBe(60);
    // Guessing goes on, one every 5 s, through the ban and past its end.
    for (let i = 0; i < 14; i++) {
      now += 5_000;
      await guard.recordFailure("203.0.113.250", "key:0123456789ab");
    }
    expect(guard.retryAfter("198.51.100.1", "key:0123456789ab")).toBeGreaterThan(60);
    await store.close();
  });

  test("IPv6 clients are counted per /64: a fresh address for every guess does not help", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    const guard = createGuard({ attempts: createMemoryAttemptStore(), bans: store, exempt: () => false, now: () => 5_000_000 });
    for (let i = 0; i < 10; i++) guard.recordFailure(`2001:db8:7:7::${(i + 1).toString(16)}`);
    expect(guard.retryAfter("2001:db8:7:7:ffff::1")).toBe(60);
    expect(guard.retryAfter("2001:db8:7:8::1")).toBe(0);
    await Bun.sleep(50);
    expect((await store.listBans(5_000_000)).map((ban) => ban.subject)).toEqual(["addr:2001:db8:7:7::/64"]);
    await store.close();
  });

  test("exempt addresses are never counted", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    const guard = createGuard({
      attempts: createMemoryAttemptStore(),
      bans: store,
      exempt: (address) => address === "127.0.0.1",
      now: Date.now,
    });
    for (let i = 0; i < 50; i++) guard.recordFailure("127.0.0.1");
    expect(await store.listBans(Date.now())).toEqual([]);
    expect(DEFAULT_LIMITS.maxFailures).toBe(10);
    await store.close();
  });
});

const PROXIED = { BAN_EXEMPT: "", TRUSTED_PROXIES: "127.0.0.1" };
const from = (address: string, headers: Record<string, string> = {}) => ({ headers: { "X-Forwarded-For": address, ...headers } });

async function failTimes(app: TestApp, address: string, count: number) {
  for (let i = 0; i < count; i++) {
    await fetch(`${app.http}/secure-data`, from(address, { "X-Auth-Token": trackSecret(generateApiKey().token) }));
  }
}

describe("on the wire", () => {
  test("ten unknown tokens from one address: 429 with Retry-After for HTTP, WebSocket and token endpoint alike", async () => {
    await using app = await startTestApp(PROXIED);
    await failTimes(app, "198.51.100.7", 9);
    const tenth = await fetch(`${app.http}/secure-data`, from("198.51.100.7", { "X-Auth-Token": trackSecret(generateApiKey().token) }));
    expect(tenth.status).toBe(429);
    expect(tenth.headers.get("retry-after")).toBe("60");
    expect(await tenth.json()).toMatchObject({ code: "too_many_requests" });

    // Even the right token is refused while the address is banned: no oracle for the guesser.
    const valid = await fetch(`${app.http}/secure-data`, from("198.51.100.7", { "X-Auth-Token": app.token }));
    expect(valid.status).toBe(429);
    const ws = new WsProbe(`${app.ws}/ws?token=${app.token}`, { headers: new Headers({ "X-Forwarded-For": "198.51.100.7" }) });
    expect(await ws.opened).toBe(false);
    const token = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "X-Forwarded-For": "198.51.100.7", "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=password&username=a&password=b",
    });
    expect(token.status).toBe(429);

    // Another address is unaffected; /healthz stays reachable for the banned one.
    expect((await fetch(`${app.http}/secure-data`, from("198.51.100.8", { "X-Auth-Token": app.token }))).status).toBe(200);
    expect((await fetch(`${app.http}/healthz`, from("198.51.100.7"))).status).toBe(200);
    expect(app.audit.some((line) => line.includes(`"audit":"ban.started"`) && line.includes("addr:198.51.100.7"))).toBe(true);
  });

  test("revoked keys and expired tokens get their 401 but never count toward a ban", async () => {
    await using app = await startTestApp(PROXIED);
    const key = await insertApiKey(app.store, { name: "old lamp", scopes: ["data:read"] });
    await app.store.revokeKey(key.id, Date.now());
    await app.app.keyring.refresh();
    for (let i = 0; i < 15; i++) {
      const response = await fetch(`${app.http}/secure-data`, from("198.51.100.9", { "X-Auth-Token": key.token }));
      expect(response.status).toBe(401);
    }
    expect(await app.store.listBans(Date.now())).toEqual([]);
  });

  test("wrong passwords on the token endpoint count; the 10th answer is already 429", async () => {
    await using app = await startTestApp(PROXIED);
    await app.store.insertUser({
      username: "frank",
      passwordHash: await hashPassword(trackSecret("frank's real password")),
      roles: ["viewer"],
      createdAt: Date.now(),
    });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${app.http}/auth/token`, {
        method: "POST",
        // As a TLS-terminating proxy would forward it: passwords are refused over plain HTTP from the LAN.
        headers: { "X-Forwarded-For": "198.51.100.10", "X-Forwarded-Proto": "https", "content-type": "application/x-www-form-urlencoded" },
        body: "grant_type=password&username=frank&password=guess" + i,
      });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 9).every((status) => status === 400)).toBe(true);
    expect(statuses[9]).toBe(429);
  });

  test("a key id attacked from many addresses: wrong secrets get 429, the genuine key keeps working", async () => {
    await using app = await startTestApp(PROXIED);
    const key = await insertApiKey(app.store, { name: "sensor", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    const forged = () => trackSecret(`tg_${key.id}_${generateApiKey().secret}`);
    for (let i = 0; i < 10; i++) await fetch(`${app.http}/secure-data`, from(`203.0.113.${i + 1}`, { "X-Auth-Token": forged() }));
    const guess = await fetch(`${app.http}/secure-data`, from("203.0.113.99", { "X-Auth-Token": forged() }));
    expect(guess.status).toBe(429);
    const genuine = await fetch(`${app.http}/secure-data`, from("203.0.113.100", { "X-Auth-Token": key.token }));
    expect(genuine.status).toBe(200);
  });

  test("client secrets guessed over HTTP Basic count against the claimed key id too", async () => {
    await using app = await startTestApp(PROXIED);
    const key = await insertApiKey(app.store, { name: "svc", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    for (let i = 0; i < 10; i++) {
      const guess = trackSecret(`tg_${key.id}_${generateApiKey().secret}`);
      await fetch(`${app.http}/auth/token`, {
        method: "POST",
        headers: {
          "X-Forwarded-For": `203.0.113.${i + 1}`,
          "content-type": "application/x-www-form-urlencoded",
          Authorization: `Basic ${Buffer.from(`${key.id}:${guess}`).toString("base64")}`,
        },
        body: "grant_type=client_credentials",
      });
    }
    expect((await app.store.listBans(Date.now())).map((ban) => ban.subject)).toContain(`key:${key.id}`);
  });

  test("one account guessed from 20 addresses: the username is locked for passwords, its owner's refresh token and key keep working", async () => {
    await using app = await startTestApp({ ...PROXIED, BASIC_AUTH: "true" });
    const password = trackSecret("grace's real password");
    await app.store.insertUser({ username: "grace", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
    const grant = (address: string, secret: string) =>
      fetch(`${app.http}/auth/token`, {
        method: "POST",
        headers: { "X-Forwarded-For": address, "X-Forwarded-Proto": "https", "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username: "grace", password: secret }).toString(),
      });
    // Before the attack the owner signed in on her phone: a refresh token she keeps.
    const phone = (await (await grant("192.0.2.50", password)).json()) as { refresh_token: string; access_token: string };
    trackSecret(phone.refresh_token);
    trackSecret(phone.access_token);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await grant(`203.0.113.${i + 1}`, trackSecret(`guess number ${i}`))).status);
    expect(statuses.slice(0, 9).every((status) => status === 400)).toBe(true);
    expect(statuses.slice(9).every((status) => status === 429)).toBe(true);
    // Even the right password, from a new address, waits: the account is locked for password sign-in.
    expect((await grant("198.51.100.200", password)).status).toBe(429);
    const basic = await fetch(
      `${app.http}/secure-data`,
      from("198.51.100.201", {
        Authorization: `Basic ${Buffer.from(`grace:${password}`).toString("base64")}`,
        "X-Forwarded-Proto": "https",
      }),
    );
    expect(basic.status).toBe(429);
    // The owner's existing session goes on.
    const refreshed = await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "X-Forwarded-For": "192.0.2.50", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: phone.refresh_token }).toString(),
    });
    expect(refreshed.status).toBe(200);
    trackSecret(((await refreshed.json()) as { access_token: string }).access_token);
    expect((await fetch(`${app.http}/secure-data`, from("192.0.2.50", { Authorization: `Bearer ${phone.access_token}` }))).status).toBe(
      200,
    );
    expect((await app.store.listBans(Date.now())).map((ban) => ban.subject)).toContain("user:grace");
    expect(app.audit.some((line) => line.includes('"user":"grace"'))).toBe(true);
  });

  test.each([
    ["junk", { "X-Forwarded-For": "garbage" }],
    ["IP:port junk", { "X-Forwarded-For": "1.2.3.4:port" }],
    ["an unclosed bracket", { "X-Forwarded-For": "[2001:db8::7" }],
    ["Forwarded for=unknown", { Forwarded: "for=unknown" }],
    ["disagreeing headers", { "X-Forwarded-For": "198.51.100.1", Forwarded: "for=198.51.100.2" }],
  ])("a trusted proxy's unreadable forwarding header (%s) is a 400, never taken for loopback", async (_name, headers) => {
    await using app = await startTestApp({ TRUSTED_PROXIES: "127.0.0.1", BASIC_AUTH: "true" });
    await app.store.insertUser({
      username: "ivy",
      passwordHash: await hashPassword(trackSecret("ivy's real password")),
      roles: ["admin"],
      createdAt: Date.now(),
    });
    const basic = `Basic ${Buffer.from("ivy:ivy's real password").toString("base64")}`;
    const protectedAnswer = await fetch(`${app.http}/secure-data`, { headers: { ...headers, Authorization: basic } });
    expect(protectedAnswer.status).toBe(400);
    expect(await protectedAnswer.json()).toMatchObject({ code: "invalid_request", detail: expect.stringContaining("X-Forwarded-For") });
    const pairing = await fetch(`${app.http}/auth/pair`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
      body: "code=123456",
    });
    expect(pairing.status).toBe(400);
    expect(await pairing.json()).toMatchObject({ code: "invalid_request", detail: expect.stringContaining("X-Forwarded-For") });
  });

  test.each([
    ["198.51.100.1:5678", "198.51.100.1"],
    ["[2001:db8::7]:443", "2001:db8::7"],
  ])("the common forms of X-Forwarded-For (%s) name the client", async (header, client) => {
    await using app = await startTestApp(PROXIED);
    await failTimes(app, header, 10);
    expect((await app.store.listBans(Date.now())).map((ban) => ban.subject)).toEqual([
      `addr:${client.includes(":") ? "2001:db8:0:0::/64" : client}`,
    ]);
  });

  test("X-Forwarded-For from an untrusted peer is ignored: the peer itself is counted", async () => {
    await using app = await startTestApp({ BAN_EXEMPT: "" });
    for (let i = 0; i < 10; i++) {
      await fetch(`${app.http}/secure-data`, from(`198.51.100.${i + 20}`, { "X-Auth-Token": trackSecret(generateApiKey().token) }));
    }
    expect((await app.store.listBans(Date.now())).map((ban) => ban.subject)).toEqual(["addr:127.0.0.1"]);
  });

  test("loopback is exempt by default", async () => {
    await using app = await startTestApp();
    for (let i = 0; i < 12; i++)
      await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": trackSecret(generateApiKey().token) } });
    expect((await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": app.token } })).status).toBe(200);
  });

  test("cli bans list|clear: lists the ban and lifts it on the running server", async () => {
    await using app = await startTestApp(PROXIED);
    await failTimes(app, "198.51.100.30", 10);
    const cli = async (...args: string[]) => {
      const proc = Bun.spawn([process.execPath, "run", join(ROOT, "cli.ts"), ...args], {
        env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), DATA_DIR: app.dataDir },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      return { out, code };
    };
    const listed = await cli("bans", "list", "--json");
    expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ subject: "addr:198.51.100.30", level: 1 })]);
    expect((await cli("bans", "clear", "addr:198.51.100.30")).code).toBe(0);
    await Bun.sleep(300);
    expect((await fetch(`${app.http}/secure-data`, from("198.51.100.30", { "X-Auth-Token": app.token }))).status).toBe(200);
    expect((await cli("bans", "clear", "addr:198.51.100.30")).code).toBe(3);
    // The account and IPv6 /64 subjects the guard writes can be named too.
    await app.store.startBan("user:grace", Date.now(), 60_000, 3_600_000, 86_400_000);
    await app.store.startBan("addr:2001:db8:7:7::/64", Date.now(), 60_000, 3_600_000, 86_400_000);
    expect((await cli("bans", "clear", "user:grace")).code).toBe(0);
    expect((await cli("bans", "clear", "addr:2001:db8:7:7::/64")).code).toBe(0);
    expect((await cli("bans", "clear", "user:no such name")).code).toBe(2);
  });
});

test("no secret reached any server output", () => {
  expectNoSecretsInOutput();
});
