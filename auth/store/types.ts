/**
 * What the rest of tokengate sees of persistent state: small interfaces (`KeyStore`, `UserStore`,
 * …) and the records they hold. Callers depend on these, never on SQL; the one implementation is
 * sql-store.ts.
 */
import type { SigningKeyRecord } from "../secrets/jwt.ts";

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

export interface KeyChange {
  readonly name?: string | undefined;
  readonly scopes?: readonly string[] | undefined;
  /** `null`: never expires. */
  readonly expiresAt?: number | null | undefined;
}

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
  /** Changes a key's name, scopes or expiry (only those given); the updated record, or `undefined` for no such key. */
  updateKey(id: string, change: KeyChange): Promise<KeyRecord | undefined>;
  /** Inserts `replacement` and schedules the old key's end, in one transaction. */
  rotateKey(id: string, replacement: NewKey, oldEndsAt: number): Promise<KeyRecord | undefined>;
  /**
   * Stamps each key's last use, keeping a later stamp already stored. Bookkeeping: it does not
   * move the revision. Resolves once the stamps are committed, so a failed batch can be retried.
   */
  recordUsage(usages: readonly KeyUsage[]): Promise<void>;
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
  /** The user must sign in with a passkey: passwords no longer open a browser session. */
  readonly passkeyRequired: boolean;
}

/**
 * A rule the users must keep through a change (an enabled admin remains): judged inside the
 * change's transaction on every user as stored and on the changed one as it would become, so two
 * admins demoting each other at once cannot both pass. false refuses the change.
 */
export type UsersRule = (users: readonly UserRecord[], changed: UserRecord) => boolean;

