/**
 * Device logins (RFC 8628) in the store, on both engines, with two instances on one database as
 * two servers would run: what one starts the other finds; a miss is counted against every
 * waiting login; slow_down is decided in one transaction; an approved login is spent once, with
 * its credential, however many polls race for it; limits and forgetting.
 */
import { describe, expect, test } from "bun:test";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import type { DeviceCredentialRecord, DeviceLimits, NewDeviceAuthorization, Store } from "../../auth/store/store.ts";
import { engines } from "./engines.ts";

const MAX_FAILURES = 3;
const LIMITS: DeviceLimits = { perAddress: 2, total: 3, keepEndedMs: 60_000, maxFailures: MAX_FAILURES };

let serial = 0;
function newLogin(overrides: Partial<NewDeviceAuthorization> = {}): NewDeviceAuthorization & { deviceCode: string; userCode: string } {
  serial++;
  const deviceCode = `device-code-${serial}`;
  const userCode = `USERCODE${serial}`;
  return {
    deviceCode,
    userCode,
    id: serial.toString(16).padStart(16, "0"),
    deviceCodeHash: digestToken(deviceCode),
    userCodeHash: digestToken(userCode),
    clientId: "tv-box",
    scopes: ["data:read", "ws:connect"],
    clientAddress: "192.168.1.7",
    createdAt: 1_000,
    expiresAt: 601_000,
    intervalSeconds: 5,
    ...overrides,
  };
}

function keyCredential(scopes: readonly string[]): DeviceCredentialRecord {
  const key = generateApiKey();
  return {
    kind: "key",
    key: { id: key.id, name: "tv-box (device login)", scopes, secretHash: digestToken(key.secret), createdAt: 2_000, expiresAt: null },
  };
}

async function approved(store: Store, login: NewDeviceAuthorization) {
  const decision = { kind: "approve", scopes: ["data:read"], approver: "user:vi", at: 2_000 } as const;
  return store.decideDeviceAuthorization(login.id, decision, MAX_FAILURES);
}

