/**
 * First-run pairing in SQL: at most one live code, as a digest. Issuing a code and counting a
 * wrong one are bookkeeping; a successful pairing adds the first admin key, which is a change.
 */
import { digestsEqual } from "../secrets/tokens.ts";
import type { SqlRunner } from "./driver.ts";
import { insertKeyRow } from "./sql-keys.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { selectCount, toBytes, toInt, type Int } from "./sql-rows.ts";
import type { NewKey, PairingOutcome, PairingStore } from "./types.ts";

interface PairingRow {
  code_hash: Uint8Array;
  expires_at: Int;
  failures: Int;
  used_at: Int | null;
}

const PAIRING_UPSERT = `INSERT INTO pairing_code (id, code_hash, created_at, expires_at, failures) VALUES (1, $1, $2, $3, 0)
  ON CONFLICT (id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at,
    expires_at = excluded.expires_at, failures = 0, used_at = NULL`;

/** Any API key (in any state) or user: pairing is only for a device with neither. */
const hasCredentialRows = async (runner: SqlRunner) =>
  (await selectCount(runner, "SELECT (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM users) AS n")) > 0;

async function issueCode(tx: SqlRunner, codeHash: Uint8Array, createdAt: number, expiresAt: number): Promise<boolean> {
  if (await hasCredentialRows(tx)) return false;
  await tx.run(PAIRING_UPSERT, [codeHash, createdAt, expiresAt]);
  return true;
}

/** A code presented for `key`, which is inserted only when the code is live and right. */
interface Redemption {
  readonly codeHash: Uint8Array;
  readonly now: number;
  readonly maxFailures: number;
  readonly key: NewKey;
}

const isLive = (row: PairingRow | undefined, now: number, maxFailures: number): row is PairingRow =>
  row !== undefined && row.used_at === null && toInt(row.expires_at) > now && toInt(row.failures) < maxFailures;

async function redeemCode(tx: SqlRunner, { codeHash, now, maxFailures, key }: Redemption): Promise<PairingOutcome> {
  if (await hasCredentialRows(tx)) return "closed";
  const rows = await tx.all<PairingRow>("SELECT code_hash, expires_at, failures, used_at FROM pairing_code WHERE id = 1");
  const live = rows[0];
  if (!isLive(live, now, maxFailures)) return "none";
  if (!digestsEqual(toBytes(live.code_hash), codeHash)) {
    await tx.run("UPDATE pairing_code SET failures = failures + 1 WHERE id = 1");
    return "wrong";
  }
  await tx.run("UPDATE pairing_code SET used_at = $1 WHERE id = 1", [now]);
  await insertKeyRow(tx, key);
  return "paired";
}

export function createPairingMethods(sql: SqlOperations): PairingStore {
  return {
    hasCredentials: () => hasCredentialRows(sql.direct),
    // Checked and written under the write lock, so a code can never be issued after the first key.
    issuePairingCode: (codeHash, createdAt, expiresAt) => sql.bookkeeping((tx) => issueCode(tx, codeHash, createdAt, expiresAt)),
    // One transaction: two browsers racing with the right code cannot both get an admin key.
    redeemPairingCode: (codeHash, now, maxFailures, key) =>
      sql.changeWhen(
        (outcome) => outcome === "paired",
        (tx) => redeemCode(tx, { codeHash, now, maxFailures, key }),
      ),
  };
}
