/**
 * Backup, restore, export and import of the whole store, once, for both faces. The CLI (`backup`,
 * `restore`, `export`, `import`) uses all of it. The admin API offers none of it yet; an endpoint
 * would answer with `exportStore`'s document and load a request's body with `readBackupSource`
 * and `loadBackup`, rather than write files where the server runs.
 *
 * What a backup holds is what the store holds: digests of keys, sessions and refresh tokens and
 * argon2id hashes of passwords (never a secret itself, nothing decoded or hashed again), and the
 * JWT signing keys whole (they must survive a restore for issued tokens to). Files are written
 * private (mode 0600) under a temporary name and renamed into place, so a backup is whole or absent.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { describeFsError, errorCode } from "../config/bootstrap.ts";
import { readBackup, type BackupFormat } from "../store/backup-files.ts";
import { formatSnapshotJson } from "../store/snapshot-json.ts";
import { countSnapshotRows } from "../store/sql-export.ts";
import type { BackupStore, StoreSnapshot } from "../store/store.ts";
import { AdminProblem } from "./keys.ts";

export type { BackupFormat } from "../store/backup-files.ts";

/** What a written backup holds. */
export interface WrittenBackup extends BackupContent {
  readonly file: string;
}

interface BackupContent {
  readonly format: BackupFormat;
  readonly schemaVersion: number;
  readonly counts: ReadonlyMap<string, number>;
}

/** What a restore loaded. */
export interface RestoredBackup {
  readonly format: BackupFormat;
  readonly schemaVersion: number;
  /** The schema the backup was written at, when older (it was migrated on reading, as a server's start would). */
  readonly upgradedFrom: number | undefined;
  readonly counts: ReadonlyMap<string, number>;
}

/** How people name a table's rows; a table without words here (a newer one) is named as it is. */
const ROW_WORDS: Readonly<Record<string, readonly [one: string, many: string]>> = {
  api_keys: ["API key", "API keys"],
  users: ["user", "users"],
  signing_keys: ["signing key", "signing keys"],
  refresh_tokens: ["refresh token", "refresh tokens"],
  revoked_access_tokens: ["revoked access token", "revoked access tokens"],
  bans: ["ban", "bans"],
  pairing_code: ["pairing code", "pairing codes"],
  sessions: ["session", "sessions"],
  passkeys: ["passkey", "passkeys"],
  app_scopes: ["program scope", "program scopes"],
  device_authorizations: ["device login", "device logins"],
};

/** "3 API keys, 1 user and 2 sessions" (tables without rows left out); "nothing" for none. */
export function describeRowCounts(counts: ReadonlyMap<string, number>): string {
  const parts = [...counts]
    .filter(([, count]) => count > 0)
    .map(([table, count]) => {
      const [one, many] = ROW_WORDS[table] ?? [`${table} row`, `${table} rows`];
      return `${count} ${count === 1 ? one : many}`;
    });
  if (parts.length === 0) return "nothing";
  return parts.length === 1 ? parts[0]! : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
}

/** The whole store as the JSON export (the same document from either engine), read in one consistent state. */
export async function exportStore(store: Pick<BackupStore, "exportSnapshot" | "engine">, now: number): Promise<string> {
  return formatSnapshotJson(await store.exportSnapshot(), { exportedAt: now, engine: store.engine });
}

/** A file-system failure while writing `file`, with what to do about it. */
function describeWriteFailure(file: string, error: unknown): string {
  const dir = dirname(resolve(file));
  switch (errorCode(error)) {
    case "ENOENT":
      return `cannot write ${file}: the directory ${dir} does not exist; create it first, or name a file elsewhere`;
    case "EACCES":
    case "EPERM":
      return `cannot write ${file}: this user may not write in ${dir} (permission denied); run this as a user who may, or name a file elsewhere`;
    case "ENOSPC":
      return `cannot write ${file}: the disk holding ${dir} is full`;
    default:
      return `cannot write ${file}: it ${describeFsError(error)}`;
  }
}

/** `path` with its directory's links resolved (the file itself need not exist), for comparing where two names point. */
function canonicalPath(path: string): string {
  const full = resolve(path);
  try {
    return join(realpathSync(dirname(full)), basename(full));
  } catch {
    return full;
  }
}

const samePath = (a: string, b: string) => canonicalPath(a) === canonicalPath(b);

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const isFsError = (error: unknown) => /^E[A-Z]+$/.test(errorCode(error) ?? "");

/** Flushes a file (or a directory's entries) to the disk, so a backup survives a power cut right after. */
function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Puts the finished temporary file at `file`: replacing one only when forced, atomically either way. */
function placeFile(temp: string, file: string, force: boolean): AdminProblem | undefined {
  if (force) return void renameSync(temp, file);
  try {
    // link() never replaces: a file made at `file` since the first look is not lost.
    linkSync(temp, file);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return new AdminProblem("conflict", `${file} already exists`, "force");
    // A file system without hard links: the first look at `file` has to do.
    if (errorCode(error) !== "EPERM" && errorCode(error) !== "ENOTSUP") throw error;
    renameSync(temp, file);
  }
  return undefined;
}

