/**
 * Scopes a program's own routes require (tokengate as a library: `gate.protect("sensors:read", …)`),
 * stored so the CLI and the admin API, in other processes, accept them for new keys without
 * `--allow-new-scope`. Bookkeeping: knowing a scope changes nobody's access.
 */
import type { SqlOperations } from "./sql-operations.ts";
import type { AppScopeStore } from "./types.ts";

export function createAppScopeMethods(sql: SqlOperations): AppScopeStore {
  return {
    recordAppScopes: (scopes, at) =>
      sql.bookkeeping(async (tx) => {
        for (const scope of scopes)
          await tx.run("INSERT INTO app_scopes (scope, added_at) VALUES ($1, $2) ON CONFLICT (scope) DO NOTHING", [scope, at]);
      }),
    listAppScopes: async () =>
      (await sql.direct.all<{ scope: string }>("SELECT scope FROM app_scopes ORDER BY scope")).map((row) => row.scope),
  };
}
