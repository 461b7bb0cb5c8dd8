/** Users in SQL: every write changes who may authenticate (a new user, a password, roles, disabling). */
import type { SqlRunner, SqlValue } from "./driver.ts";
import type { SqlOperations } from "./sql-operations.ts";
import { fromWords, selectOne, toInt, toIntOrNull, toWords, type Int } from "./sql-rows.ts";
import type { UserRecord, UsersRule, UserStore } from "./types.ts";

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

/** Whether the change may go ahead, read in `tx`: true, false for no such user, "refused" when it would break `keeps`. */
async function judgeChange(
  tx: SqlRunner,
  username: string,
  change: (user: UserRecord) => UserRecord,
  keeps: UsersRule | undefined,
): Promise<boolean | "refused"> {
  if (keeps === undefined) return true;
  const users = (await tx.all<UserRow>("SELECT * FROM users ORDER BY username")).map(toUser);
  const user = users.find((one) => one.username === username);
  if (user === undefined) return false;
  return keeps(users, change(user)) ? true : "refused";
}

export function createUserMethods(sql: SqlOperations): UserStore {
  /** One statement under `change`; whether it found its row (a taken name, an unknown user). */
  const changeOneRow = (text: string, params: readonly SqlValue[]) => sql.change(async (tx) => (await tx.run(text, params)) === 1);
  /**
   * A change judged by `keeps` in its own transaction: the writers are serialized (BEGIN
   * IMMEDIATE, PostgreSQL's advisory lock), so what the rule read is what the write changes.
   * Only a done change moves the revision.
   */
  const guardedChange = (
    username: string,
    change: (user: UserRecord) => UserRecord,
    keeps: UsersRule | undefined,
    write: (tx: SqlRunner) => Promise<boolean>,
  ) =>
    sql.changeWhen(
      (outcome: boolean | "refused") => outcome === true,
      async (tx) => {
        const judged = await judgeChange(tx, username, change, keeps);
        return judged === true ? write(tx) : judged;
      },
    );
  return {
    insertUser: (user) => changeOneRow(USER_INSERT, [user.username, user.passwordHash, fromWords(user.roles), user.createdAt]),
    getUser: (username) => selectOne(sql.direct, "SELECT * FROM users WHERE username = $1", [username], toUser),
    listUsers: async () => (await sql.direct.all<UserRow>("SELECT * FROM users ORDER BY username")).map(toUser),
    setPassword: (username, hash, at) =>
      changeOneRow("UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3", [hash, at, username]),
    setDisabled: (username, disabledAt, at, keeps) =>
      guardedChange(
        username,
        (user) => ({ ...user, disabledAt }),
        keeps,
        async (tx) => {
          const found =
            (await tx.run("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE username = $3", [disabledAt, at, username])) === 1;
          // In the same transaction: enabling the user later must not bring an old (maybe stolen) cookie back.
          if (found && disabledAt !== null) {
            await tx.run("UPDATE sessions SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL", [at, `user:${username}`]);
          }
          return found;
        },
      ),
    setRoles: (username, roles, at, keeps) =>
      guardedChange(
        username,
        (user) => ({ ...user, roles: [...roles] }),
        keeps,
        async (tx) =>
          (await tx.run("UPDATE users SET roles = $1, updated_at = $2 WHERE username = $3", [fromWords(roles), at, username])) === 1,
      ),
    setPasskeyRequired: (username, required, at) =>
      changeOneRow("UPDATE users SET passkey_required = $1, updated_at = $2 WHERE username = $3", [required ? 1 : 0, at, username]),
  };
}
