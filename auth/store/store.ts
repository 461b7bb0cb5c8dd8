/**
 * Persistent state behind small interfaces (`KeyStore`, `UserStore`, …), and the one
 * implementation of them over SQL: `createSqlStore` runs the same statements on the embedded
 * SQLite file (sqlite.ts) and on a shared PostgreSQL (postgres.ts). Every method is asynchronous
 * because PostgreSQL is across the network; the server keeps what it needs per request in memory.
 */
import { RETIRED_KEY_LIFETIME_MS, type JwtAlgorithm, type SigningKeyRecord } from "../secrets/jwt.ts";
import { LATEST_SCHEMA, pendingMigrations, type Dialect } from "./schema.ts";
import { digestsEqual } from "../secrets/tokens.ts";

export interface KeyRecord {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly string[];
  /** SHA-256 of the key's secret; the secret itself is never stored. */
  readonly secretHash: Uint8Array;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  /** When the key stops working by revocation; may lie in the future for a rotation overlap. */
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
  readonly lastUsedAddr: string | null;
  /** The key that replaced this one in a rotation. */
  readonly replacedBy: string | null;
}

export type NewKey = Pick<KeyRecord, "id" | "name" | "scopes" | "secretHash" | "createdAt" | "expiresAt">;

export interface KeyUsage {
  readonly id: string;
  readonly at: number;
  readonly addr: string;
}