export interface UserStore {
  /** Inserts a user; false if the username is taken. */
  insertUser(user: Omit<UserRecord, "disabledAt" | "updatedAt" | "passkeyRequired">): Promise<boolean>;
  getUser(username: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  setPassword(username: string, passwordHash: string, at: number): Promise<boolean>;
  /**
   * Disabling also ends the user's browser sessions (enabling never revives them). false for no
   * such user; "refused" (nothing written) when `keeps` says no.
   */
  setDisabled(username: string, disabledAt: number | null, at: number, keeps?: UsersRule): Promise<boolean | "refused">;
  /** Replaces the user's roles; false for no such user, "refused" (nothing written) when `keeps` says no. */
  setRoles(username: string, roles: readonly string[], at: number, keeps?: UsersRule): Promise<boolean | "refused">;
  setPasskeyRequired(username: string, required: boolean, at: number): Promise<boolean>;
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

/** A refresh-token family (one sign-in and its rotations) as lists show it: never a token's hash. */
export interface RefreshFamilyRecord {
  readonly familyId: string;
  readonly subject: string;
  readonly clientId: string;
  /** The newest token's scopes: a refresh may narrow them. */
  readonly scopes: readonly string[];
  /** When the sign-in issued the family's first token. */
  readonly createdAt: number;
  /** When a rotation issued the newest token; `null` while the first one is the newest. */
  readonly lastRotatedAt: number | null;
  /** The newest token's end: without another rotation the family ends then. */
  readonly expiresAt: number;
  readonly revokedAt: number | null;
}

/** Which families a listing holds: one subject's, or one family. */
export interface RefreshFamilyFilter {
  readonly subject?: string | undefined;
  readonly familyId?: string | undefined;
}

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
  /** Revokes every token of a family not revoked yet; how many. */
  revokeFamily(familyId: string, at: number): Promise<number>;
  /** Families whose newest token has not expired at `now`, revoked ones included, oldest sign-in first. */
  listRefreshFamilies(now: number, filter?: RefreshFamilyFilter): Promise<RefreshFamilyRecord[]>;
  /** Revokes every refresh token of a subject (`user:<name>`), so its families and their access tokens end; how many tokens. */
  revokeFamiliesOf(subject: string, at: number): Promise<number>;
  /** Families revoked after `since` (older ones' access tokens have all expired). */
  revokedFamilies(since: number): Promise<string[]>;
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

/** How a browser session was opened. */
export type SessionMethod = "password" | "passkey" | "key";

/** A browser sign-in (the `tgs_…` cookie). What it may do is fixed when it opens. */
export interface SessionRecord {
  /** Public: lists, logs and audit name a session by it. */
  readonly id: string;
  /** SHA-256 of the cookie's secret; the secret itself is never stored. */
  readonly secretHash: Uint8Array;
  /** `user:<name>` or `key:<id>`: who signed in. */
  readonly subject: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly method: SessionMethod;
  readonly createdAt: number;
  /** The last use written down (at most once a minute per session): the idle timeout runs from it. */
  readonly lastSeenAt: number;
  /** The absolute end, fixed at sign-in. */
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  /** Where the sign-in came from (the client address the guard uses). */
  readonly createdAddr: string;
}

export type NewSession = Omit<SessionRecord, "revokedAt">;

export interface SessionStore {
  insertSession(session: NewSession): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Sessions not revoked and not past their absolute end at `now` (idle ones included: the caller judges idleness). */
  listSessions(now: number): Promise<SessionRecord[]>;
  /** Notes a use, keeping a later one already stored. Bookkeeping: the revision does not move. */
  touchSessions(uses: ReadonlyArray<{ readonly id: string; readonly at: number }>): Promise<void>;
  /** Ends one session (unless already ended); the updated record. */
  revokeSession(id: string, at: number): Promise<SessionRecord | undefined>;
  /** Ends every live session of a subject (`user:<name>` or `key:<id>`); how many. */
  revokeSessionsOf(subject: string, at: number): Promise<number>;
  /** Forgets sessions that ended (revoked or past their end) before `before`; bookkeeping. How many. */
  pruneSessions(before: number): Promise<number>;
}

/** A WebAuthn credential of a user. */
export interface PasskeyRecord {
  /** The credential id, base64url. */
  readonly id: string;
  readonly username: string;
  /** COSE public key as the authenticator gave it. */
  readonly publicKey: Uint8Array;
  readonly counter: number;
  readonly transports: readonly string[];
  readonly name: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
}

export type NewPasskey = Omit<PasskeyRecord, "lastUsedAt">;

export interface PasskeyStore {
  /** false if the id is taken (the same authenticator registered twice). */
  insertPasskey(passkey: NewPasskey): Promise<boolean>;
  getPasskey(id: string): Promise<PasskeyRecord | undefined>;
  /** One user's passkeys, or everyone's. */
  listPasskeys(username?: string): Promise<PasskeyRecord[]>;
  /**
   * Stores a use: the new signature counter and the time. Refused (false) when the stored counter
   * moved meanwhile to `counter` or beyond, so two racing sign-ins with one counter value cannot both pass.
   */
  recordPasskeyUse(id: string, counter: number, at: number): Promise<boolean>;
  /**
   * Removes one of `username`'s passkeys, unless it is the last one of a user who must sign in with
   * a passkey (passkey_required): without it they could not sign in to the browser at all. Judged
   * and written in one serialized transaction, so two removals racing for a user's last two
   * passkeys cannot both pass. The only way to remove a passkey, so the rule cannot be skipped.
   */
  removePasskeyUnlessLastRequired(id: string, username: string): Promise<PasskeyRemovalOutcome>;
}

/** "missing": no such passkey of that user; "last_required": kept, the user must use passkeys and has no other. */
export type PasskeyRemovalOutcome = "removed" | "missing" | "last_required";

/** Scopes a program's own routes require (the library), so other processes know them. */
export interface AppScopeStore {
  /** Records scopes (those already known stay as they were). */
  recordAppScopes(scopes: readonly string[], at: number): Promise<void>;
  listAppScopes(): Promise<string[]>;
}

/** Where a device login (RFC 8628) stands: waiting for a person, decided, or redeemed by the device. */
export type DeviceStatus = "pending" | "approved" | "denied" | "consumed";

/** A device waiting for a person (or decided): never its codes, which are stored only as digests. */
export interface DeviceAuthorizationRecord {
  /** Public: audit lines and logs name the login by it. */
  readonly id: string;
  readonly clientId: string;
  /** What the device asked for. */
  readonly scopes: readonly string[];
  /** Where the device asked from (the client address the guard uses). */
  readonly clientAddress: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** Seconds the device must wait between polls; slow_down adds 5. */
  readonly intervalSeconds: number;
  readonly lastPolledAt: number | null;
  readonly status: DeviceStatus;
  /** What the person granted (a narrowing of `scopes`); set on approval. */
  readonly approvedScopes: readonly string[] | null;
  /** Who decided: `user:<name>`, `key:<id>` or `bootstrap`. */
  readonly approver: string | null;
  readonly decidedAt: number | null;
  /** Wrong user codes entered anywhere while this one waited. */
  readonly failures: number;
}

export type NewDeviceAuthorization = Pick<
  DeviceAuthorizationRecord,
  "id" | "clientId" | "scopes" | "clientAddress" | "createdAt" | "expiresAt" | "intervalSeconds"
> & {
  /** SHA-256 of the device code. */
  readonly deviceCodeHash: Uint8Array;
  /** SHA-256 of the normalized user code (`BDWPHQPK`). */
  readonly userCodeHash: Uint8Array;
};

/** How many devices may wait at once, and how long an ended login is kept (so a late poll is told "used", not "unknown"). */
export interface DeviceLimits {
  readonly perAddress: number;
  readonly total: number;
  readonly keepEndedMs: number;
  /** A login with this many wrong user codes counted against it waits no more, and fills no limit. */
  readonly maxFailures: number;
}

/** "started"; "collision" (the user code is taken: draw another); "busy_address" / "busy" (too many waiting). */
export type DeviceStartOutcome = "started" | "collision" | "busy_address" | "busy";

/** A person's decision on a waiting device. */
export type DeviceDecision =
  | { readonly kind: "approve"; readonly scopes: readonly string[]; readonly approver: string; readonly at: number }
  | { readonly kind: "deny"; readonly approver: string; readonly at: number };

/**
 * A device's poll, decided in one transaction: "pending" (its poll time noted), "slow_down" (it
 * polled within its interval: the interval grew to `intervalSeconds`), "approved" (the record, to
 * redeem), or why not.
 */
export type DevicePollOutcome =
  | { readonly kind: "missing" | "wrong_client" | "consumed" | "denied" | "expired" | "pending" }
  | { readonly kind: "slow_down"; readonly intervalSeconds: number }
  | { readonly kind: "approved"; readonly record: DeviceAuthorizationRecord };

/** What an approved device receives, written in the same transaction that spends its code. */
export type DeviceCredentialRecord =
  { readonly kind: "key"; readonly key: NewKey } | { readonly kind: "refresh"; readonly token: NewRefreshToken };

/** Device logins (RFC 8628), shared by every instance. */
export interface DeviceStore {
  /** Stores a new login unless too many wait; forgets logins that ended `keepEndedMs` ago. */
  startDeviceAuthorization(login: NewDeviceAuthorization, limits: DeviceLimits): Promise<DeviceStartOutcome>;
  /**
   * The waiting login a user code names (live, and not burnt by `maxFailures` wrong codes);
   * "ended" for one kept after it was decided, used or expired (not a guess: nothing is counted);
   * else `undefined`, and the miss is counted against every waiting login, in the same transaction.
   */
  findDeviceAuthorization(
    userCodeHash: Uint8Array,
    now: number,
    maxFailures: number,
  ): Promise<DeviceAuthorizationRecord | "ended" | undefined>;
  /** Approves or denies a login that still waits; the decided record, or `undefined` when it no longer waits. */
  decideDeviceAuthorization(id: string, decision: DeviceDecision, maxFailures: number): Promise<DeviceAuthorizationRecord | undefined>;
  /** A device's poll with its code and client id, at `now` (see DevicePollOutcome). */
  pollDeviceAuthorization(deviceCodeHash: Uint8Array, clientId: string, now: number, maxFailures: number): Promise<DevicePollOutcome>;
  /** Spends an approved, live login and stores its credential, in one transaction; false when it was spent or ended meanwhile. */
  redeemDeviceAuthorization(id: string, now: number, credential: DeviceCredentialRecord): Promise<boolean>;
}

/** A value of a copied row: an integer, text, bytes (digests, public keys) or null. */
export type SnapshotValue = string | number | Uint8Array | null;

/** A row by column name, as stored. */
export type SnapshotRow = Readonly<Record<string, SnapshotValue>>;

/**
 * A whole store as stored, for backups and for moving between engines: every table of its schema
 * version (the revision counter aside), secrets only as the store holds them (digests, argon2id
 * hashes; the JWT signing keys whole).
 */
export interface StoreSnapshot {
  readonly schemaVersion: number;
  /** Every table of that version, in the order the migrations made them, with its rows. */
  readonly tables: ReadonlyMap<string, readonly SnapshotRow[]>;
}

/**
 * What an import did: "imported" (rows per table), "not_empty" (the store holds credentials and
 * replacing was not asked for: the tables that hold them, nothing written), "schema_mismatch" (the
 * snapshot's version is not the store's: nothing written).
 */
export type SnapshotImport =
  | { readonly kind: "imported"; readonly counts: ReadonlyMap<string, number> }
  | { readonly kind: "not_empty"; readonly counts: ReadonlyMap<string, number> }
  | { readonly kind: "schema_mismatch"; readonly store: number; readonly snapshot: number };

/** Whole-store copies: backup, restore, moving a store between SQLite and PostgreSQL. */
export interface BackupStore {
  readonly engine: "sqlite" | "postgres";
  /** Every table's rows and the schema version, read in one consistent state while others write. */
  exportSnapshot(): Promise<StoreSnapshot>;
  /** SQLite: a consistent copy of the database into `file` (new or empty); false on an engine without a file. */
  copyDatabase(file: string): Promise<boolean>;
  /** The files the store lives in (SQLite's and its journals'): never a backup's FILE. */
  readonly files: readonly string[];
  /**
   * Loads a snapshot of this store's schema version in one change (running servers reload): into a
   * store without credentials, or, with `replace`, in place of everything it holds.
   */
  importSnapshot(snapshot: StoreSnapshot, replace: boolean): Promise<SnapshotImport>;
}

/** The embedded default implements every store interface over one database file. */
export type Store = BackupStore &
  KeyStore &
  UserStore &
  SigningKeyStore &
  RefreshStore &
  BanStore &
  PairingStore &
  SessionStore &
  PasskeyStore &
  AppScopeStore &
  DeviceStore;

export class StoreError extends Error {
  override readonly name = "StoreError";
}
