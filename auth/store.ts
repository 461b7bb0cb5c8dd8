/**
 * Persistent state behind a small interface. `KeyStore` is what the server and the CLI need from
 * storage; `openSqliteStore` is the embedded default: one `bun:sqlite` file under DATA_DIR, WAL,
 * STRICT tables, foreign keys on, schema migrations versioned in code and applied at startup.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { RETIRED_KEY_LIFETIME_MS, type JwtAlgorithm, type SigningKeyRecord } from "./jwt.ts";

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
  insertKey(key: NewKey): void;
  getKey(id: string): KeyRecord | undefined;
  listKeys(): KeyRecord[];
  /** Sets the revocation time unless the key is already revoked by then; the updated record. */
  revokeKey(id: string, at: number): KeyRecord | undefined;
  /** Inserts `replacement` and schedules the old key's end, in one transaction. */
  rotateKey(id: string, replacement: NewKey, oldEndsAt: number): KeyRecord | undefined;
  recordUsage(usages: readonly KeyUsage[]): void;
  /**
   * `<data_version>:<total_changes>`: changes whenever anyone (the CLI, another process, this
   * connection) commits. The first part moves only for other connections' commits. Cheap to poll.
   */
  changeMarker(): string;
  close(): void;
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
  insertUser(user: Omit<UserRecord, "disabledAt" | "updatedAt">): boolean;
  getUser(username: string): UserRecord | undefined;
  listUsers(): UserRecord[];
  setPassword(username: string, passwordHash: string, at: number): boolean;
  setDisabled(username: string, disabledAt: number | null, at: number): boolean;
}

export interface SigningKeyStore {
  listSigningKeys(): SigningKeyRecord[];
  /** Retires the live keys of the candidate's algorithm and inserts it, in one transaction. */
  rotateSigningKey(candidate: SigningKeyRecord, at: number): SigningKeyRecord[];
  /** Inserts a key unless one of the same algorithm was inserted meanwhile; returns the live set. */
  ensureSigningKey(candidate: SigningKeyRecord): SigningKeyRecord[];
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
  insertRefreshToken(token: NewRefreshToken): void;
  getRefreshToken(id: string): RefreshTokenRecord | undefined;
  consumeRefreshToken(id: string, next: NewRefreshToken, at: number, graceMs: number): RefreshOutcome;
  revokeFamily(familyId: string, at: number): void;
  /** Families revoked after `since` (older ones' access tokens have all expired). */
  revokedFamilies(since: number): string[];
  /** Puts an access token's jti on the deny list until its expiry. */
  revokeAccessToken(jti: string, expiresAt: number): void;
  revokedAccessTokens(now: number): string[];
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
  listBans(now: number): BanRecord[];
  /** Records a ban; the level grows if the subject's previous ban ended less than `memoryMs` ago. */
  startBan(subject: string, now: number, baseMs: number, maxMs: number, memoryMs: number): BanRecord;
  /** Ends bans now (all, or one subject's); returns how many were active. */
  clearBans(now: number, subject?: string): number;
}

/** The embedded default implements every store interface over one database file. */
export type Store = KeyStore & UserStore & SigningKeyStore & RefreshStore & BanStore;

interface Migration {
  readonly version: number;
  readonly statements: readonly string[];
}

/** Append-only. A released migration is never edited; a change is a new version. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE api_keys (
        id TEXT PRIMARY KEY CHECK (length(id) = 12),
        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER,
        last_used_addr TEXT,
        replaced_by TEXT REFERENCES api_keys(id)
      ) STRICT`,
      "CREATE INDEX api_keys_name ON api_keys(name)",
    ],
  },
  {
    version: 2,
    statements: [
      `CREATE TABLE users (
        username TEXT PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 64),
        password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
        roles TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        disabled_at INTEGER
      ) STRICT`,
    ],
  },
  {
    version: 3,
    statements: [
      `CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL CHECK (alg IN ('EdDSA', 'HS256')),
        private_jwk TEXT NOT NULL,
        public_jwk TEXT,
        created_at INTEGER NOT NULL,
        retired_at INTEGER
      ) STRICT`,
    ],
  },
  {
    version: 4,
    statements: [
      `CREATE TABLE refresh_tokens (
        id TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
        subject TEXT NOT NULL,
        scopes TEXT NOT NULL,
        roles TEXT NOT NULL,
        client_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        replaced_by TEXT,
        revoked_at INTEGER
      ) STRICT`,
      "CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id)",
      `CREATE TABLE revoked_access_tokens (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
      ) STRICT`,
    ],
  },
  {
    version: 5,
    statements: [
      `CREATE TABLE bans (
        subject TEXT PRIMARY KEY,
        started_at INTEGER NOT NULL,
        until INTEGER NOT NULL,
        level INTEGER NOT NULL CHECK (level >= 1)
      ) STRICT`,
    ],
  },
];

export const LATEST_SCHEMA = MIGRATIONS.at(-1)!.version;

export class StoreError extends Error {
  override readonly name = "StoreError";
}

/** Space-separated lists (scopes, roles) as stored. */
const words = (text: string) => (text === "" ? [] : text.split(" "));