/**
 * Writes `file` through a private temporary file beside it (mode 0600 from its first byte), which
 * `write` fills; flushed, then moved into place. An existing `file` is replaced only when forced.
 */
async function publishFile<T>(file: string, force: boolean, write: (temp: string) => Promise<T>): Promise<T | AdminProblem> {
  if (isDirectory(file)) {
    return new AdminProblem("invalid", `${file} is a directory; name a file in it, such as ${join(file, "tokengate-backup")}`, "FILE");
  }
  if (!force && existsSync(file)) return new AdminProblem("conflict", `${file} already exists`, "force");
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    closeSync(openSync(temp, "wx", 0o600));
    const written = await write(temp);
    syncPath(temp);
    const problem = placeFile(temp, file, force);
    if (problem !== undefined) return problem;
    syncPath(dirname(resolve(file)));
    return written;
  } catch (error) {
    if (isFsError(error)) return new AdminProblem("invalid", describeWriteFailure(file, error), "FILE");
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
}

/** SQLite's consistent copy into `temp`, read back before it is published: a backup that cannot be restored is never kept. */
async function copyDatabaseInto(store: Pick<BackupStore, "copyDatabase">, temp: string): Promise<BackupContent | undefined> {
  if (!(await store.copyDatabase(temp))) return undefined;
  const reading = await readBackup(readFileSync(temp));
  if (!reading.ok) throw new Error(`the copy just made cannot be read back: it ${reading.problem}`);
  return { format: "sqlite", schemaVersion: reading.snapshot.schemaVersion, counts: countSnapshotRows(reading.snapshot) };
}

export interface BackupOptions {
  /** Replace an existing file. */
  readonly force: boolean;
  /** "native": SQLite's database copy where the store is SQLite, else the JSON export; "json": the export always. */
  readonly format: "native" | "json";
  readonly now: number;
}

/**
 * A consistent backup of the whole store into `file` while servers go on writing: a copy of the
 * SQLite database (VACUUM INTO), or the JSON export (PostgreSQL, or when asked for).
 */
export async function writeBackup(store: BackupStore, file: string, options: BackupOptions): Promise<WrittenBackup | AdminProblem> {
  // Renamed over the live database (or beside it as its journal), the copy would corrupt the store.
  if (store.files.some((own) => samePath(own, file))) {
    return new AdminProblem(
      "invalid",
      `${file} is where the store itself lives; name a file elsewhere, such as tokengate-backup.db`,
      "FILE",
    );
  }
  const written = await publishFile(file, options.force, async (temp) => {
    const copied = options.format === "native" ? await copyDatabaseInto(store, temp) : undefined;
    if (copied !== undefined) return copied;
    const snapshot = await store.exportSnapshot();
    writeFileSync(temp, formatSnapshotJson(snapshot, { exportedAt: options.now, engine: store.engine }));
    const content: BackupContent = { format: "json", schemaVersion: snapshot.schemaVersion, counts: countSnapshotRows(snapshot) };
    return content;
  });
  return written instanceof AdminProblem ? written : { ...written, file };
}

/** A backup read and checked, ready to load: at the latest schema. */
export interface ReadyBackup {
  readonly format: BackupFormat;
  readonly snapshot: StoreSnapshot;
  readonly upgradedFrom: number | undefined;
}

/**
 * Reads a backup or an export, told apart by content, before any store is touched: a damaged
 * file, another program's database or a newer schema is refused here. `name` names the source in
 * problems (a file's path); an older schema is migrated in memory, the file never changed.
 */
export async function readBackupSource(source: { readonly name: string; readonly bytes: Uint8Array }): Promise<ReadyBackup | AdminProblem> {
  const reading = await readBackup(source.bytes);
  if (!reading.ok) return new AdminProblem("invalid", `${source.name} ${reading.problem}`, "FILE");
  return { format: reading.format, snapshot: reading.snapshot, upgradedFrom: reading.upgradedFrom };
}

/**
 * Loads a backup into `store` in one change that running servers reload: into a store without
 * credentials (keys, users, sessions…), or, with `force`, in place of everything it holds.
 */
export async function loadBackup(
  store: Pick<BackupStore, "importSnapshot">,
  backup: ReadyBackup,
  force: boolean,
): Promise<RestoredBackup | AdminProblem> {
  const outcome = await store.importSnapshot(backup.snapshot, force);
  if (outcome.kind === "not_empty") {
    return new AdminProblem("conflict", `the store is not empty: it holds ${describeRowCounts(outcome.counts)}`, "force");
  }
  if (outcome.kind === "schema_mismatch") {
    return new AdminProblem(
      "invalid",
      `the store is at schema ${outcome.store} and the backup at ${outcome.snapshot}; run this with the tokengate release that uses the store`,
    );
  }
  return { format: backup.format, schemaVersion: backup.snapshot.schemaVersion, upgradedFrom: backup.upgradedFrom, counts: outcome.counts };
}
