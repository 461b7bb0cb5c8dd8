/**
 * Refresh tokens and revoked access tokens in SQL. Issuing and rotating a refresh token changes
 * nobody's access; a detected replay (the family is revoked) and a revocation are changes.
 */
import type { SqlRunner, SqlValue } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectOne, toBytes, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type {
  NewRefreshToken,
  RefreshFamilyFilter,
  RefreshFamilyRecord,
  RefreshOutcome,
  RefreshStore,
  RefreshTokenRecord,
} from "./types.ts";

interface RefreshRow {
  id: string;
  family_id: string;
  secret_hash: Uint8Array;
  subject: string;
  scopes: string;
  roles: string;
  client_id: string;
  created_at: Int;
  expires_at: Int;
  used_at: Int | null;
  revoked_at: Int | null;
}

const toRefresh = (row: RefreshRow): RefreshTokenRecord => ({
  id: row.id,
  familyId: row.family_id,
  secretHash: toBytes(row.secret_hash),
  subject: row.subject,
  scopes: toWords(row.scopes),
  roles: toWords(row.roles),
  clientId: row.client_id,
  createdAt: toInt(row.created_at),
  expiresAt: toInt(row.expires_at),
  usedAt: toIntOrNull(row.used_at),
  revokedAt: toIntOrNull(row.revoked_at),
});

const REFRESH_INSERT = `INSERT INTO refresh_tokens (id, family_id, secret_hash, subject, scopes, roles, client_id, created_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`;

/** Also the refresh token an approved device receives (sql-device.ts). */
export const insertRefreshRow = (runner: SqlRunner, token: NewRefreshToken) =>
  runner.run(REFRESH_INSERT, [
    token.id,
    token.familyId,
    token.secretHash,
    token.subject,
    fromWords(token.scopes),
    fromWords(token.roles),
    token.clientId,
    token.createdAt,
    token.expiresAt,
  ]);

const selectRefresh = (runner: SqlRunner, id: string) => selectOne(runner, "SELECT * FROM refresh_tokens WHERE id = $1", [id], toRefresh);

const revokeFamilyRows = (runner: SqlRunner, familyId: string, at: number) =>
  runner.run("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL", [at, familyId]);

/** A presented refresh token and what its use brings: `next` is issued on rotation or within grace. */
interface Presentation {
  readonly id: string;
  readonly next: NewRefreshToken;
  readonly at: number;
  readonly graceMs: number;
}

async function decideRefresh(tx: SqlRunner, { id, next, at, graceMs }: Presentation): Promise<RefreshOutcome> {
  const row = await selectRefresh(tx, id);
  if (row === undefined) return "missing";
  if (row.revokedAt !== null) return "revoked";
  if (row.usedAt === null) {
    await insertRefreshRow(tx, next);
    await tx.run("UPDATE refresh_tokens SET used_at = $1, replaced_by = $2 WHERE id = $3", [at, next.id, id]);
    return "rotated";
  }
  if (at - row.usedAt <= graceMs) {
    await insertRefreshRow(tx, next);
    return "grace";
  }
  await revokeFamilyRows(tx, row.familyId, at);
  return "reused";
}

/** Drops deny-list entries expired by `now`, then adds `jti` (kept if already there). */
async function denyAccessToken(tx: SqlRunner, jti: string, expiresAt: number, now: number): Promise<void> {
  await tx.run("DELETE FROM revoked_access_tokens WHERE expires_at <= $1", [now]);
  await tx.run("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING", [jti, expiresAt]);
}

interface FamilyRow {
  family_id: string;
  subject: string;
  client_id: string;
  scopes: string;
  started_at: Int;
  last_rotated_at: Int | null;
  expires_at: Int;
  revoked_at: Int | null;
}

const toFamily = (row: FamilyRow): RefreshFamilyRecord => ({
  familyId: row.family_id,
  subject: row.subject,
  clientId: row.client_id,
  scopes: toWords(row.scopes),
  createdAt: toInt(row.started_at),
  lastRotatedAt: toIntOrNull(row.last_rotated_at),
  expiresAt: toInt(row.expires_at),
  revokedAt: toIntOrNull(row.revoked_at),
});

/**
 * One row per family, read from its newest token (scopes and end may change with each rotation),
 * with its first token's time and its earliest revocation: the revoked-families poll counts a
 * family revoked once any of its tokens is. Window functions read alike on both engines. The
 * secret hashes are never selected.
 */
function familiesQuery(filter: RefreshFamilyFilter): { readonly text: string; readonly params: SqlValue[] } {
  const conditions: string[] = [];
  const params: SqlValue[] = [];
  for (const [column, value] of [
    ["subject", filter.subject],
    ["family_id", filter.familyId],
  ] as const) {
    if (value === undefined) continue;
    params.push(value);
    conditions.push(`${column} = $${params.length + 1}`);
  }
  const where = conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`;
  const text = `WITH ranked AS (
      SELECT family_id, subject, client_id, scopes, created_at, expires_at,
        ROW_NUMBER() OVER (PARTITION BY family_id ORDER BY created_at DESC, id DESC) AS newest,
        COUNT(*) OVER (PARTITION BY family_id) AS tokens,
        MIN(created_at) OVER (PARTITION BY family_id) AS started_at,
        MIN(revoked_at) OVER (PARTITION BY family_id) AS family_revoked_at
      FROM refresh_tokens ${where}
    )
    SELECT family_id, subject, client_id, scopes, started_at, expires_at, family_revoked_at AS revoked_at,
      CASE WHEN tokens > 1 THEN created_at ELSE NULL END AS last_rotated_at
    FROM ranked WHERE newest = 1 AND expires_at > $1 ORDER BY started_at, family_id`;
  return { text, params };
}

const REVOKED_FAMILIES = "SELECT DISTINCT family_id FROM refresh_tokens WHERE revoked_at IS NOT NULL AND revoked_at > $1";

export function createRefreshMethods(sql: SqlOperations): RefreshStore {
  return {
    async insertRefreshToken(token) {
      // One statement is atomic by itself, and a new token changes nobody's access: no lock, no revision.
      await insertRefreshRow(sql.direct, token);
    },
    getRefreshToken: (id) => selectRefresh(sql.direct, id),
    // Only a detected replay changes who may authenticate; a normal rotation is bookkeeping.
    consumeRefreshToken: (id, next, at, graceMs) =>
      sql.changeWhen(
        (outcome) => outcome === "reused",
        (tx) => decideRefresh(tx, { id, next, at, graceMs }),
      ),
    // A change even when nothing was left to revoke, as it always was: the caller asked for an end.
    revokeFamily: (familyId, at) => sql.change((tx) => revokeFamilyRows(tx, familyId, at)),
    async listRefreshFamilies(now, filter = {}) {
      const { text, params } = familiesQuery(filter);
      return (await sql.direct.all<FamilyRow>(text, [now, ...params])).map(toFamily);
    },
    revokeFamiliesOf: (subject, at) =>
      sql.changeWhen(
        (count) => count > 0,
        (tx) => tx.run("UPDATE refresh_tokens SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL", [at, subject]),
      ),
    revokedFamilies: async (since) => (await sql.direct.all<{ family_id: string }>(REVOKED_FAMILIES, [since])).map((row) => row.family_id),
    async revokeAccessToken(jti, expiresAt, now) {
      await sql.change((tx) => denyAccessToken(tx, jti, expiresAt, now));
    },
    revokedAccessTokens: async (now) =>
      (await sql.direct.all<{ jti: string }>("SELECT jti FROM revoked_access_tokens WHERE expires_at > $1", [now])).map((row) => row.jti),
  };
}