describe.each(engines)("device logins on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("started on one instance, found by its user code on the other; a miss counts against every waiting login", async () => {
    await using db = await engine(2);
    const [first, second] = [db.stores[0]!, db.stores[1]!];
    const login = newLogin();
    const other = newLogin({ clientAddress: "192.168.1.8" });
    expect(await first.startDeviceAuthorization(login, LIMITS)).toBe("started");
    expect(await first.startDeviceAuthorization(other, LIMITS)).toBe("started");
    const found = await second.findDeviceAuthorization(login.userCodeHash, 2_000, MAX_FAILURES);
    expect(found).toMatchObject({ id: login.id, clientId: "tv-box", scopes: ["data:read", "ws:connect"], status: "pending", failures: 0 });
    expect(found).not.toHaveProperty("deviceCodeHash");
    for (let miss = 0; miss < MAX_FAILURES; miss++) {
      expect(await second.findDeviceAuthorization(digestToken("NOSUCHCD"), 2_000, MAX_FAILURES)).toBeUndefined();
    }
    // Burnt: neither is found any more, and the device is told its code expired.
    expect(await first.findDeviceAuthorization(login.userCodeHash, 2_000, MAX_FAILURES)).toBeUndefined();
    expect(await first.findDeviceAuthorization(other.userCodeHash, 2_000, MAX_FAILURES)).toBeUndefined();
    expect(await first.pollDeviceAuthorization(login.deviceCodeHash, "tv-box", 2_000, MAX_FAILURES)).toEqual({ kind: "expired" });
  });

  it("polls: pending, slow_down within the interval (5 s more each time), wrong client, missing, expired", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const login = newLogin();
    await store.startDeviceAuthorization(login, LIMITS);
    const poll = (at: number, clientId = "tv-box") => store.pollDeviceAuthorization(login.deviceCodeHash, clientId, at, MAX_FAILURES);
    expect(await poll(2_000)).toEqual({ kind: "pending" });
    expect(await poll(6_999)).toEqual({ kind: "slow_down", intervalSeconds: 10 });
    expect(await poll(16_000)).toEqual({ kind: "slow_down", intervalSeconds: 15 });
    expect(await poll(31_000)).toEqual({ kind: "pending" });
    expect(await poll(31_000, "fridge")).toEqual({ kind: "wrong_client" });
    expect(await store.pollDeviceAuthorization(digestToken("nobody's"), "tv-box", 31_000, MAX_FAILURES)).toEqual({ kind: "missing" });
    expect(await poll(601_000)).toEqual({ kind: "expired" });
  });

  it("decided once; denied stays denied; an approved login is spent once, with its key, by one of many racing polls", async () => {
    await using db = await engine(2);
    const [first, second] = [db.stores[0]!, db.stores[1]!];
    const denied = newLogin();
    await first.startDeviceAuthorization(denied, LIMITS);
    expect(await first.decideDeviceAuthorization(denied.id, { kind: "deny", approver: "user:vi", at: 2_000 }, MAX_FAILURES)).toMatchObject({
      status: "denied",
      approver: "user:vi",
    });
    expect(await approved(second, denied)).toBeUndefined();
    expect(await second.pollDeviceAuthorization(denied.deviceCodeHash, "tv-box", 3_000, MAX_FAILURES)).toEqual({ kind: "denied" });

    const login = newLogin();
    await first.startDeviceAuthorization(login, LIMITS);
    expect(await approved(first, login)).toMatchObject({ status: "approved", approvedScopes: ["data:read"], decidedAt: 2_000 });
    const outcome = await second.pollDeviceAuthorization(login.deviceCodeHash, "tv-box", 3_000, MAX_FAILURES);
    expect(outcome).toMatchObject({ kind: "approved", record: { id: login.id, approvedScopes: ["data:read"] } });
    const before = await first.changeMarker();
    const credentials = [keyCredential(["data:read"]), keyCredential(["data:read"]), keyCredential(["data:read"])];
    const spent = await Promise.all(
      credentials.map((credential, index) => db.stores[index % 2]!.redeemDeviceAuthorization(login.id, 3_000, credential)),
    );
    expect(spent.filter(Boolean)).toHaveLength(1);
    const keys = await first.listKeys();
    expect(keys.filter((key) => key.name === "tv-box (device login)")).toHaveLength(1);
    // A new key is a change the other instances reload for.
    expect(await first.changeMarker()).not.toBe(before);
    expect(await first.pollDeviceAuthorization(login.deviceCodeHash, "tv-box", 4_000, MAX_FAILURES)).toEqual({ kind: "consumed" });
  });

  it("an approved login past its end is not spent", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const login = newLogin();
    await store.startDeviceAuthorization(login, LIMITS);
    await approved(store, login);
    expect(await store.redeemDeviceAuthorization(login.id, 601_000, keyCredential(["data:read"]))).toBe(false);
    expect(await store.listKeys()).toEqual([]);
  });

  it("a login burnt by wrong user codes no longer fills the limits: its address may start again", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    for (let i = 0; i < 2; i++) expect(await store.startDeviceAuthorization(newLogin(), LIMITS)).toBe("started");
    expect(await store.startDeviceAuthorization(newLogin(), LIMITS)).toBe("busy_address");
    for (let miss = 0; miss < MAX_FAILURES; miss++)
      expect(await store.findDeviceAuthorization(digestToken(`no such code ${miss}`), 2_000, MAX_FAILURES)).toBeUndefined();
    expect(await store.startDeviceAuthorization(newLogin(), LIMITS)).toBe("started");
  });

  it("counts a global IPv6 address as its /64, a LAN one by itself", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const limits = { ...LIMITS, total: 10 };
    for (const clientAddress of ["2001:db8:1:2::1", "2001:db8:1:2:0:0:0:2"])
      expect(await store.startDeviceAuthorization(newLogin({ clientAddress }), limits)).toBe("started");
    expect(await store.startDeviceAuthorization(newLogin({ clientAddress: "2001:db8:1:2:ffff::3" }), limits)).toBe("busy_address");
    for (const clientAddress of ["fd00::1", "fd00::2", "fd00::3"])
      expect(await store.startDeviceAuthorization(newLogin({ clientAddress }), limits)).toBe("started");
  });

  it("limits per address and in all; a user code in use is a collision; ended logins are forgotten after a while", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const [a, b] = [newLogin(), newLogin()];
    expect(await store.startDeviceAuthorization(a, LIMITS)).toBe("started");
    expect(await store.startDeviceAuthorization(b, LIMITS)).toBe("started");
    const sameCode = newLogin({ clientAddress: "10.0.0.11", userCodeHash: a.userCodeHash });
    expect(await store.startDeviceAuthorization(sameCode, LIMITS)).toBe("collision");
    expect(await store.startDeviceAuthorization(newLogin(), LIMITS)).toBe("busy_address");
    expect(await store.startDeviceAuthorization(newLogin({ clientAddress: "10.0.0.9" }), LIMITS)).toBe("started");
    expect(await store.startDeviceAuthorization(newLogin({ clientAddress: "10.0.0.10" }), LIMITS)).toBe("busy");
    // Long after the first ones ended (601 s + the 60 s kept), they are gone and their code is free again.
    const later = newLogin({ createdAt: 700_000, expiresAt: 1_300_000, userCodeHash: a.userCodeHash });
    expect(await store.startDeviceAuthorization(later, LIMITS)).toBe("started");
    expect(await store.pollDeviceAuthorization(b.deviceCodeHash, "tv-box", 700_000, MAX_FAILURES)).toEqual({ kind: "missing" });
  });
});
