/**
 * The database schema: one list of migrations for both engines. The few type names that differ
 * (SQLite's STRICT tables, BLOB and INTEGER; PostgreSQL's BYTEA and BIGINT for epoch milliseconds)
 * come from the dialect, so each migration is written once and means the same thing on both.
 */

export type Dialect = "sqlite" | "postgres";

interface Types {
  /** Epoch milliseconds and counters: 64-bit on both. */
  readonly int: string;
  readonly bytes: string;
  /** Table suffix: SQLite's STRICT typing; PostgreSQL is strict already. */
  readonly strict: string;
}

const TYPES: Record<Dialect, Types> = {
  sqlite: { int: "INTEGER", bytes: "BLOB", strict: " STRICT" },
  postgres: { int: "BIGINT", bytes: "BYTEA", strict: "" },
};

interface Migration {
  readonly version: number;
  readonly statements: (t: Types) => readonly string[];
}

/** Append-only. A released migration is never edited; a change is a new version. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: (t) => [
      `CREATE TABLE api_keys (
        id TEXT PRIMARY KEY CHECK (length(id) = 12),
        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        secret_hash ${t.bytes} NOT NULL CHECK (length(secret_hash) = 32),
        scopes TEXT NOT NULL,
        created_at ${t.int} NOT NULL,
        expires_at ${t.int},
        revoked_at ${t.int},
        last_used_at ${t.int},
        last_used_addr TEXT,
        replaced_by TEXT REFERENCES api_keys(id)
      )${t.strict}`,
      "CREATE INDEX api_keys_name ON api_keys(name)",
    ],
  },
  {
    version: 2,
    statements: (t) => [
      `CREATE TABLE users (
        username TEXT PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 64),
        password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
        roles TEXT NOT NULL,
        created_at ${t.int} NOT NULL,
        updated_at ${t.int} NOT NULL,
        disabled_at ${t.int}
      )${t.strict}`,
    ],
  },
  {
    version: 3,
    statements: (t) => [
      `CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL CHECK (alg IN ('EdDSA', 'HS256')),
        private_jwk TEXT NOT NULL,
        public_jwk TEXT,
        created_at ${t.int} NOT NULL,
        retired_at ${t.int}
      )${t.strict}`,
    ],
  },
  {
    version: 4,
    statements: (t) => [
      `CREATE TABLE refresh_tokens (
        id TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        secret_hash ${t.bytes} NOT NULL CHECK (length(secret_hash) = 32),
        subject TEXT NOT NULL,
        scopes TEXT NOT NULL,
        roles TEXT NOT NULL,
        client_id TEXT NOT NULL,
        created_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL,
        used_at ${t.int},
        replaced_by TEXT,
        revoked_at ${t.int}
      )${t.strict}`,
      "CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id)",
      `CREATE TABLE revoked_access_tokens (
        jti TEXT PRIMARY KEY,
        expires_at ${t.int} NOT NULL
      )${t.strict}`,
    ],
  },
  {
    version: 5,
    statements: (t) => [
      `CREATE TABLE bans (
        subject TEXT PRIMARY KEY,
        started_at ${t.int} NOT NULL,
        until ${t.int} NOT NULL,
        level ${t.int} NOT NULL CHECK (level >= 1)
      )${t.strict}`,
    ],
  },
  {
    // One counter that every auth-relevant write moves, in the same transaction: what servers poll
    // (and, on PostgreSQL, what a NOTIFY announces) to know their in-memory view is stale.
    version: 6,
    statements: (t) => [
      `CREATE TABLE store_revision (
        id ${t.int} PRIMARY KEY CHECK (id = 1),
        value ${t.int} NOT NULL
      )${t.strict}`,
      "INSERT INTO store_revision (id, value) VALUES (1, 0)",
    ],
  },
  {
    // First-run pairing: at most one live code (row id 1), stored as a digest, with its own
    // failure counter so guesses from many addresses still burn it.
    version: 7,
    statements: (t) => [
      `CREATE TABLE pairing_code (
        id ${t.int} PRIMARY KEY CHECK (id = 1),
        code_hash ${t.bytes} NOT NULL CHECK (length(code_hash) = 32),
        created_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL,
        failures ${t.int} NOT NULL,
        used_at ${t.int}
      )${t.strict}`,
    ],
  },
  {
    // Browser sign-in: a session cookie's digest, whom it acts for and what it may do (fixed at
    // sign-in), its absolute end, and its last use (bookkeeping, written at most once a minute).
    // Passkeys (WebAuthn credentials) per user, and whether a user must sign in with one.
    version: 8,
    statements: (t) => [
      `CREATE TABLE sessions (
        id TEXT PRIMARY KEY CHECK (length(id) = 16),
        secret_hash ${t.bytes} NOT NULL CHECK (length(secret_hash) = 32),
        subject TEXT NOT NULL,
        scopes TEXT NOT NULL,
        roles TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('password', 'passkey', 'key')),
        created_at ${t.int} NOT NULL,
        last_seen_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL,
        revoked_at ${t.int},
        created_addr TEXT NOT NULL
      )${t.strict}`,
      "CREATE INDEX sessions_subject ON sessions(subject)",
      // Every reload reads the live ones: ended rows stay out of that scan.
      "CREATE INDEX sessions_live ON sessions(revoked_at, expires_at)",
      `CREATE TABLE passkeys (
        id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 1400),
        username TEXT NOT NULL REFERENCES users(username),
        public_key ${t.bytes} NOT NULL,
        counter ${t.int} NOT NULL CHECK (counter >= 0),
        transports TEXT NOT NULL,
        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        created_at ${t.int} NOT NULL,
        last_used_at ${t.int}
      )${t.strict}`,
      "CREATE INDEX passkeys_username ON passkeys(username)",
      `ALTER TABLE users ADD COLUMN passkey_required ${t.int} NOT NULL DEFAULT 0`,
    ],
  },
  {
    // Scopes a program's own routes require (tokengate as a library), known to the CLI too.
    version: 9,
    statements: (t) => [
      `CREATE TABLE app_scopes (
        scope TEXT PRIMARY KEY CHECK (length(scope) BETWEEN 1 AND 64),
        added_at ${t.int} NOT NULL
      )${t.strict}`,
    ],
  },
  {
    // Device login (RFC 8628): one row per device waiting for a person, shared by every instance.
    // The device code and the user code only as SHA-256; a wrong user code counts against every
    // waiting row (failures); last_polled_at and interval_s decide slow_down in one transaction.
    version: 10,
    statements: (t) => [
      `CREATE TABLE device_authorizations (
        id TEXT PRIMARY KEY CHECK (length(id) = 16),
        device_code_hash ${t.bytes} NOT NULL UNIQUE CHECK (length(device_code_hash) = 32),
        user_code_hash ${t.bytes} NOT NULL CHECK (length(user_code_hash) = 32),
        client_id TEXT NOT NULL CHECK (length(client_id) BETWEEN 1 AND 64),
        scopes TEXT NOT NULL,
        client_addr TEXT NOT NULL,
        created_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL,
        interval_s ${t.int} NOT NULL CHECK (interval_s >= 1),
        last_polled_at ${t.int},
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
        approved_scopes TEXT,
        approver TEXT,
        decided_at ${t.int},
        consumed_at ${t.int},
        failures ${t.int} NOT NULL CHECK (failures >= 0)
      )${t.strict}`,
      "CREATE INDEX device_authorizations_user_code ON device_authorizations(user_code_hash)",
      "CREATE INDEX device_authorizations_live ON device_authorizations(status, expires_at)",
    ],
  },
];

export const LATEST_SCHEMA = MIGRATIONS.at(-1)!.version;

/** The statements that take a database from `current` to the latest version, one group per version. */
export function pendingMigrations(dialect: Dialect, current: number): Array<{ version: number; statements: readonly string[] }> {
  return MIGRATIONS.filter((migration) => migration.version > current).map((migration) => ({
    version: migration.version,
    statements: migration.statements(TYPES[dialect]),
  }));
}
