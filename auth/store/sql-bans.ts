/** Bans in SQL: starting and clearing one are changes (every instance must enforce the same bans). */
import type { SqlRunner } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { selectOne, toInt, type Int } from "./sql-rows.ts";
import type { BanRecord, BanStore } from "./types.ts";

interface BanRow {
  subject: string;
  started_at: Int;
  until: Int;
  level: Int;
}

const toBan = (row: BanRow): BanRecord => ({
  subject: row.subject,
  startedAt: toInt(row.started_at),
  until: toInt(row.until),
  level: toInt(row.level),
});

const BAN_UPSERT = `INSERT INTO bans (subject, started_at, until, level) VALUES ($1, $2, $3, $4)
  ON CONFLICT (subject) DO UPDATE SET started_at = excluded.started_at, until = excluded.until, level = excluded.level`;

interface BanPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly memoryMs: number;
}

/**
 * The next ban of `subject`: a level up if its previous ban ended less than `memoryMs` ago. A ban
 * still in force is answered as it stands: several instances may each see the limit crossed, and
 * one burst must not climb the levels once per instance.
 */
async function upsertBan(tx: SqlRunner, subject: string, now: number, policy: BanPolicy): Promise<BanRecord> {
  const previous = await selectOne(tx, "SELECT * FROM bans WHERE subject = $1", [subject], toBan);
  if (previous !== undefined && previous.until > now) return previous;
  const level = previous !== undefined && now - previous.until < policy.memoryMs ? previous.level + 1 : 1;
  const until = now + Math.min(policy.maxMs, policy.baseMs * 2 ** (level - 1));
  await tx.run(BAN_UPSERT, [subject, now, until, level]);
  return { subject, startedAt: now, until, level };
}

const endBans = (tx: SqlRunner, now: number, subject: string | undefined) =>
  subject === undefined
    ? tx.run("UPDATE bans SET until = $1 WHERE until > $1", [now])
    : tx.run("UPDATE bans SET until = $1 WHERE until > $1 AND subject = $2", [now, subject]);

export function createBanMethods(sql: SqlOperations): BanStore {
  return {
    listBans: async (now) => (await sql.direct.all<BanRow>("SELECT * FROM bans WHERE until > $1 ORDER BY until", [now])).map(toBan),
    startBan: (subject, now, baseMs, maxMs, memoryMs) => sql.change((tx) => upsertBan(tx, subject, now, { baseMs, maxMs, memoryMs })),
    clearBans: (now, subject) => sql.change((tx) => endBans(tx, now, subject)),
  };
}
