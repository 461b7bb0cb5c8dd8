/**
 * Device logins (RFC 8628) in SQL, one row per device waiting for a person, so every instance
 * sees the same logins. Codes only as SHA-256. Each step that must not race is one transaction:
 * starting (the limits, the user code's uniqueness), a lookup that misses (counted against every
 * waiting login), a decision, a poll (slow_down), and spending an approved login together with
 * the credential it brings. All of it is bookkeeping, except spending a login into an API key: a
 * new key is a change other instances reload for.
 */
import { guardBucketOf } from "../core/addresses.ts";
import type { SqlRunner } from "./driver.ts";
import { insertKeyRow } from "./sql-keys.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { insertRefreshRow } from "./sql-refresh.ts";
import { fromWords, selectCount, selectOne, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type {
  DeviceAuthorizationRecord,
  DeviceCredentialRecord,
  DeviceDecision,
  DeviceLimits,
  DevicePollOutcome,
  DeviceStartOutcome,
  DeviceStatus,
  DeviceStore,
  NewDeviceAuthorization,
} from "./types.ts";

interface DeviceRow {
  id: string;
  client_id: string;
  scopes: string;
  client_addr: string;
  created_at: Int;
  expires_at: Int;
  interval_s: Int;
  last_polled_at: Int | null;
  status: string;
  approved_scopes: string | null;
  approver: string | null;
  decided_at: Int | null;
  failures: Int;
}

/** Every column but the two digests, which never leave the store. */
const COLUMNS = `id, client_id, scopes, client_addr, created_at, expires_at, interval_s, last_polled_at, status,
  approved_scopes, approver, decided_at, failures`;

const toDevice = (row: DeviceRow): DeviceAuthorizationRecord => ({
  id: row.id,
  clientId: row.client_id,
  scopes: toWords(row.scopes),
  clientAddress: row.client_addr,
  createdAt: toInt(row.created_at),
  expiresAt: toInt(row.expires_at),
  intervalSeconds: toInt(row.interval_s),
  lastPolledAt: toIntOrNull(row.last_polled_at),
  status: row.status as DeviceStatus,
  approvedScopes: row.approved_scopes === null ? null : toWords(row.approved_scopes),
  approver: row.approver,
  decidedAt: toIntOrNull(row.decided_at),
  failures: toInt(row.failures),
});

const DEVICE_INSERT = `INSERT INTO device_authorizations (id, device_code_hash, user_code_hash, client_id, scopes, client_addr,
    created_at, expires_at, interval_s, status, failures)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0)`;

/** Waiting: pending, not expired, not burnt by wrong user codes. `$1` now, `$2` the failure limit. */
const WAITING = "status = 'pending' AND expires_at > $1 AND failures < $2";

const selectById = (runner: SqlRunner, id: string) =>
  selectOne(runner, `SELECT ${COLUMNS} FROM device_authorizations WHERE id = $1`, [id], toDevice);

async function startLogin(tx: SqlRunner, login: NewDeviceAuthorization, limits: DeviceLimits): Promise<DeviceStartOutcome> {
  const now = login.createdAt;
  await tx.run("DELETE FROM device_authorizations WHERE expires_at < $1", [now - limits.keepEndedMs]);
  // At most `limits.total` rows: the addresses of every waiting login, grouped as the guard groups them
  // (a global IPv6 address by its /64, which one machine can fill with addresses of its own).
  const waitingFrom = await tx.all<{ client_addr: string }>(`SELECT client_addr FROM device_authorizations WHERE ${WAITING}`, [
    now,
    limits.maxFailures,
  ]);
  const bucket = guardBucketOf(login.clientAddress);
  if (waitingFrom.filter((row) => guardBucketOf(row.client_addr) === bucket).length >= limits.perAddress) return "busy_address";
  if (waitingFrom.length >= limits.total) return "busy";
  // A user code names one login for as long as any row keeps it: a person never reaches another device's.
  const taken = await selectCount(tx, "SELECT count(*) AS n FROM device_authorizations WHERE user_code_hash = $1", [login.userCodeHash]);
  if (taken > 0) return "collision";
  await tx.run(DEVICE_INSERT, [
    login.id,
    login.deviceCodeHash,
    login.userCodeHash,
    login.clientId,
    fromWords(login.scopes),
    login.clientAddress,
    login.createdAt,
    login.expiresAt,
    login.intervalSeconds,
  ]);
  return "started";
}

async function findWaiting(tx: SqlRunner, userCodeHash: Uint8Array, now: number, maxFailures: number) {
  const found = await selectOne(tx, `SELECT ${COLUMNS} FROM device_authorizations WHERE user_code_hash = $1`, [userCodeHash], toDevice);
  if (found !== undefined && found.status === "pending" && found.expiresAt > now) return found.failures < maxFailures ? found : undefined;
  // A code that was decided, used or let expire is no guess: the page was reloaded, or the person came back late.
  if (found !== undefined) return "ended";
  // A miss may be a guess at any waiting login: each of them counts it, so the odds stay bounded however many guess.
  await tx.run(`UPDATE device_authorizations SET failures = failures + 1 WHERE ${WAITING}`, [now, maxFailures]);
  return undefined;
}

async function decide(tx: SqlRunner, id: string, decision: DeviceDecision, maxFailures: number) {
  const status = decision.kind === "approve" ? "approved" : "denied";
  const scopes = decision.kind === "approve" ? fromWords(decision.scopes) : null;
  const changed = await tx.run(
    `UPDATE device_authorizations SET status = $3, approved_scopes = $4, approver = $5, decided_at = $1
      WHERE ${WAITING} AND id = $6`,
    [decision.at, maxFailures, status, scopes, decision.approver, id],
  );
  return changed === 0 ? undefined : selectById(tx, id);
}

/** A poll of a login that still waits for the person: noted, or too soon (the interval grows by 5 s). */
async function notePoll(tx: SqlRunner, record: DeviceAuthorizationRecord, now: number): Promise<DevicePollOutcome> {
  const tooSoon = record.lastPolledAt !== null && now - record.lastPolledAt < record.intervalSeconds * 1000;
  const intervalSeconds = tooSoon ? record.intervalSeconds + 5 : record.intervalSeconds;
  await tx.run("UPDATE device_authorizations SET last_polled_at = $1, interval_s = $2 WHERE id = $3", [now, intervalSeconds, record.id]);
  return tooSoon ? { kind: "slow_down", intervalSeconds } : { kind: "pending" };
}

interface Poll {
  readonly deviceCodeHash: Uint8Array;
  readonly clientId: string;
  readonly now: number;
  readonly maxFailures: number;
}

async function poll(tx: SqlRunner, { deviceCodeHash, clientId, now, maxFailures }: Poll): Promise<DevicePollOutcome> {
  const record = await selectOne(
    tx,
    `SELECT ${COLUMNS} FROM device_authorizations WHERE device_code_hash = $1`,
    [deviceCodeHash],
    toDevice,
  );
  if (record === undefined) return { kind: "missing" };
  if (record.clientId !== clientId) return { kind: "wrong_client" };
  if (record.status === "consumed" || record.status === "denied") return { kind: record.status };
  const burnt = record.status === "pending" && record.failures >= maxFailures;
  if (record.expiresAt <= now || burnt) return { kind: "expired" };
  return record.status === "approved" ? { kind: "approved", record } : notePoll(tx, record, now);
}

async function redeem(tx: SqlRunner, id: string, now: number, credential: DeviceCredentialRecord): Promise<boolean> {
  const spent = await tx.run(
    "UPDATE device_authorizations SET status = 'consumed', consumed_at = $1 WHERE id = $2 AND status = 'approved' AND expires_at > $1",
    [now, id],
  );
  if (spent === 0) return false;
  if (credential.kind === "key") await insertKeyRow(tx, credential.key);
  else await insertRefreshRow(tx, credential.token);
  return true;
}

export function createDeviceMethods(sql: SqlOperations): DeviceStore {
  return {
    startDeviceAuthorization: (login, limits) => sql.bookkeeping((tx) => startLogin(tx, login, limits)),
    findDeviceAuthorization: (userCodeHash, now, maxFailures) => sql.bookkeeping((tx) => findWaiting(tx, userCodeHash, now, maxFailures)),
    decideDeviceAuthorization: (id, decision, maxFailures) => sql.bookkeeping((tx) => decide(tx, id, decision, maxFailures)),
    pollDeviceAuthorization: (deviceCodeHash, clientId, now, maxFailures) =>
      sql.bookkeeping((tx) => poll(tx, { deviceCodeHash, clientId, now, maxFailures })),
    // A new API key is a change: other instances reload, so the device's key works on all of them.
    redeemDeviceAuthorization: (id, now, credential) =>
      sql.changeWhen(
        (spent) => spent && credential.kind === "key",
        (tx) => redeem(tx, id, now, credential),
      ),
  };
}
