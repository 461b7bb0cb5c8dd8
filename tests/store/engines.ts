/**
 * The two engines the store tests run on, and a fresh key record: shared by the store contract
 * (store.test.ts) and the revision table (revision.test.ts).
 */
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { openPostgresStore } from "../../auth/store/postgres.ts";
import type { NewKey, Store } from "../../auth/store/store.ts";
import { makeTempDir } from "../support/harness.ts";
import { trackSecret } from "../support/secrets.ts";
import { createTestDatabase, openDataDirStore, postgresService } from "../support/stores.ts";

export const postgres = await postgresService();

export function newKey(overrides: Partial<NewKey> = {}): { record: NewKey; secret: string } {
  const key = generateApiKey();
  trackSecret(key.token);
  return {
    secret: key.secret,
    record: {
      id: key.id,
      name: "lamp",
      scopes: ["data:read", "ws:connect"],
      secretHash: digestToken(key.secret),
      createdAt: 1_000,
      expiresAt: null,
      ...overrides,
    },
  };
}

/** Opens `count` stores on one fresh database of the engine (as that many processes would). */
export type Engine = (count: number) => Promise<{ stores: Store[] } & AsyncDisposable>;

export const sqliteEngine: Engine = async (count) => {
  const dir = makeTempDir();
  const stores: Store[] = [];
  for (let i = 0; i < count; i++) stores.push(await openDataDirStore(dir.path));
  return {
    stores,
    async [Symbol.asyncDispose]() {
      for (const store of stores) await store.close();
      dir[Symbol.dispose]();
    },
  };
};

export const postgresEngine: Engine = async (count) => {
  const database = await createTestDatabase();
  const stores = await Promise.all(Array.from({ length: count }, () => openPostgresStore(database.url)));
  return {
    stores,
    async [Symbol.asyncDispose]() {
      for (const store of stores) await store.close();
      await database[Symbol.asyncDispose]();
    },
  };
};

/** Name, engine, and whether it can run here (PostgreSQL may be unreachable outside CI). */
export const engines: Array<[string, Engine, boolean]> = [
  ["sqlite", sqliteEngine, true],
  ["postgres", postgresEngine, postgres.available],
];
