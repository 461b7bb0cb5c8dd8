/**
 * JWT signing keys in SQL. Rotating or adding one is a change: other instances must load the new
 * key to verify what it signs.
 */
import { RETIRED_KEY_LIFETIME_MS, type JwtAlgorithm, type SigningKeyRecord } from "../secrets/jwt.ts";
import type { SqlRunner } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { selectCount, toInt, toIntOrNull, type Int } from "./sql-rows.ts";
import type { SigningKeyStore } from "./types.ts";

interface SigningKeyRow {
  kid: string;
  alg: JwtAlgorithm;
  private_jwk: string;
  public_jwk: string | null;
  created_at: Int;
  retired_at: Int | null;
}

const toSigningKey = (row: SigningKeyRow): SigningKeyRecord => ({
  kid: row.kid,
  alg: row.alg,
  privateJwk: row.private_jwk,
  publicJwk: row.public_jwk,
  createdAt: toInt(row.created_at),
  retiredAt: toIntOrNull(row.retired_at),
});

const SIGNING_KEY_INSERT = "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)";

const selectSigningKeys = async (runner: SqlRunner) =>
  (await runner.all<SigningKeyRow>("SELECT * FROM signing_keys ORDER BY created_at, kid")).map(toSigningKey);

const insertSigningKeyRow = (runner: SqlRunner, key: SigningKeyRecord) =>
  runner.run(SIGNING_KEY_INSERT, [key.kid, key.alg, key.privateJwk, key.publicJwk, key.createdAt]);

const countLiveKeys = (runner: SqlRunner, alg: JwtAlgorithm) =>
  selectCount(runner, "SELECT count(*) AS n FROM signing_keys WHERE alg = $1 AND retired_at IS NULL", [alg]);

async function replaceSigningKey(tx: SqlRunner, candidate: SigningKeyRecord, at: number): Promise<void> {
  await tx.run("UPDATE signing_keys SET retired_at = $1 WHERE alg = $2 AND retired_at IS NULL", [at, candidate.alg]);
  await insertSigningKeyRow(tx, candidate);
  // Keys retired long enough ago that every token they signed has expired are of no use.
  await tx.run("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1", [at - RETIRED_KEY_LIFETIME_MS]);
}

export function createSigningKeyMethods(sql: SqlOperations): SigningKeyStore {
  return {
    listSigningKeys: () => selectSigningKeys(sql.direct),
    async rotateSigningKey(candidate, at) {
      await sql.change((tx) => replaceSigningKey(tx, candidate, at));
      return selectSigningKeys(sql.direct);
    },
    async ensureSigningKey(candidate) {
      // Instances starting at once must agree on one key: check again and insert under the write
      // lock. The first check, without the lock, spares every later start a write.
      if ((await countLiveKeys(sql.direct, candidate.alg)) === 0) {
        await sql.change(async (tx) => {
          if ((await countLiveKeys(tx, candidate.alg)) === 0) await insertSigningKeyRow(tx, candidate);
        });
      }
      return selectSigningKeys(sql.direct);
    },
  };
}
