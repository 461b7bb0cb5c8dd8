/** Users in SQL: every write changes who may authenticate (a new user, a password, disabling). */
import type { SqlValue } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectOne, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type { UserRecord, UserStore } from "./types.ts";

interface UserRow {
  username: string;
  password_hash: string;
  roles: string;
  created_at: Int;
  updated_at: Int;
  disabled_at: Int | null;
  passkey_required: Int;
}

const toUser = (row: UserRow): UserRecord => ({
  username: row.username,
  passwordHash: row.password_hash,
  roles: toWords(row.roles),
  createdAt: toInt(row.created_at),
  updatedAt: toInt(row.updated_at),
  disabledAt: toIntOrNull(row.disabled_at),
  passkeyRequired: toInt(row.passkey_required) === 1,
});

const USER_INSERT = `INSERT INTO users (username, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
  ON CONFLICT (username) DO NOTHING`;

export function createUserMethods(sql: SqlOperations): UserStore {
  /** One statement under `change`; whether it found its row (a taken name, an unknown user). */
  const changeOneRow = (text: string, params: readonly SqlValue[]) => sql.change(async (tx) => (await tx.run(text, params)) === 1);
  return {
    insertUser: (user) => changeOneRow(USER_INSERT, [user.username, user.passwordHash, fromWords(user.roles), user.createdAt]),
    getUser: (username) => selectOne(sql.direct, "SELECT * FROM users WHERE username = $1", [username], toUser),
    listUsers: async () => (await sql.direct.all<UserRow>("SELECT * FROM users ORDER BY username")).map(toUser),
    setPassword: (username, hash, at) =>
      changeOneRow("UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3", [hash, at, username]),
    setDisabled: (username, disabledAt, at) =>
      sql.change(async (tx) => {
        const found =
          (await tx.run("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE username = $3", [disabledAt, at, username])) === 1;
        // In the same transaction: enabling the user later must not bring an old (maybe stolen) cookie back.
        if (found && disabledAt !== null) {
          await tx.run("UPDATE sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL", [at, `user:${username}`]);
        }
        return found;
      }),
    setPasskeyRequired: (username, required, at) =>
      changeOneRow("UPDATE users SET passkey_required = $1, updated_at = $2 WHERE username = $3", [required ? 1 : 0, at, username]),
  };
}
