/**
 * Passkeys (WebAuthn credentials) in SQL. Adding and removing one changes who may sign in; a use
 * (the new signature counter) is bookkeeping, but it is conditional on the counter it replaces.
 */
import type { SqlRunner } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectCount, selectOne, toBytes, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type { PasskeyRecord, PasskeyRemovalOutcome, PasskeyStore } from "./types.ts";

interface PasskeyRow {
  id: string;
  username: string;
  public_key: Uint8Array;
  counter: Int;
  transports: string;
  name: string;
  created_at: Int;
  last_used_at: Int | null;
}

const toPasskey = (row: PasskeyRow): PasskeyRecord => ({
  id: row.id,
  username: row.username,
  publicKey: toBytes(row.public_key),
  counter: toInt(row.counter),
  transports: toWords(row.transports),
  name: row.name,
  createdAt: toInt(row.created_at),
  lastUsedAt: toIntOrNull(row.last_used_at),
});

const PASSKEY_INSERT = `INSERT INTO passkeys (id, username, public_key, counter, transports, name, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`;

/**
 * Whether removing the passkey keeps the rule, read in `tx`. The writers are serialized (SQLite's
 * BEGIN IMMEDIATE, PostgreSQL's advisory lock, see driver.ts), so what is read here is still true
 * when the delete runs: of two removals racing for a user's last two passkeys, the second sees one.
 */
async function judgePasskeyRemoval(
  tx: SqlRunner,
  id: string,
  username: string,
): Promise<"allowed" | Exclude<PasskeyRemovalOutcome, "removed">> {
  const owned = await tx.all<{ id: string }>("SELECT id FROM passkeys WHERE username = $1", [username]);
  if (!owned.some((row) => row.id === id)) return "missing";
  const required = await selectCount(tx, "SELECT count(*) AS n FROM users WHERE username = $1 AND passkey_required = 1", [username]);
  return required > 0 && owned.length === 1 ? "last_required" : "allowed";
}

export function createPasskeyMethods(sql: SqlOperations): PasskeyStore {
  return {
    insertPasskey: (passkey) =>
      sql.changeWhen(
        (inserted) => inserted,
        async (tx) =>
          (await tx.run(PASSKEY_INSERT, [
            passkey.id,
            passkey.username,
            passkey.publicKey,
            passkey.counter,
            fromWords(passkey.transports),
            passkey.name,
            passkey.createdAt,
          ])) === 1,
      ),
    getPasskey: (id) => selectOne(sql.direct, "SELECT * FROM passkeys WHERE id = $1", [id], toPasskey),
    async listPasskeys(username) {
      const rows =
        username === undefined
          ? await sql.direct.all<PasskeyRow>("SELECT * FROM passkeys ORDER BY username, created_at, id")
          : await sql.direct.all<PasskeyRow>("SELECT * FROM passkeys WHERE username = $1 ORDER BY created_at, id", [username]);
      return rows.map(toPasskey);
    },
    // An authenticator without a counter always reports 0; one with a counter must move it forward.
    recordPasskeyUse: (id, counter, at) =>
      sql.bookkeeping(
        async (tx) =>
          (await tx.run(
            "UPDATE passkeys SET counter = $1, last_used_at = $2 WHERE id = $3 AND (counter < $1 OR (counter = 0 AND $1 = 0))",
            [counter, at, id],
          )) === 1,
      ),
    removePasskeyUnlessLastRequired: (id, username) =>
      sql.changeWhen(
        (outcome) => outcome === "removed",
        async (tx): Promise<PasskeyRemovalOutcome> => {
          const judged = await judgePasskeyRemoval(tx, id, username);
          if (judged !== "allowed") return judged;
          return (await tx.run("DELETE FROM passkeys WHERE id = $1 AND username = $2", [id, username])) === 1 ? "removed" : "missing";
        },
      ),
  };
}