interface KeyRow {
  id: string;
  name: string;
  secret_hash: Uint8Array;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  last_used_addr: string | null;
  replaced_by: string | null;
}

interface UserRow {
  username: string;
  password_hash: string;
  roles: string;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
}

interface SigningKeyRow {
  kid: string;
  alg: JwtAlgorithm;
  private_jwk: string;
  public_jwk: string | null;
  created_at: number;
  retired_at: number | null;
}

function toSigningKey(row: SigningKeyRow): SigningKeyRecord {
  return {
    kid: row.kid,
    alg: row.alg,
    privateJwk: row.private_jwk,
    publicJwk: row.public_jwk,
    createdAt: row.created_at,
    retiredAt: row.retired_at,
  };
}

interface RefreshRow {
  id: string;
  family_id: string;
  secret_hash: Uint8Array;
  subject: string;
  scopes: string;
  roles: string;
  client_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
}

function toRefresh(row: RefreshRow): RefreshTokenRecord {
  return {
    id: row.id,
    familyId: row.family_id,
    secretHash: new Uint8Array(row.secret_hash),
    subject: row.subject,
    scopes: words(row.scopes),
    roles: words(row.roles),
    clientId: row.client_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    revokedAt: row.revoked_at,
  };
}

function toUser(row: UserRow): UserRecord {
  return {
    username: row.username,
    passwordHash: row.password_hash,
    roles: words(row.roles),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    disabledAt: row.disabled_at,
  };
}

function toRecord(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: words(row.scopes),
    secretHash: new Uint8Array(row.secret_hash),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    lastUsedAddr: row.last_used_addr,
    replacedBy: row.replaced_by,
  };
}

function applyMigrations(db: Database): void {
  const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (current > LATEST_SCHEMA) {
    throw new StoreError(
      `the database schema is version ${current}, newer than this tokengate understands (${LATEST_SCHEMA}); upgrade tokengate`,
    );
  }
  for (const migration of MIGRATIONS) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      for (const statement of migration.statements) db.run(statement);
      db.run(`PRAGMA user_version = ${migration.version}`);
    }).immediate();
  }
}

export const DATABASE_FILE = "tokengate.db";