export interface KeyStore {
  insertKey(key: NewKey): Promise<void>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  listKeys(): Promise<KeyRecord[]>;
  /** Sets the revocation time unless the key is already revoked by then; the updated record. */
  revokeKey(id: string, at: number): Promise<KeyRecord | undefined>;
  /** Inserts `replacement` and schedules the old key's end, in one transaction. */
  rotateKey(id: string, replacement: NewKey, oldEndsAt: number): Promise<KeyRecord | undefined>;
  recordUsage(usages: readonly KeyUsage[]): void;
  /**
   * The store's revision: moves with every commit that changes who may authenticate (keys,
   * users, revocations, bans, signing keys), by any process; usage bookkeeping does not move it.
   * Cheap to poll.
   */
  changeMarker(): Promise<string>;
  /**
   * Calls `onChange` soon after another process moves the revision, where the engine can push
   * (PostgreSQL LISTEN/NOTIFY); resolves to a function that stops watching. Polling
   * `changeMarker` stays the safety net.
   */
  watchChanges(onChange: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface UserRecord {
  readonly username: string;
  /** argon2id PHC string. */
  readonly passwordHash: string;
  readonly roles: readonly string[];
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly disabledAt: number | null;
}

export interface UserStore {
  /** Inserts a user; false if the username is taken. */
  insertUser(user: Omit<UserRecord, "disabledAt" | "updatedAt">): Promise<boolean>;
  getUser(username: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  setPassword(username: string, passwordHash: string, at: number): Promise<boolean>;
  setDisabled(username: string, disabledAt: number | null, at: number): Promise<boolean>;
}

export interface SigningKeyStore {
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /** Retires the live keys of the candidate's algorithm and inserts it, in one transaction. */
  rotateSigningKey(candidate: SigningKeyRecord, at: number): Promise<SigningKeyRecord[]>;
  /** Inserts a key unless one of the same algorithm was inserted meanwhile; returns the live set. */
  ensureSigningKey(candidate: SigningKeyRecord): Promise<SigningKeyRecord[]>;
}

export interface RefreshTokenRecord {
  readonly id: string;
  /** All tokens descended from one sign-in share a family; reuse revokes the whole family. */
  readonly familyId: string;
  readonly secretHash: Uint8Array;
  readonly subject: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly clientId: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usedAt: number | null;
  readonly revokedAt: number | null;
}

export type NewRefreshToken = Omit<RefreshTokenRecord, "usedAt" | "revokedAt">;

/**
 * What happened to a presented refresh token, decided in one transaction: "rotated" (first use),
 * "grace" (a concurrent retry within the grace window: a sibling is issued), "reused" (replay:
 * the family is now revoked), "revoked", or "missing".
 */
export type RefreshOutcome = "rotated" | "grace" | "reused" | "revoked" | "missing";

export interface RefreshStore {
  insertRefreshToken(token: NewRefreshToken): Promise<void>;
  getRefreshToken(id: string): Promise<RefreshTokenRecord | undefined>;
  consumeRefreshToken(id: string, next: NewRefreshToken, at: number, graceMs: number): Promise<RefreshOutcome>;
  revokeFamily(familyId: string, at: number): Promise<void>;
  /** Families revoked after `since` (older ones' access tokens have all expired). */
  revokedFamilies(since: number): Promise<string[]>;
  /** Puts an access token's jti on the deny list until its expiry. */
  /** Records a revoked access token until it expires; entries expired by `now` are dropped. */
  revokeAccessToken(jti: string, expiresAt: number, now: number): Promise<void>;
  revokedAccessTokens(now: number): Promise<string[]>;
}

export interface BanRecord {
  /** `addr:<ip>` or `key:<id>`. */
  readonly subject: string;
  readonly startedAt: number;
  readonly until: number;
  /** 1 for a first ban; each ban soon after the previous one doubles the duration. */
  readonly level: number;
}

export interface BanStore {
  /** Bans whose end lies after `now`. */
  listBans(now: number): Promise<BanRecord[]>;
  /** Records a ban; the level grows if the subject's previous ban ended less than `memoryMs` ago. */
  startBan(subject: string, now: number, baseMs: number, maxMs: number, memoryMs: number): Promise<BanRecord>;
  /** Ends bans now (all, or one subject's); returns how many were active. */
  clearBans(now: number, subject?: string): Promise<number>;
}

/**
 * What a presented pairing code achieved, decided in one transaction: "paired" (the first admin
 * key is in), "wrong" (counted against the code), "none" (no live code: never issued, expired,
 * used, or burnt by failures), "closed" (the device has credentials; pairing is over for good).
 */
export type PairingOutcome = "paired" | "wrong" | "none" | "closed";

export interface PairingStore {
  /** Whether any API key (in any state) or user exists: pairing is only for a device with neither. */
  hasCredentials(): Promise<boolean>;
  /** Stores a new code's digest in place of any earlier code; false, storing nothing, once credentials exist. */
  issuePairingCode(codeHash: Uint8Array, createdAt: number, expiresAt: number): Promise<boolean>;
  /** Redeems a code for `key` (inserted only on "paired"); the code dies after `maxFailures` wrong tries. */
  redeemPairingCode(codeHash: Uint8Array, now: number, maxFailures: number, key: NewKey): Promise<PairingOutcome>;
}

/** The embedded default implements every store interface over one database file. */
export type Store = KeyStore & UserStore & SigningKeyStore & RefreshStore & BanStore & PairingStore;

export class StoreError extends Error {
  override readonly name = "StoreError";
}

/** A value bound to a `$1`-style placeholder. */
export type SqlValue = string | number | Uint8Array | null;

export interface SqlRunner {
  /** Rows of a query; statements use `$1, $2, …` placeholders on every engine. */
  all<T>(text: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Runs a statement; how many rows it changed. */
  run(text: string, params?: readonly SqlValue[]): Promise<number>;
}

/** What an engine gives `createSqlStore`: statements, serialized write transactions, migrations. */
export interface SqlDriver extends SqlRunner {
  readonly dialect: Dialect;
  /**
   * Runs `work` in one transaction that no other writer (in this process or another) interleaves
   * with: SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock. Rolled back if `work` throws.
   */
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>;
  schemaVersion(tx: SqlRunner): Promise<number>;
  setSchemaVersion(tx: SqlRunner, version: number): Promise<void>;
  /** Inside a write transaction that moved the revision: tells other processes at commit. */
  announce(tx: SqlRunner): Promise<void>;
  watch(onChange: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Space-separated lists (scopes, roles) as stored. */
const words = (text: string) => (text === "" ? [] : text.split(" "));
/** PostgreSQL returns BIGINT as a string; SQLite as a number. */
const int = (value: number | string | bigint): number => Number(value);
const intOrNull = (value: number | string | bigint | null): number | null => (value === null ? null : Number(value));
/** A private copy: PostgreSQL hands out Buffers, SQLite views into its own memory. */
const bytes = (value: Uint8Array): Uint8Array => new Uint8Array(value);

type Int = number | string | bigint;

interface KeyRow {
  id: string;
  name: string;
  secret_hash: Uint8Array;
  scopes: string;
  created_at: Int;
  expires_at: Int | null;
  revoked_at: Int | null;
  last_used_at: Int | null;
  last_used_addr: string | null;
  replaced_by: string | null;
}

interface UserRow {
  username: string;
  password_hash: string;
  roles: string;
  created_at: Int;
  updated_at: Int;
  disabled_at: Int | null;
}

interface SigningKeyRow {
  kid: string;
  alg: JwtAlgorithm;
  private_jwk: string;
  public_jwk: string | null;
  created_at: Int;
  retired_at: Int | null;
}

interface RefreshRow {
  id: string;
  family_id: string;
  secret_hash: Uint8Array;
  subject: string;
  scopes: string;
  roles: string;
  client_id: string;
  created_at: Int;
  expires_at: Int;
  used_at: Int | null;
  revoked_at: Int | null;
}

interface PairingRow {
  code_hash: Uint8Array;
  expires_at: Int;
  failures: Int;
  used_at: Int | null;
}

interface BanRow {
  subject: string;
  started_at: Int;
  until: Int;
  level: Int;
}

const toSigningKey = (row: SigningKeyRow): SigningKeyRecord => ({
  kid: row.kid,
  alg: row.alg,
  privateJwk: row.private_jwk,
  publicJwk: row.public_jwk,
  createdAt: int(row.created_at),
  retiredAt: intOrNull(row.retired_at),
});

const toRefresh = (row: RefreshRow): RefreshTokenRecord => ({
  id: row.id,
  familyId: row.family_id,
  secretHash: bytes(row.secret_hash),
  subject: row.subject,
  scopes: words(row.scopes),
  roles: words(row.roles),
  clientId: row.client_id,
  createdAt: int(row.created_at),
  expiresAt: int(row.expires_at),
  usedAt: intOrNull(row.used_at),
  revokedAt: intOrNull(row.revoked_at),
});

const toUser = (row: UserRow): UserRecord => ({
  username: row.username,
  passwordHash: row.password_hash,
  roles: words(row.roles),
  createdAt: int(row.created_at),
  updatedAt: int(row.updated_at),
  disabledAt: intOrNull(row.disabled_at),
});

const toKey = (row: KeyRow): KeyRecord => ({
  id: row.id,
  name: row.name,
  scopes: words(row.scopes),
  secretHash: bytes(row.secret_hash),
  createdAt: int(row.created_at),
  expiresAt: intOrNull(row.expires_at),
  revokedAt: intOrNull(row.revoked_at),
  lastUsedAt: intOrNull(row.last_used_at),
  lastUsedAddr: row.last_used_addr,
  replacedBy: row.replaced_by,
});

const toBan = (row: BanRow): BanRecord => ({ subject: row.subject, startedAt: int(row.started_at), until: int(row.until), level: int(row.level) });

/** Brings the schema to the latest version, in one locked transaction, or refuses a newer one. */
export async function migrateSchema(driver: SqlDriver): Promise<void> {
  await driver.transaction(async (tx) => {
    const current = await driver.schemaVersion(tx);
    if (current > LATEST_SCHEMA) {
      throw new StoreError(
        `the database schema is version ${current}, newer than this tokengate understands (${LATEST_SCHEMA}); upgrade tokengate`,
      );
    }
    for (const migration of pendingMigrations(driver.dialect, current)) {
      for (const statement of migration.statements) await tx.run(statement);
      await driver.setSchemaVersion(tx, migration.version);
    }
  });
}

const KEY_INSERT = `INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`;
const REFRESH_INSERT = `INSERT INTO refresh_tokens (id, family_id, secret_hash, subject, scopes, roles, client_id, created_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`;
const SIGNING_KEY_INSERT = "INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)";
const SIGNING_KEYS = "SELECT * FROM signing_keys ORDER BY created_at, kid";

/**
 * Engine failures (a dropped connection, a full disk) become `StoreError`s with the engine's
 * message and no statement parameters, so callers can answer 503 instead of crashing.
 */
function storeFailure(error: unknown): never {
  if (error instanceof StoreError) throw error;
  throw new StoreError(error instanceof Error ? error.message : "the store failed", { cause: error });
}

function guardedRunner(runner: SqlRunner): SqlRunner {
  return {
    all: <T>(text: string, params?: readonly SqlValue[]) => runner.all<T>(text, params).catch(storeFailure),
    run: (text, params) => runner.run(text, params).catch(storeFailure),
  };
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
  const driver: SqlDriver = {
    ...engine,
    ...guardedRunner(engine),
    transaction: (work) => engine.transaction((tx) => work(guardedRunner(tx))).catch(storeFailure),
    watch: (onChange) => engine.watch(onChange).catch(storeFailure),
  };
  /** Inside a transaction that changed who may authenticate: other processes will reload. */
  const moveRevision = async (tx: SqlRunner) => {
    await tx.run("UPDATE store_revision SET value = value + 1 WHERE id = 1");
    await driver.announce(tx);
  };
  /** A write that changes who may authenticate: moves the revision, and tells the other processes. */
  const write = <T>(work: (tx: SqlRunner) => Promise<T>) =>
    driver.transaction(async (tx) => {
      const result = await work(tx);
      await moveRevision(tx);
      return result;
    });
  const one = async <Row, R>(runner: SqlRunner, text: string, params: readonly SqlValue[], decode: (row: Row) => R) => {
    const rows = await runner.all<Row>(text, params);
    return rows.length === 0 ? undefined : decode(rows[0]!);
  };
  const getKeyWith = (runner: SqlRunner, id: string) => one(runner, "SELECT * FROM api_keys WHERE id = $1", [id], toKey);
  const insertKeyWith = (runner: SqlRunner, key: NewKey) =>
    runner.run(KEY_INSERT, [key.id, key.name, key.secretHash, key.scopes.join(" "), key.createdAt, key.expiresAt]);
  const insertRefreshWith = (runner: SqlRunner, token: NewRefreshToken) =>
    runner.run(REFRESH_INSERT, [
      token.id,
      token.familyId,
      token.secretHash,
      token.subject,
      token.scopes.join(" "),
      token.roles.join(" "),
      token.clientId,
      token.createdAt,
      token.expiresAt,
    ]);
  const insertSigningKeyWith = (runner: SqlRunner, key: SigningKeyRecord) =>
    runner.run(SIGNING_KEY_INSERT, [key.kid, key.alg, key.privateJwk, key.publicJwk, key.createdAt]);
  const revokeKeyWith = (runner: SqlRunner, id: string, at: number) =>
    runner.run("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND (revoked_at IS NULL OR revoked_at > $1)", [at, id]);
  const revokeFamilyWith = (runner: SqlRunner, familyId: string, at: number) =>
    runner.run("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL", [at, familyId]);
  const signingKeys = async () => (await driver.all<SigningKeyRow>(SIGNING_KEYS)).map(toSigningKey);
  const hasCredentialsWith = async (runner: SqlRunner) =>
    int((await runner.all<{ n: Int }>("SELECT (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM users) AS n"))[0]!.n) > 0;

  return {
    async insertKey(key) {
      await write((tx) => insertKeyWith(tx, key));
    },
    getKey: (id) => getKeyWith(driver, id),
    listKeys: async () => (await driver.all<KeyRow>("SELECT * FROM api_keys ORDER BY created_at, id")).map(toKey),
    revokeKey: (id, at) =>
      write(async (tx) => {
        await revokeKeyWith(tx, id, at);
        return getKeyWith(tx, id);
      }),
    rotateKey: (id, replacement, oldEndsAt) =>
      write(async (tx) => {
        if ((await getKeyWith(tx, id)) === undefined) return undefined;
        await insertKeyWith(tx, replacement);
        await revokeKeyWith(tx, id, oldEndsAt);
        await tx.run("UPDATE api_keys SET replaced_by = $1 WHERE id = $2", [replacement.id, id]);
        return getKeyWith(tx, id);
      }),
    async recordUsage(usages) {
      if (usages.length === 0) return;
      // Bookkeeping, not a change of who may authenticate: the revision stays, nobody reloads.
      await driver.transaction(async (tx) => {
        for (const usage of usages) {
          await tx.run(
            "UPDATE api_keys SET last_used_at = $1, last_used_addr = $2 WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)",
            [usage.at, usage.addr, usage.id],
          );
        }
      });
    },
    async changeMarker() {
      const rows = await driver.all<{ value: Int }>("SELECT value FROM store_revision WHERE id = 1");
      return String(rows[0]?.value ?? "");
    },
    watchChanges: (onChange) => driver.watch(onChange),
    insertUser: (user) =>
      write(
        async (tx) =>
          (await tx.run(
            `INSERT INTO users (username, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (username) DO NOTHING`,
            [user.username, user.passwordHash, user.roles.join(" "), user.createdAt],
          )) === 1,
      ),
    getUser: (username) => one(driver, "SELECT * FROM users WHERE username = $1", [username], toUser),
    listUsers: async () => (await driver.all<UserRow>("SELECT * FROM users ORDER BY username")).map(toUser),
    setPassword: (username, hash, at) =>
      write(async (tx) => (await tx.run("UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3", [hash, at, username])) === 1),
    setDisabled: (username, disabledAt, at) =>
      write(
        async (tx) => (await tx.run("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE username = $3", [disabledAt, at, username])) === 1,
      ),
    listSigningKeys: signingKeys,
    async rotateSigningKey(candidate, at) {
      await write(async (tx) => {
        await tx.run("UPDATE signing_keys SET retired_at = $1 WHERE alg = $2 AND retired_at IS NULL", [at, candidate.alg]);
        await insertSigningKeyWith(tx, candidate);
        // Keys retired long enough ago that every token they signed has expired are of no use.
        await tx.run("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1", [at - RETIRED_KEY_LIFETIME_MS]);
      });
      return signingKeys();
    },
    async ensureSigningKey(candidate) {
      // Instances starting at once must agree on one key: check and insert under the write lock.
      const live = await driver.all<{ n: Int }>("SELECT count(*) AS n FROM signing_keys WHERE alg = $1 AND retired_at IS NULL", [candidate.alg]);
      if (int(live[0]!.n) === 0) {
        await write(async (tx) => {
          const again = await tx.all<{ n: Int }>("SELECT count(*) AS n FROM signing_keys WHERE alg = $1 AND retired_at IS NULL", [candidate.alg]);
          if (int(again[0]!.n) === 0) await insertSigningKeyWith(tx, candidate);
        });
      }
      return signingKeys();
    },
    async insertRefreshToken(token) {
      await insertRefreshWith(driver, token);
    },
    getRefreshToken: (id) => one(driver, "SELECT * FROM refresh_tokens WHERE id = $1", [id], toRefresh),
    consumeRefreshToken(id, next, at, graceMs) {
      const decide = async (tx: SqlRunner): Promise<RefreshOutcome> => {
        const row = await one(tx, "SELECT * FROM refresh_tokens WHERE id = $1", [id], toRefresh);
        if (row === undefined) return "missing";
        if (row.revokedAt !== null) return "revoked";
        if (row.usedAt === null) {
          await insertRefreshWith(tx, next);
          await tx.run("UPDATE refresh_tokens SET used_at = $1, replaced_by = $2 WHERE id = $3", [at, next.id, id]);
          return "rotated";
        }
        if (at - row.usedAt <= graceMs) {
          await insertRefreshWith(tx, next);
          return "grace";
        }
        await revokeFamilyWith(tx, row.familyId, at);
        return "reused";
      };
      // Only a detected replay changes who may authenticate; a normal rotation is bookkeeping.
      return driver.transaction(async (tx) => {
        const outcome = await decide(tx);
        if (outcome === "reused") await moveRevision(tx);
        return outcome;
      });
    },
    async revokeFamily(familyId, at) {
      await write((tx) => revokeFamilyWith(tx, familyId, at));
    },
    revokedFamilies: async (since) =>
      (await driver.all<{ family_id: string }>("SELECT DISTINCT family_id FROM refresh_tokens WHERE revoked_at IS NOT NULL AND revoked_at > $1", [since])).map(
        (row) => row.family_id,
      ),
    async revokeAccessToken(jti, expiresAt, now) {
      await write(async (tx) => {
        await tx.run("DELETE FROM revoked_access_tokens WHERE expires_at <= $1", [now]);
        await tx.run("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING", [jti, expiresAt]);
      });
    },
    revokedAccessTokens: async (now) =>
      (await driver.all<{ jti: string }>("SELECT jti FROM revoked_access_tokens WHERE expires_at > $1", [now])).map((row) => row.jti),
    listBans: async (now) => (await driver.all<BanRow>("SELECT * FROM bans WHERE until > $1 ORDER BY until", [now])).map(toBan),
    startBan: (subject, now, baseMs, maxMs, memoryMs) =>
      write(async (tx) => {
        const previous = await one(tx, "SELECT * FROM bans WHERE subject = $1", [subject], toBan);
        const level = previous !== undefined && now - previous.until < memoryMs ? previous.level + 1 : 1;
        const until = now + Math.min(maxMs, baseMs * 2 ** (level - 1));
        await tx.run(
          `INSERT INTO bans (subject, started_at, until, level) VALUES ($1, $2, $3, $4)
           ON CONFLICT (subject) DO UPDATE SET started_at = excluded.started_at, until = excluded.until, level = excluded.level`,
          [subject, now, until, level],
        );
        return { subject, startedAt: now, until, level };
      }),
    clearBans: (now, subject) =>
      write((tx) =>
        subject === undefined
          ? tx.run("UPDATE bans SET until = $1 WHERE until > $1", [now])
          : tx.run("UPDATE bans SET until = $1 WHERE until > $1 AND subject = $2", [now, subject]),
      ),
    hasCredentials: () => hasCredentialsWith(driver),
    // Checked and written under the write lock, so a code can never be issued after the first key.
    issuePairingCode: (codeHash, createdAt, expiresAt) =>
      driver.transaction(async (tx) => {
        if (await hasCredentialsWith(tx)) return false;
        await tx.run(
          `INSERT INTO pairing_code (id, code_hash, created_at, expires_at, failures) VALUES (1, $1, $2, $3, 0)
           ON CONFLICT (id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at,
             expires_at = excluded.expires_at, failures = 0, used_at = NULL`,
          [codeHash, createdAt, expiresAt],
        );
        return true;
      }),
    // One transaction: two browsers racing with the right code cannot both get an admin key.
    redeemPairingCode: (codeHash, now, maxFailures, key) =>
      driver.transaction(async (tx): Promise<PairingOutcome> => {
        if (await hasCredentialsWith(tx)) return "closed";
        const rows = await tx.all<PairingRow>("SELECT code_hash, expires_at, failures, used_at FROM pairing_code WHERE id = 1");
        const live = rows[0];
        if (live === undefined || live.used_at !== null || int(live.expires_at) <= now || int(live.failures) >= maxFailures) return "none";
        if (!digestsEqual(bytes(live.code_hash), codeHash)) {
          await tx.run("UPDATE pairing_code SET failures = failures + 1 WHERE id = 1");
          return "wrong";
        }
        await tx.run("UPDATE pairing_code SET used_at = $1 WHERE id = 1", [now]);
        await insertKeyWith(tx, key);
        await moveRevision(tx);
        return "paired";
      }),
    close: () => driver.close(),
  };
}
