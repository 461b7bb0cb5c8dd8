/**
 * Stores for tests: the embedded SQLite store of a data directory, as the server opens it, and
 * throwaway databases on the machine's real PostgreSQL (and key prefixes on its Redis), one per
 * test, so tests never see each other's data. Where a service cannot be reached the tests that
 * need it are skipped with the reason, except under CI=true, where that is a failure.
 */
import { SQL, RedisClient } from "bun";
import { join } from "node:path";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { openSqliteStore } from "../../auth/store/sqlite.ts";
import type { Store } from "../../auth/store/store.ts";

/** The store a server with this DATA_DIR (and no STORE_URL) uses. */
export function openDataDirStore(dataDir: string): Promise<Store> {
  return openSqliteStore(join(dataDir, DATABASE_FILE));
}

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.TEST_REDIS_URL || "redis://127.0.0.1:6379";
const inCi = process.env.CI === "true";

export interface Service {
  readonly available: boolean;
  /** Why it is not (for the skip message). */
  readonly reason: string;
}

async function probe(name: string, check: () => Promise<unknown>): Promise<Service> {
  try {
    await Promise.race([check(), Bun.sleep(3_000).then(() => Promise.reject(new Error("no answer within 3 s")))]);
    return { available: true, reason: "" };
  } catch (error) {
    const reason = `${name} is not reachable (${error instanceof Error ? error.message : String(error)}); set TEST_${name.toUpperCase()}_URL`;
    if (inCi) throw new Error(`CI=true: ${reason}`);
    console.warn(`skipped: ${reason}`);
    return { available: false, reason };
  }
}

let postgres: Promise<Service> | undefined;
let redis: Promise<Service> | undefined;

/** Whether the tests can use PostgreSQL; under CI=true an unreachable one throws (the suite fails). */
export function postgresService(): Promise<Service> {
  postgres ??= probe("postgres", async () => {
    const sql = new SQL(POSTGRES_URL, { max: 1, connectionTimeout: 3 });
    try {
      await sql`SELECT 1`;
    } finally {
      await sql.close();
    }
  });
  return postgres;
}

export function redisService(): Promise<Service> {
  redis ??= probe("redis", async () => {
    const client = new RedisClient(REDIS_URL, { connectionTimeout: 3_000, autoReconnect: false });
    try {
      await client.ping();
    } finally {
      client.close();
    }
  });
  return redis;
}

const suffix = () => `${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`;

export interface TestDatabase extends AsyncDisposable {
  readonly url: string;
}

/** A new, empty database on the test PostgreSQL; dropped (with its connections) on dispose. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `tokengate_test_${suffix()}`;
  const admin = new SQL(POSTGRES_URL, { max: 1 });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.close();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async [Symbol.asyncDispose]() {
      const dropper = new SQL(POSTGRES_URL, { max: 1 });
      await dropper.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.close();
    },
  };
}

/** A Redis key prefix of its own for one test; its keys are deleted on dispose. */
export async function createTestRedisPrefix(): Promise<{ readonly prefix: string } & AsyncDisposable> {
  const prefix = `tokengate_test:${suffix()}:`;
  return {
    prefix,
    async [Symbol.asyncDispose]() {
      const client = new RedisClient(REDIS_URL, { autoReconnect: false });
      const keys = (await client.send("KEYS", [`${prefix}*`])) as string[];
      if (keys.length > 0) await client.send("DEL", keys);
      client.close();
    },
  };
}