export function openSqliteStore(dataDir: string): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dataDir, DATABASE_FILE), { create: true, strict: true });
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA journal_mode = WAL");
  // FULL: an acknowledged write survives power loss too, not only a killed process; LAN boxes
  // lose power more often than they crash. Writes are rare (CLI actions, batched usage).
  db.run("PRAGMA synchronous = FULL");
  db.run("PRAGMA foreign_keys = ON");
  applyMigrations(db);

  const insert = db.query(
    `INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, expires_at)
     VALUES ($id, $name, $secret_hash, $scopes, $created_at, $expires_at)`,
  );
  const selectOne = db.query<KeyRow, { id: string }>("SELECT * FROM api_keys WHERE id = $id");
  const selectAll = db.query<KeyRow, []>("SELECT * FROM api_keys ORDER BY created_at, id");
  const revoke = db.query(
    "UPDATE api_keys SET revoked_at = $at WHERE id = $id AND (revoked_at IS NULL OR revoked_at > $at)",
  );
  const link = db.query("UPDATE api_keys SET replaced_by = $replaced_by WHERE id = $id");
  const touch = db.query(
    "UPDATE api_keys SET last_used_at = $at, last_used_addr = $addr WHERE id = $id AND (last_used_at IS NULL OR last_used_at < $at)",
  );
  // data_version moves for other connections' commits, total_changes() for this connection's own.
  const changeMarker = db.query<{ marker: string }, []>(
    "SELECT (SELECT data_version FROM pragma_data_version) || ':' || total_changes() AS marker",
  );
  const insertUser = db.query(
    `INSERT INTO users (username, password_hash, roles, created_at, updated_at)
     VALUES ($username, $password_hash, $roles, $created_at, $created_at) ON CONFLICT (username) DO NOTHING`,
  );
  const selectUser = db.query<UserRow, { username: string }>("SELECT * FROM users WHERE username = $username");
  const selectUsers = db.query<UserRow, []>("SELECT * FROM users ORDER BY username");
  const updatePassword = db.query("UPDATE users SET password_hash = $hash, updated_at = $at WHERE username = $username");
  const selectSigningKeys = db.query<SigningKeyRow, []>("SELECT * FROM signing_keys ORDER BY created_at");
  const countLiveSigningKeys = db.query<{ n: number }, { alg: string }>(
    "SELECT count(*) AS n FROM signing_keys WHERE alg = $alg AND retired_at IS NULL",
  );
  const insertSigningKey = db.query(
    `INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at)
     VALUES ($kid, $alg, $private_jwk, $public_jwk, $created_at)`,
  );
  const insertRefresh = db.query(
    `INSERT INTO refresh_tokens (id, family_id, secret_hash, subject, scopes, roles, client_id, created_at, expires_at)
     VALUES ($id, $family_id, $secret_hash, $subject, $scopes, $roles, $client_id, $created_at, $expires_at)`,
  );
  const selectRefresh = db.query<RefreshRow, { id: string }>("SELECT * FROM refresh_tokens WHERE id = $id");
  const markRefreshUsed = db.query("UPDATE refresh_tokens SET used_at = $at, replaced_by = $next WHERE id = $id");
  const revokeRefreshFamily = db.query(
    "UPDATE refresh_tokens SET revoked_at = $at WHERE family_id = $family_id AND revoked_at IS NULL",
  );
  const selectRevokedFamilies = db.query<{ family_id: string }, { since: number }>(
    "SELECT DISTINCT family_id FROM refresh_tokens WHERE revoked_at IS NOT NULL AND revoked_at > $since",
  );
  const insertRevokedJti = db.query(
    "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($jti, $expires_at) ON CONFLICT (jti) DO NOTHING",
  );
  const selectRevokedJtis = db.query<{ jti: string }, { now: number }>("SELECT jti FROM revoked_access_tokens WHERE expires_at > $now");
  const pruneRevokedJtis = db.query("DELETE FROM revoked_access_tokens WHERE expires_at <= $now");
  const retireSigningKeys = db.query("UPDATE signing_keys SET retired_at = $at WHERE alg = $alg AND retired_at IS NULL");
  const pruneSigningKeys = db.query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $before");
  const selectActiveBans = db.query<{ subject: string; started_at: number; until: number; level: number }, { now: number }>(
    "SELECT * FROM bans WHERE until > $now ORDER BY until",
  );
  const selectBan = db.query<{ subject: string; started_at: number; until: number; level: number }, { subject: string }>(
    "SELECT * FROM bans WHERE subject = $subject",
  );
  const upsertBan = db.query(
    `INSERT INTO bans (subject, started_at, until, level) VALUES ($subject, $started_at, $until, $level)
     ON CONFLICT (subject) DO UPDATE SET started_at = excluded.started_at, until = excluded.until, level = excluded.level`,
  );
  const endBans = db.query("UPDATE bans SET until = $now WHERE until > $now AND ($subject IS NULL OR subject = $subject)");
  const updateDisabled = db.query("UPDATE users SET disabled_at = $disabled_at, updated_at = $at WHERE username = $username");

  const insertRefreshRow = (token: NewRefreshToken) =>
    insertRefresh.run({
      id: token.id,
      family_id: token.familyId,
      secret_hash: token.secretHash,
      subject: token.subject,
      scopes: token.scopes.join(" "),
      roles: token.roles.join(" "),
      client_id: token.clientId,
      created_at: token.createdAt,
      expires_at: token.expiresAt,
    });
  const insertKey = (key: NewKey) =>
    insert.run({
      id: key.id,
      name: key.name,
      secret_hash: key.secretHash,
      scopes: key.scopes.join(" "),
      created_at: key.createdAt,
      expires_at: key.expiresAt,
    });
  const getKey = (id: string) => {
    const row = selectOne.get({ id });
    return row === null ? undefined : toRecord(row);
  };

  return {
    insertKey,
    getKey,
    listKeys: () => selectAll.all().map(toRecord),
    revokeKey(id, at) {
      revoke.run({ id, at });
      return getKey(id);
    },
    rotateKey(id, replacement, oldEndsAt) {
      return db
        .transaction(() => {
          if (getKey(id) === undefined) return undefined;
          insertKey(replacement);
          revoke.run({ id, at: oldEndsAt });
          link.run({ id, replaced_by: replacement.id });
          return getKey(id);
        })
        .immediate();
    },
    recordUsage(usages) {
      if (usages.length === 0) return;
      db.transaction(() => {
        for (const usage of usages) touch.run({ id: usage.id, at: usage.at, addr: usage.addr });
      }).immediate();
    },
    changeMarker: () => changeMarker.get()!.marker,
    insertUser: (user) =>
      insertUser.run({
        username: user.username,
        password_hash: user.passwordHash,
        roles: user.roles.join(" "),
        created_at: user.createdAt,
      }).changes === 1,
    getUser(username) {
      const row = selectUser.get({ username });
      return row === null ? undefined : toUser(row);
    },
    listUsers: () => selectUsers.all().map(toUser),
    listSigningKeys: () => selectSigningKeys.all().map(toSigningKey),
    rotateSigningKey(candidate, at) {
      db.transaction(() => {
        retireSigningKeys.run({ at, alg: candidate.alg });
        insertSigningKey.run({
          kid: candidate.kid,
          alg: candidate.alg,
          private_jwk: candidate.privateJwk,
          public_jwk: candidate.publicJwk,
          created_at: candidate.createdAt,
        });
        // Keys retired long enough ago that every token they signed has expired are of no use.
        pruneSigningKeys.run({ before: at - RETIRED_KEY_LIFETIME_MS });
      }).immediate();
      return selectSigningKeys.all().map(toSigningKey);
    },
    insertRefreshToken: (token) => insertRefreshRow(token),
    getRefreshToken(id) {
      const row = selectRefresh.get({ id });
      return row === null ? undefined : toRefresh(row);
    },
    consumeRefreshToken(id, next, at, graceMs) {
      return db
        .transaction((): RefreshOutcome => {
          const row = selectRefresh.get({ id });
          if (row === null) return "missing";
          if (row.revoked_at !== null) return "revoked";
          if (row.used_at === null) {
            insertRefreshRow(next);
            markRefreshUsed.run({ id, at, next: next.id });
            return "rotated";
          }
          if (at - row.used_at <= graceMs) {
            insertRefreshRow(next);
            return "grace";
          }
          revokeRefreshFamily.run({ family_id: row.family_id, at });
          return "reused";
        })
        .immediate();
    },
    revokeFamily: (familyId, at) => void revokeRefreshFamily.run({ family_id: familyId, at }),
    revokedFamilies: (since) => selectRevokedFamilies.all({ since }).map((row) => row.family_id),
    revokeAccessToken(jti, expiresAt) {
      db.transaction(() => {
        pruneRevokedJtis.run({ now: Date.now() });
        insertRevokedJti.run({ jti, expires_at: expiresAt });
      }).immediate();
    },
    revokedAccessTokens: (now) => selectRevokedJtis.all({ now }).map((row) => row.jti),
    listBans: (now) =>
      selectActiveBans.all({ now }).map((row) => ({ subject: row.subject, startedAt: row.started_at, until: row.until, level: row.level })),
    startBan(subject, now, baseMs, maxMs, memoryMs) {
      return db
        .transaction((): BanRecord => {
          const previous = selectBan.get({ subject });
          const level = previous !== null && now - previous.until < memoryMs ? previous.level + 1 : 1;
          const until = now + Math.min(maxMs, baseMs * 2 ** (level - 1));
          upsertBan.run({ subject, started_at: now, until, level });
          return { subject, startedAt: now, until, level };
        })
        .immediate();
    },
    clearBans: (now, subject) => endBans.run({ now, subject: subject ?? null }).changes,
    ensureSigningKey(candidate) {
      // Two instances starting at once must agree on one key: check and insert in one write transaction.
      db.transaction(() => {
        if (countLiveSigningKeys.get({ alg: candidate.alg })!.n > 0) return;
        insertSigningKey.run({
          kid: candidate.kid,
          alg: candidate.alg,
          private_jwk: candidate.privateJwk,
          public_jwk: candidate.publicJwk,
          created_at: candidate.createdAt,
        });
      }).immediate();
      return selectSigningKeys.all().map(toSigningKey);
    },
    setPassword: (username, hash, at) => updatePassword.run({ username, hash, at }).changes === 1,
    setDisabled: (username, disabledAt, at) => updateDisabled.run({ username, disabled_at: disabledAt, at }).changes === 1,
    close: () => db.close(false),
  };
}
