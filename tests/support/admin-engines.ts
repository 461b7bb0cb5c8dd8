/**
 * The whole app on each store engine, for the admin API's tests where the store is touched: the
 * data directory's SQLite file, and a throwaway database of the machine's PostgreSQL (skipped with
 * the reason where it cannot be reached, a failure under CI=true). The CLI beside it is pointed at
 * the same store, so one operation can be made through either face and the stored results compared.
 */
import { runCliProcess, type CliResult } from "./cli.ts";
import { startTestApp, type TestApp } from "./harness.ts";
import { trackSecret } from "./secrets.ts";
import { createTestDatabase, postgresService } from "./stores.ts";

export type EngineName = "sqlite" | "postgres";

const postgres = await postgresService();

/** Name, and whether it can run here: for `describe.each`. */
export const ENGINES: Array<[EngineName, boolean]> = [
  ["sqlite", true],
  ["postgres", postgres.available],
];

export interface EngineApp extends AsyncDisposable {
  readonly app: TestApp;
  /** The real CLI process on the app's store (STORE_URL for PostgreSQL, DATA_DIR for SQLite). */
  cli(...args: string[]): Promise<CliResult>;
}

/** Starts the app on the engine; disposing it stops the app and drops its database. */
export async function startEngineApp(engine: EngineName, env: Record<string, string> = {}): Promise<EngineApp> {
  const database = engine === "postgres" ? await createTestDatabase() : undefined;
  const storeEnv: Record<string, string> = database === undefined ? {} : { STORE_URL: database.url };
  const app = await startTestApp({ ...env, ...storeEnv });
  return {
    app,
    cli: (...args) => runCliProcess(args, { env: { DATA_DIR: app.dataDir, ...storeEnv } }),
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await database?.[Symbol.asyncDispose]();
    },
  };
}

export interface GrantedTokens {
  readonly status: number;
  readonly access_token?: string;
  readonly refresh_token?: string;
  readonly [field: string]: unknown;
}

/** A form POST to /auth/token (password or refresh grant); the tokens it returns are registered with the leak scan. */
export async function requestTokens(app: TestApp, fields: Record<string, string>): Promise<GrantedTokens> {
  const response = await fetch(`${app.http}/auth/token`, { method: "POST", body: new URLSearchParams(fields) });
  const body = (await response.json()) as Record<string, unknown>;
  for (const name of ["access_token", "refresh_token"]) if (typeof body[name] === "string") trackSecret(body[name]);
  return { status: response.status, ...body };
}
