/**
 * Browser sessions in SQL. Opening and ending one changes who may authenticate (other instances
 * reload); noting a use is bookkeeping, batched and written at most once a minute per session.
 */
import type { SqlRunner } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectOne, toBytes, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type { SessionMethod, SessionRecord, SessionStore } from "./types.ts";

interface SessionRow {
  id: string;
  secret_hash: Uint8Array;
  subject: string;
  scopes: string;
  roles: string;
  method: string;
  created_at: Int;
  last_seen_at: Int;
  expires_at: Int;
  revoked_at: Int | null;
  created_addr: string;
}

const toSession = (row: SessionRow): SessionRecord => ({
  id: row.id,
  secretHash: toBytes(row.secret_hash),
  subject: row.subject,
  scopes: toWords(row.scopes),
  roles: toWords(row.roles),
  method: row.method as SessionMethod,
  createdAt: toInt(row.created_at),
  lastSeenAt: toInt(row.last_seen_at),
  expiresAt: toInt(row.expires_at),
  revokedAt: toIntOrNull(row.revoked_at),
  createdAddr: row.created_addr,
});

const SESSION_INSERT = `INSERT INTO sessions (id, secret_hash, subject, scopes, roles, method, created_at, last_seen_at, expires_at, created_addr)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;

const selectSession = (runner: SqlRunner, id: string) => selectOne(runner, "SELECT * FROM sessions WHERE id = $1", [id], toSession);

export function createSessionMethods(sql: SqlOperations): SessionStore {
  return {
    async insertSession(session) {
      await sql.change((tx) =>
        tx.run(SESSION_INSERT, [
          session.id,
          session.secretHash,
          session.subject,
          fromWords(session.scopes),
          fromWords(session.roles),
          session.method,
          session.createdAt,
          session.lastSeenAt,
          session.expiresAt,
          session.createdAddr,
        ]),
      );
    },
    getSession: (id) => selectSession(sql.direct, id),
    listSessions: async (now) =>
      (
        await sql.direct.all<SessionRow>("SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at, id", [
          now,
        ])
      ).map(toSession),
    async touchSessions(uses) {
      if (uses.length === 0) return;
      await sql.bookkeeping(async (tx) => {
        for (const use of uses) {
          await tx.run("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1", [use.at, use.id]);
        }
      });
    },
    revokeSession: (id, at) =>
      sql.change(async (tx) => {
        await tx.run("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [at, id]);
        return selectSession(tx, id);
      }),
    pruneSessions: (before) =>
      sql.bookkeeping((tx) =>
        tx.run("DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR expires_at < $1", [before]),
      ),
    revokeSessionsOf: (subject, at) =>
      sql.changeWhen(
        (count) => count > 0,
        (tx) => tx.run("UPDATE sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL AND expires_at > $1", [at, subject]),
      ),
  };
}
