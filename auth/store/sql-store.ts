/**
 * The one implementation of the store interfaces over SQL: the same statements on the embedded
 * SQLite file (sqlite.ts) and on a shared PostgreSQL (postgres.ts). Each kind of record has its
 * module (sql-keys.ts, sql-users.ts, …) built from the operation kinds of sql-operations.ts; this
 * file puts them together and migrates the schema. Every method is asynchronous because
 * PostgreSQL is across the network; the server keeps what it needs per request in memory.
 */
import { guardDriver, type SqlDriver } from "./driver.ts";
import { LATEST_SCHEMA, pendingMigrations } from "./schema.ts";
import { createAppScopeMethods } from "./sql-app-scopes.ts";
import { createBanMethods } from "./sql-bans.ts";
import { createDeviceMethods } from "./sql-device.ts";
import { createBackupMethods } from "./sql-export.ts";
import { createKeyMethods } from "./sql-keys.ts";
import { createSqlOperations } from "./sql-operations.ts";
import { createPairingMethods } from "./sql-pairing.ts";
import { createPasskeyMethods } from "./sql-passkeys.ts";
import { createRefreshMethods } from "./sql-refresh.ts";
import { createSessionMethods } from "./sql-sessions.ts";
import { createSigningKeyMethods } from "./sql-signing-keys.ts";
import { createUserMethods } from "./sql-users.ts";
import { StoreError, type Store } from "./types.ts";

/**
 * Brings the schema to the latest version (or to `target`, for an old backup being read), in one
 * locked transaction, or refuses a newer one.
 */
export async function migrateSchema(driver: SqlDriver, target = LATEST_SCHEMA): Promise<void> {
  await driver.transaction(async (tx) => {
    const current = await driver.schemaVersion(tx);
    if (current > LATEST_SCHEMA) {
      throw new StoreError(
        `the database schema is version ${current}, newer than this tokengate understands (${LATEST_SCHEMA}); upgrade tokengate`,
      );
    }
    for (const migration of pendingMigrations(driver.dialect, current).filter((step) => step.version <= target)) {
      for (const statement of migration.statements) await tx.run(statement);
      await driver.setSchemaVersion(tx, migration.version);
    }
  });
}

/** Migrates the driver's database and wraps it in the store; the driver is closed if that fails. */
export async function openMigratedStore(driver: SqlDriver): Promise<Store> {
  try {
    await migrateSchema(driver);
  } catch (error) {
    await driver.close();
    throw error;
  }
  return createSqlStore(driver);
}

/** The store over any engine; the driver has already migrated the schema. */
export function createSqlStore(engine: SqlDriver): Store {
  const driver = guardDriver(engine);
  const sql = createSqlOperations(driver);
  return {
    ...createBackupMethods(sql, driver),
    ...createKeyMethods(sql),
    ...createUserMethods(sql),
    ...createSigningKeyMethods(sql),
    ...createRefreshMethods(sql),
    ...createBanMethods(sql),
    ...createPairingMethods(sql),
    ...createSessionMethods(sql),
    ...createPasskeyMethods(sql),
    ...createAppScopeMethods(sql),
    ...createDeviceMethods(sql),
    changeMarker: () => sql.readRevision(),
    watchChanges: (onChange) => driver.watch(onChange),
    close: () => driver.close(),
  };
}
