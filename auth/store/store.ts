/**
 * Where the rest of tokengate imports the store from: the interfaces and records (types.ts), the
 * driver contract an engine implements (driver.ts) and the SQL store over it (sql-store.ts).
 * The engines themselves are opened through open.ts, sqlite.ts and postgres.ts.
 */
export * from "./types.ts";
export type { SqlDriver, SqlRunner, SqlValue } from "./driver.ts";
export { createSqlStore, migrateSchema, openMigratedStore } from "./sql-store.ts";
