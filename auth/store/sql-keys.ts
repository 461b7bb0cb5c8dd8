/**
 * API keys in SQL. Adding, revoking and rotating a key change who may authenticate; stamping its
 * last use is bookkeeping, batched by the keyring, that no other instance reloads for.
 */
import type { SqlRunner } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectOne, toBytes, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type { KeyChange, KeyRecord, KeyStore, KeyUsage, NewKey } from "./types.ts";

interface KeyRow {
  id: string;
  name: string;
  secret_hash: Uint8Array;
  scopes: string;
  created_at: Int;
  expires_at: Int | null;
  revoked_at: Int | null;
  last_used_at: Int | null;
  last_used_addr: string | null;
  replaced_by: string | null;
}

const toKey = (row: KeyRow): KeyRecord => ({
  id: row.id,
  name: row.name,
  scopes: toWords(row.scopes),
  secretHash: toBytes(row.secret_hash),
  createdAt: toInt(row.created_at),
  expiresAt: toIntOrNull(row.expires_at),
  revokedAt: toIntOrNull(row.revoked_at),
  lastUsedAt: toIntOrNull(row.last_used_at),
  lastUsedAddr: row.last_used_addr,
  replacedBy: row.replaced_by,
});

const KEY_INSERT = `INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`;

/** Also the key a successful pairing adds (sql-pairing.ts). */
export const insertKeyRow = (runner: SqlRunner, key: NewKey) =>
  runner.run(KEY_INSERT, [key.id, key.name, key.secretHash, fromWords(key.scopes), key.createdAt, key.expiresAt]);

const selectKey = (runner: SqlRunner, id: string) => selectOne(runner, "SELECT * FROM api_keys WHERE id = $1", [id], toKey);

/** Never moves a revocation later: an earlier end already set stays. */
const revokeKeyRow = (runner: SqlRunner, id: string, at: number) =>
  runner.run("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND (revoked_at IS NULL OR revoked_at > $1)", [at, id]);

/** Keeps a later stamp: batches from several instances may arrive out of order. */
const stampUsage = (runner: SqlRunner, usage: KeyUsage) =>
  runner.run("UPDATE api_keys SET last_used_at = $1, last_used_addr = $2 WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)", [
    usage.at,
    usage.addr,
    usage.id,
  ]);

async function rotateKeyRows(tx: SqlRunner, id: string, replacement: NewKey, oldEndsAt: number): Promise<KeyRecord | undefined> {
  if ((await selectKey(tx, id)) === undefined) return undefined;
  await insertKeyRow(tx, replacement);
  await revokeKeyRow(tx, id, oldEndsAt);
  await tx.run("UPDATE api_keys SET replaced_by = $1 WHERE id = $2", [replacement.id, id]);
  return selectKey(tx, id);
}

export type SqlKeyMethods = Pick<KeyStore, "insertKey" | "getKey" | "listKeys" | "revokeKey" | "rotateKey" | "recordUsage" | "updateKey">;

/** One statement per field given, in one transaction: what is not given stays. */
async function updateKeyRow(tx: SqlRunner, id: string, change: KeyChange): Promise<KeyRecord | undefined> {
  if (change.name !== undefined) await tx.run("UPDATE api_keys SET name = $1 WHERE id = $2", [change.name, id]);
  if (change.scopes !== undefined) await tx.run("UPDATE api_keys SET scopes = $1 WHERE id = $2", [fromWords(change.scopes), id]);
  if (change.expiresAt !== undefined) await tx.run("UPDATE api_keys SET expires_at = $1 WHERE id = $2", [change.expiresAt, id]);
  return selectKey(tx, id);
}

export function createKeyMethods(sql: SqlOperations): SqlKeyMethods {
  return {
    async insertKey(key) {
      await sql.change((tx) => insertKeyRow(tx, key));
    },
    getKey: (id) => selectKey(sql.direct, id),
    listKeys: async () => (await sql.direct.all<KeyRow>("SELECT * FROM api_keys ORDER BY created_at, id")).map(toKey),
    revokeKey: (id, at) =>
      sql.change(async (tx) => {
        await revokeKeyRow(tx, id, at);
        return selectKey(tx, id);
      }),
    rotateKey: (id, replacement, oldEndsAt) => sql.change((tx) => rotateKeyRows(tx, id, replacement, oldEndsAt)),
    updateKey: (id, change) =>
      sql.changeWhen(
        (updated) => updated !== undefined,
        (tx) => updateKeyRow(tx, id, change),
      ),
    async recordUsage(usages) {
      if (usages.length === 0) return;
      await sql.bookkeeping(async (tx) => {
        for (const usage of usages) await stampUsage(tx, usage);
      });
    },
  };
}
