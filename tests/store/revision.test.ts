/**
 * Which writes other instances must hear of: every operation of the store, in one table, with
 * whether it moves the revision (sql-operations.ts: a `change` does, `bookkeeping` and reads do
 * not; a refresh replay and a successful pairing are changes, their other outcomes are not).
 */
import { describe, expect, test } from "bun:test";
import { generateSigningKey } from "../../auth/secrets/jwt.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import type { NewPasskey, NewRefreshToken, NewSession, Store } from "../../auth/store/store.ts";
import { engines, newKey } from "./engines.ts";

type Step = readonly [name: string, write: (store: Store) => Promise<unknown>, moves: boolean];

const PASSWORD_HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
const refreshToken = (id: string): NewRefreshToken => ({
  id,
  familyId: "fam",
  secretHash: digestToken(id),
  subject: "user:ann",
  scopes: ["data:read"],
  roles: ["viewer"],
  clientId: "tokengate",
  createdAt: 1_000,
  expiresAt: 99_000,
});

const session = (id: string): NewSession => ({
  id,
  secretHash: digestToken(id),
  subject: "user:ann",
  scopes: ["data:read"],
  roles: ["viewer"],
  method: "password",
  createdAt: 1_000,
  lastSeenAt: 1_000,
  expiresAt: 99_000,
  createdAddr: "10.0.0.1",
});
const passkey = (id: string): NewPasskey => ({
  id,
  username: "ann",
  publicKey: new Uint8Array([1, 2, 3]),
  counter: 0,
  transports: ["internal"],
  name: "laptop",
  createdAt: 1_000,
});

async function listSteps(): Promise<Step[]> {
  const paired = newKey({ scopes: ["*"] }).record;
  const old = newKey().record;
  const signing = [
    await generateSigningKey("EdDSA", 1_000),
    await generateSigningKey("EdDSA", 1_000),
    await generateSigningKey("EdDSA", 2_000),
  ] as const;
  return [
    ["issuePairingCode", (store) => store.issuePairingCode(digestToken("111111"), 1_000, 301_000), false],
    ["redeemPairingCode: wrong", (store) => store.redeemPairingCode(digestToken("222222"), 2_000, 5, paired), false],
    ["redeemPairingCode: paired", (store) => store.redeemPairingCode(digestToken("111111"), 2_000, 5, paired), true],
    [
      "getKey, listKeys, hasCredentials",
      (store) => Promise.all([store.getKey(paired.id), store.listKeys(), store.hasCredentials()]),
      false,
    ],
    ["recordUsage", (store) => store.recordUsage([{ id: paired.id, at: 3_000, addr: "10.0.0.1" }]), false],
    ["insertKey", (store) => store.insertKey(old), true],
    ["rotateKey", (store) => store.rotateKey(old.id, newKey({ createdAt: 2_000 }).record, 9_000), true],
    ["updateKey", (store) => store.updateKey(old.id, { name: "porch", scopes: ["data:read"], expiresAt: null }), true],
    ["revokeKey", (store) => store.revokeKey(old.id, 4_000), true],
    [
      "insertUser",
      (store) => store.insertUser({ username: "ann", passwordHash: PASSWORD_HASH, roles: ["viewer"], createdAt: 1_000 }),
      true,
    ],
    ["setPassword", (store) => store.setPassword("ann", PASSWORD_HASH, 2_000), true],
    ["setDisabled", (store) => store.setDisabled("ann", 3_000, 3_000), true],
    ["setRoles", (store) => store.setRoles("ann", ["admin"], 3_500), true],
    ["setRoles: no such user", (store) => store.setRoles("nobody", ["admin"], 3_500), false],
    ["insertRefreshToken", (store) => store.insertRefreshToken(refreshToken("r1")), false],
    ["consumeRefreshToken: rotated", (store) => store.consumeRefreshToken("r1", refreshToken("r2"), 2_000, 5_000), false],
    ["consumeRefreshToken: grace", (store) => store.consumeRefreshToken("r1", refreshToken("r3"), 3_000, 5_000), false],
    ["consumeRefreshToken: missing", (store) => store.consumeRefreshToken("nope", refreshToken("r4"), 3_000, 5_000), false],
    ["consumeRefreshToken: reused", (store) => store.consumeRefreshToken("r1", refreshToken("r5"), 20_000, 5_000), true],
    ["revokeFamily", (store) => store.revokeFamily("fam", 21_000), true],
    ["listRefreshFamilies", (store) => store.listRefreshFamilies(21_000, { subject: "user:ann" }), false],
    ["revokeAccessToken", (store) => store.revokeAccessToken("jti-1", 50_000, 30_000), true],
    ["startBan", (store) => store.startBan("addr:192.0.2.9", 1_000, 60_000, 3_600_000, 86_400_000), true],
    ["clearBans", (store) => store.clearBans(2_000), true],
    ["ensureSigningKey: none yet", (store) => store.ensureSigningKey(signing[0]), true],
    ["ensureSigningKey: one is live", (store) => store.ensureSigningKey(signing[1]), false],
    ["rotateSigningKey", (store) => store.rotateSigningKey(signing[2], 2_000), true],
    ["insertSession", (store) => store.insertSession(session("00000000000000a1")), true],
    ["getSession, listSessions", (store) => Promise.all([store.getSession("00000000000000a1"), store.listSessions(2_000)]), false],
    ["touchSessions", (store) => store.touchSessions([{ id: "00000000000000a1", at: 5_000 }]), false],
    ["revokeSession", (store) => store.revokeSession("00000000000000a1", 6_000), true],
    ["revokeSessionsOf: none open", (store) => store.revokeSessionsOf("user:ann", 7_000), false],
    ["insertSession (a second)", (store) => store.insertSession(session("00000000000000a2")), true],
    ["revokeSessionsOf: one open", (store) => store.revokeSessionsOf("user:ann", 7_000), true],
    ["insertPasskey", (store) => store.insertPasskey(passkey("cred-1")), true],
    ["insertPasskey: the same id again", (store) => store.insertPasskey(passkey("cred-1")), false],
    ["recordPasskeyUse", (store) => store.recordPasskeyUse("cred-1", 5, 8_000), false],
    ["getPasskey, listPasskeys", (store) => Promise.all([store.getPasskey("cred-1"), store.listPasskeys("ann")]), false],
    ["setPasskeyRequired", (store) => store.setPasskeyRequired("ann", true, 8_000), true],
    ["removePasskeyUnlessLastRequired: not hers", (store) => store.removePasskeyUnlessLastRequired("cred-1", "bob"), false],
    ["removePasskeyUnlessLastRequired: her last, required", (store) => store.removePasskeyUnlessLastRequired("cred-1", "ann"), false],
    ["insertPasskey: a second", (store) => store.insertPasskey(passkey("cred-2")), true],
    ["removePasskeyUnlessLastRequired", (store) => store.removePasskeyUnlessLastRequired("cred-1", "ann"), true],
  ];
}

describe.each(engines)("the revision on %s", (_name, engine, available) => {
  const it = available ? test : test.skip;

  it("moves for every change, and for nothing else", async () => {
    await using db = await engine(1);
    const store = db.stores[0]!;
    const steps = await listSteps();
    const observed: Array<[string, boolean]> = [];
    for (const [name, write] of steps) {
      const before = await store.changeMarker();
      await write(store);
      observed.push([name, (await store.changeMarker()) !== before]);
    }
    expect(observed).toEqual(steps.map(([name, , moves]) => [name, moves]));
  });
});
