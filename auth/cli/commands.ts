/**
 * `tokengate …` (or `bun run cli …` from a checkout): manage API keys in the same database the server uses. The running server sees
 * every change within a poll interval, without a restart. Exit codes are for scripts:
 * 0 ok, 1 failure, 2 usage error, 3 no such key, 4 key not in a state that allows the action.
 */
import { parseArgs } from "node:util";
import {
  DEFAULT_KEY_SCOPES,
  generateApiKey,
  ID_LENGTH,
  judgeDuration,
  KEY_LIFETIME,
  keyState,
  parseApiKey,
  parseDuration,
  parseScopes,
  ROTATION_OVERLAP,
  type DurationRange,
} from "../secrets/keys.ts";
import { generateSigningKey, usableKeys, type JwtAlgorithm, type SigningKeyRecord } from "../secrets/jwt.ts";
import { checkPassword, hashPassword, preparePassword } from "../secrets/passwords.ts";
import type { KeyRecord, KeyStore, NewKey, Store, UserRecord } from "../store/store.ts";
import { scopesForRoles, USERNAME, type RoleScopes } from "../authn/users.ts";
import { digestToken, generateToken } from "../secrets/tokens.ts";
import { describePairingCode, issuePairingCode } from "../oauth/pairing.ts";
import { formatDoctorReport, type CheckResult } from "./doctor.ts";
import { findUnknownScopes } from "../http/scopes.ts";

export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, conflict: 4 } as const;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export interface StoreOptions {
  /** Make the store if it does not exist (`--create-store`); otherwise a missing store is an error. */
  readonly create: boolean;
}

export interface CliContext {
  readonly io: CliIo;
  /** Opened only by commands that need it, so `--help` and `token new` work without a data dir. */
  openStore(options?: StoreOptions): Promise<Store>;
  readonly now: () => number;
  /** Role → scopes, as the server is configured (ROLE_SCOPES). */
  readonly roleScopes: RoleScopes;
  /** Scopes a new key may be given without --allow-new-scope (see listKnownScopes). */
  readonly knownScopes: readonly string[];
  /**
   * Reads a password from a no-echo prompt or the first line of stdin; never from argv.
   * `undefined` when nothing was given (end of input).
   */
  readPassword(prompt: string): Promise<string | undefined>;
  /** Whether passwords are typed at a terminal (then asked twice) rather than piped in. */
  readonly typedPasswords: boolean;
  /** JWT_ALG, for new signing keys. */
  readonly jwtAlg: JwtAlgorithm;
  /** How the user started us, for help and hints: `tokengate` (the binary) or `bun run cli`. */
  readonly program: string;
  /** Where a browser reaches the server's console page (from HOST, PORT and this machine's addresses). */
  readonly consoleUrls: () => readonly string[];
  /** Runs every doctor check against the environment the command was started with. */
  examine(): Promise<CheckResult[]>;
}

/** Help and hints are written with this name and shown with `CliContext.program` in its place. */
const PROGRAM = "bun run cli";

const HELP: Record<string, string> = {
  main: `Usage: bun run cli <command> [options]

Commands:
  keys create --name NAME [--scopes a,b] [--expires 30d] [--json]   create a key (printed once)
  keys list [--json]                                                 list keys and their state
  keys revoke ID [--json]                                            revoke a key now
  keys rotate ID [--overlap 1h] [--expires 30d] [--json]             replace a key, old one works for the overlap
  token new                                                          print a fresh secret for AUTH_TOKEN
  users add NAME --role ROLE [--role ROLE]                           add a user (password from prompt or stdin)
  users list [--json]                                                list users, roles and scopes
  users passwd NAME                                                  set a new password (prompt or stdin)
  users disable NAME | users enable NAME                             stop or allow a user's sign-in
  bans list [--json]                                                 addresses and key ids banned for failed attempts
  bans clear [SUBJECT]                                               lift all bans, or one (addr:1.2.3.4, key:<id>)
  signing-keys list [--json]                                         JWT signing keys (kid, alg, state)
  signing-keys rotate                                                new signing key; old ones verify until their tokens expire
  pair [--json]                                                      one-time code that pairs a browser on a new device (first admin key)
  doctor [--json]                                                    check configuration, files, TLS, clock and addresses; explain problems

Every command takes --help. The store is STORE_URL (a PostgreSQL URL), or else DATA_DIR/tokengate.db (DATA_DIR defaults to ./data).
The server creates that store on its first start; commands refuse a SQLite store that does not exist
(keys create and users add make one on purpose with --create-store).
Exit codes: 0 ok, 1 failure, 2 usage error, 3 no such key, 4 key revoked or expired.
Output cut short by a closed pipe (e.g. | head) ends the command quietly with exit code 141.
`,
  "keys create": `Usage: bun run cli keys create --name NAME [--scopes a,b] [--expires DURATION] [--json]

Creates an API key and prints it once; only its hash is stored.
  --name NAME        what the key is for, e.g. "kitchen lamp" (required)
  --scopes a,b       scopes granted (default: ${DEFAULT_KEY_SCOPES.join(",")}; * grants all). Each must be
                     one a route requires or ROLE_SCOPES names, so a typo cannot make a useless key
  --allow-new-scope  accept scopes nothing requires yet (for routes still to come)
  --expires DURATION lifetime ${KEY_LIFETIME.words}, such as 90s, 15m, 12h, 30d, 2w (default: never expires)
  --json             print a JSON object instead of text
  --create-store     create the store if it does not exist yet (normally the server's first start does)
`,
  "keys list": `Usage: bun run cli keys list [--json]

Lists every key: id, name, scopes, created, expires, last used, state (active, expired, revoked).
Secrets are never shown; they are not stored. A stored time that is not a valid date is shown
as "invalid date" (also in --json).
`,
  "keys revoke": `Usage: bun run cli keys revoke ID [--json]

Revokes the key with this id (see keys list). Open WebSockets that use it are closed with 4403
and HTTP requests get 401 within a second.
`,
  "keys rotate": `Usage: bun run cli keys rotate ID [--overlap DURATION] [--expires DURATION] [--json]

Creates a replacement key with the same name and scopes and prints it once. The old key keeps
working for the overlap (default 0s: it stops at once), then counts as revoked.
  --overlap DURATION  how long the old key stays valid, ${ROTATION_OVERLAP.words}, e.g. 1h
  --expires DURATION  lifetime of the new key, ${KEY_LIFETIME.words} (default: the old key's lifetime, or never)
`,
  "users add": `Usage: bun run cli users add NAME --role ROLE [--role ROLE] [--create-store]

Adds a user who can sign in with a password (Basic auth, when BASIC_AUTH=true). The password is
read from a prompt without echo (asked twice), or from the first line of standard input when it is
not a terminal (e.g. printf '%s\\n' "$PW" | bun run cli users add alice --role viewer). Never from the
command line. Roles are those of ROLE_SCOPES (default: admin=*, viewer=data:read,ws:connect).
  --create-store     create the store if it does not exist yet (normally the server's first start does)
`,
  "users list": `Usage: bun run cli users list [--json]

Lists users with their roles, the scopes those roles grant, and whether they are disabled.
`,
  "users passwd": `Usage: bun run cli users passwd NAME

Sets a new password, read from a prompt without echo (asked twice) or from the first line of
standard input.
`,
  "users disable": `Usage: bun run cli users disable NAME

Stops the user from signing in; takes effect on the next request.
`,
  "users enable": `Usage: bun run cli users enable NAME

Allows a disabled user to sign in again.
`,
  "bans list": `Usage: bun run cli bans list [--json]

Lists active bans: the subject (addr:<ip> or key:<id>), since when, until when, and the level
(each ban soon after the previous one lasts twice as long, up to an hour).
`,
  "bans clear": `Usage: bun run cli bans clear [SUBJECT]

Lifts every active ban, or only SUBJECT's (as shown by bans list, e.g. addr:192.168.1.50).
Running servers follow within a second.
`,
  "signing-keys list": `Usage: bun run cli signing-keys list [--json]

Lists the JWT signing keys: kid, algorithm, created, and whether each signs, only verifies
(retired, still in the JWKS until its last tokens expire), or is past use.
`,
  "signing-keys rotate": `Usage: bun run cli signing-keys rotate

Generates a new signing key for JWT_ALG (default EdDSA) and retires the current one. Running
servers switch within a second; tokens signed by the old key stay valid until they expire, and
the old key stays in /.well-known/jwks.json until then.
`,
  pair: `Usage: bun run cli pair [--json]

On a device with no API keys and no users yet, prints a one-time 6-digit pairing code. Open the
server's page in a browser on your network and enter the code there: the browser receives the
first admin key (scopes *), and pairing is over for good. The code works once, expires after
5 minutes, and dies after 5 wrong tries; a new \`pair\` replaces the previous code.
Exit code 4 when the device already has credentials.
`,
  doctor: `Usage: bun run cli doctor [--json]

Checks what tokengate needs on this device and explains any problem in plain words: the
configuration (the server's environment variables), the data directory and its permissions, the
store, TLS certificate and key, the clock (a device without a real-time clock may boot in 1970),
and the addresses the server would listen on. Exit code 0 when nothing failed, 1 otherwise.
Run it with the same environment as the server (for systemd: see the README).
`,
  "token new": `Usage: bun run cli token new

Prints a fresh 256-bit secret suitable for AUTH_TOKEN (base64url, 43 characters).
`,
};

class UsageError extends Error {}

/**
 * A stored time for JSON: ISO 8601, `null` for "never", or "invalid date". Stored times are only as
 * sane as whatever wrote them (an older version, a hand edit, another engine), and one bad row
 * must not take the whole listing down with a RangeError.
 */
function isoOrNull(ms: number | null): string | null {
  if (ms === null) return null;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? "invalid date" : date.toISOString();
}

/** A stored time for a table: `2026-05-01 12:00Z`, "never" or "invalid date". */
function iso(ms: number | null): string {
  return isoOrNull(ms)?.replace(/:\d\d\.\d{3}Z$/, "Z").replace("T", " ") ?? "never";
}

function keyJson(record: KeyRecord, now: number) {
  return {
    id: record.id,
    name: record.name,
    scopes: record.scopes,
    created_at: isoOrNull(record.createdAt),
    expires_at: isoOrNull(record.expiresAt),
    revoked_at: isoOrNull(record.revokedAt),
    last_used_at: isoOrNull(record.lastUsedAt),
    last_used_addr: record.lastUsedAddr,
    replaced_by: record.replacedBy,
    state: keyState(record, now),
  };
}

/** Accepts `3f9a0c12be45` or `tg_3f9a0c12be45`; refuses a whole key, which would land in shell history. */
function parseKeyId(text: string | undefined): string {
  if (text === undefined) throw new UsageError("give the key id (see `keys list`)");
  if (parseApiKey(text) !== undefined) {
    throw new UsageError("pass the key id (see `keys list`), not the key itself: keys do not belong in shell history");
  }
  const id = text.startsWith("tg_") ? text.slice(3) : text;
  if (!new RegExp(`^[0-9a-f]{${ID_LENGTH}}$`).test(id)) throw new UsageError(`a key id is ${ID_LENGTH} hex characters`);
  return id;
}

/** Opens the store for one use and always closes it, so the CLI never leaves a connection behind. */
async function withStore<T>(openStore: () => Promise<Store>, use: (store: Store) => T | Promise<T>): Promise<T> {
  const store = await openStore();
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

async function findKey(store: KeyStore, id: string, io: CliIo): Promise<KeyRecord | undefined> {
  const key = await store.getKey(id);
  if (key === undefined) io.err(`No key with id ${id}. See: bun run cli keys list\n`);
  return key;
}

/** A duration flag, judged before anything is written: out of range is a usage error naming the range. */
function duration(flag: string, text: string | undefined, range: DurationRange): number | undefined {
  if (text === undefined) return undefined;
  // A negative duration is well-formed but out of range: say the range, not the format.
  const negative = /^-\d+[smhdw]$/.test(text.trim());
  const ms = negative ? Number.NEGATIVE_INFINITY : parseDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} takes a duration ${range.words}, such as 90s, 15m, 12h, 30d or 2w`);
  const problem = judgeDuration(ms, range);
  if (problem !== undefined) throw new UsageError(`${flag} ${text.trim()} is out of range: it ${problem}`);
  return ms;
}

/** A rotated key inherits the old lifetime; one this version would refuse (an old typo) is not copied. */
function inheritedLifetime(old: KeyRecord): number | undefined {
  if (old.expiresAt === null) return undefined;
  const lifetime = old.expiresAt - old.createdAt;
  const problem = judgeDuration(lifetime, KEY_LIFETIME);
  if (problem !== undefined) {
    throw new UsageError(`key ${old.id}'s stored lifetime is out of range (a key's lifetime ${problem}), so it is not copied; give the new key's lifetime with --expires`);
  }
  return lifetime;
}

/** Scopes a new key gets: the default, or --scopes checked for shape and, unless allowed, against the known set. */
function chooseScopes(text: string | undefined, allowNew: boolean, known: readonly string[]): string[] {
  if (text === undefined) return [...DEFAULT_KEY_SCOPES];
  const scopes = parseScopes(text);
  if (scopes === undefined) throw new UsageError("--scopes takes scopes such as data:read,ws:connect (lower case), or *");
  const unknown = findUnknownScopes(scopes, allowNew ? scopes : known);
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown scope ${unknown.join(", ")}: no route requires it and ROLE_SCOPES does not name it. Known scopes: ${known.join(" ")}. ` +
        "Add --allow-new-scope if it is meant for a route still to come",
    );
  }
  return scopes;
}

function newKeyFrom(name: string, scopes: readonly string[], expiresInMs: number | undefined, now: number) {
  const key = generateApiKey();
  const record: NewKey = {
    id: key.id,
    name,
    scopes,
    secretHash: digestToken(key.secret),
    createdAt: now,
    expiresAt: expiresInMs === undefined ? null : now + expiresInMs,
  };
  return { token: key.token, record };
}

function printNewKey(io: CliIo, verb: string, record: NewKey, token: string, json: boolean): void {
  if (json) {
    io.out(`${JSON.stringify({ id: record.id, name: record.name, scopes: record.scopes, created_at: isoOrNull(record.createdAt), expires_at: isoOrNull(record.expiresAt), key: token })}\n`);
    return;
  }
  io.out(
    `${verb} API key ${record.id} "${record.name}"\n` +
      `  scopes:  ${record.scopes.join(" ")}\n` +
      `  expires: ${iso(record.expiresAt)}\n` +
      `The key is shown only this once; store it now:\n${token}\n`,
  );
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()).join("\n") + "\n";
}

type Handler = (args: string[], context: CliContext) => number | Promise<number>;

function parseUsername(text: string | undefined): string {
  if (text === undefined) throw new UsageError("give the username");
  if (!USERNAME.test(text)) throw new UsageError("a username is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");
  return text;
}


const NO_PASSWORD =
  "no password given: type it at the prompt, or give it as the first line of standard input, e.g. printf '%s\\n' \"$PW\" | bun run cli users …";

/** The new password, prepared and checked; at a terminal it is typed twice, since nobody sees it. */
async function readNewPassword(context: CliContext): Promise<string> {
  const typed = await context.readPassword("New password: ");
  if (typed === undefined || typed === "") throw new UsageError(NO_PASSWORD);
  const password = preparePassword(typed);
  const problem = checkPassword(password);
  if (problem !== undefined) throw new UsageError(`the password ${problem}`);
  if (context.typedPasswords) {
    const again = await context.readPassword("Repeat password: ");
    if (again === undefined || preparePassword(again) !== password) throw new UsageError("the two passwords differ; nothing was changed");
  }
  return password;
}

function userJson(user: UserRecord, roleScopes: RoleScopes) {
  return {
    username: user.username,
    roles: user.roles,
    scopes: scopesForRoles(user.roles, roleScopes),
    created_at: isoOrNull(user.createdAt),
    disabled: user.disabledAt !== null,
  };
}

function setDisabled(disabled: boolean): Handler {
  return (args, { io, openStore, now }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    const username = parseUsername(positionals[0]);
    return withStore(openStore, async (store) => {
      if (!(await store.setDisabled(username, disabled ? now() : null, now()))) {
        io.err(`No user named ${username}. See: bun run cli users list\n`);
        return EXIT.notFound;
      }
      io.out(`User ${username} ${disabled ? "disabled" : "enabled"}.\n`);
      return EXIT.ok;
    });
  };
}

const commands: Record<string, Handler> = {
  "keys create": async (args, { io, openStore, now, knownScopes }) => {
    const { values } = parseArgs({
      args,
      options: {
        name: { type: "string" },
        scopes: { type: "string" },
        expires: { type: "string" },
        json: { type: "boolean", default: false },
        "allow-new-scope": { type: "boolean", default: false },
        "create-store": { type: "boolean", default: false },
      },
    });
    const name = values.name?.trim();
    if (name === undefined || name === "") throw new UsageError("--name is required, e.g. --name \"kitchen lamp\"");
    if (name.length > 200 || /[\x00-\x1f\x7f]/.test(name)) throw new UsageError("--name must be 1 to 200 characters without control characters");
    const scopes = chooseScopes(values.scopes, values["allow-new-scope"], knownScopes);
    const { token, record } = newKeyFrom(name, scopes, duration("--expires", values.expires, KEY_LIFETIME), now());
    await withStore(() => openStore({ create: values["create-store"] }), (store) => store.insertKey(record));
    printNewKey(io, "Created", record, token, values.json);
    return EXIT.ok;
  },

  "keys list": async (args, { io, openStore, now }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const keys: KeyRecord[] = await withStore(openStore, (store) => store.listKeys());
    const at = now();
    if (values.json) {
      io.out(`${JSON.stringify(keys.map((key) => keyJson(key, at)))}\n`);
      return EXIT.ok;
    }
    if (keys.length === 0) {
      io.out("No API keys yet. Create one with: bun run cli keys create --name NAME\n");
      return EXIT.ok;
    }
    const rows = [["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "STATE"]];
    for (const key of keys) {
      const lastUsed = key.lastUsedAt === null ? "never" : `${iso(key.lastUsedAt)} from ${key.lastUsedAddr ?? "?"}`;
      const ends = key.revokedAt !== null && key.revokedAt > at ? `${iso(key.revokedAt)} (rotated)` : iso(key.expiresAt);
      rows.push([key.id, key.name, key.scopes.join(","), iso(key.createdAt), ends, lastUsed, keyState(key, at)]);
    }
    io.out(table(rows));
    return EXIT.ok;
  },

  "keys revoke": (args, { io, openStore, now }) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean", default: false } } });
    if (positionals.length > 1) throw new UsageError("revoke takes one key id");
    const id = parseKeyId(positionals[0]);
    return withStore(openStore, async (store) => {
      const at = now();
      const before = await findKey(store, id, io);
      if (before === undefined) return EXIT.notFound;
      if (keyState(before, at) === "revoked") {
        io.err(`Key ${id} ("${before.name}") was already revoked at ${iso(before.revokedAt)}.\n`);
        return EXIT.conflict;
      }
      const after = (await store.revokeKey(id, at))!;
      if (values.json) io.out(`${JSON.stringify(keyJson(after, at))}\n`);
      else io.out(`Revoked key ${id} ("${after.name}"). Open WebSockets using it are being closed.\n`);
      return EXIT.ok;
    });
  },

  "keys rotate": (args, { io, openStore, now }) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { overlap: { type: "string" }, expires: { type: "string" }, json: { type: "boolean", default: false } },
    });
    if (positionals.length > 1) throw new UsageError("rotate takes one key id");
    const id = parseKeyId(positionals[0]);
    const overlap = duration("--overlap", values.overlap, ROTATION_OVERLAP) ?? 0;
    const expires = duration("--expires", values.expires, KEY_LIFETIME);
    return withStore(openStore, async (store) => {
      const at = now();
      const old = await findKey(store, id, io);
      if (old === undefined) return EXIT.notFound;
      const state = keyState(old, at);
      if (state !== "active") {
        io.err(`Key ${id} ("${old.name}") is ${state}; create a new key instead.\n`);
        return EXIT.conflict;
      }
      const lifetime = expires ?? inheritedLifetime(old);
      const { token, record } = newKeyFrom(old.name, old.scopes, lifetime, at);
      await store.rotateKey(id, record, at + overlap);
      printNewKey(io, "Rotated: new", record, token, values.json);
      if (!values.json) io.out(`Old key ${id} ${overlap === 0 ? "stopped working now" : `keeps working until ${iso(at + overlap)}`}.\n`);
      return EXIT.ok;
    });
  },

  "users add": async (args, context) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { role: { type: "string", multiple: true }, "create-store": { type: "boolean", default: false } },
    });
    const username = parseUsername(positionals[0]);
    const roles = [...new Set(values.role ?? [])];
    if (roles.length === 0) throw new UsageError(`give at least one --role (${[...context.roleScopes.keys()].join(", ")})`);
    const unknown = roles.filter((role) => !context.roleScopes.has(role));
    if (unknown.length > 0) {
      throw new UsageError(`unknown role ${unknown.join(", ")}; ROLE_SCOPES defines ${[...context.roleScopes.keys()].join(", ")}`);
    }
    // The store is opened before the prompt: a missing store is reported before anyone types a password.
    const added = await withStore(
      () => context.openStore({ create: values["create-store"] }),
      async (store) => {
        const passwordHash = await hashPassword(await readNewPassword(context));
        return store.insertUser({ username, passwordHash, roles, createdAt: context.now() });
      },
    );
    if (!added) {
      context.io.err(`A user named ${username} exists already; use users passwd to change the password.\n`);
      return EXIT.conflict;
    }
    context.io.out(`Added user ${username} (roles: ${roles.join(" ")}; scopes: ${scopesForRoles(roles, context.roleScopes).join(" ")}).\n`);
    return EXIT.ok;
  },

  "users list": async (args, { io, openStore, roleScopes }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const users: UserRecord[] = await withStore(openStore, (store) => store.listUsers());
    if (values.json) {
      io.out(`${JSON.stringify(users.map((user) => userJson(user, roleScopes)))}\n`);
    } else if (users.length === 0) {
      io.out("No users yet. Add one with: bun run cli users add NAME --role admin\n");
    } else {
      const rows = [["USERNAME", "ROLES", "SCOPES", "CREATED", "STATE"]];
      for (const user of users) {
        rows.push([user.username, user.roles.join(","), scopesForRoles(user.roles, roleScopes).join(","), iso(user.createdAt), user.disabledAt === null ? "active" : "disabled"]);
      }
      io.out(table(rows));
    }
    return EXIT.ok;
  },

  "users passwd": async (args, context) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    const username = parseUsername(positionals[0]);
    return withStore(context.openStore, async (store) => {
      if ((await store.getUser(username)) === undefined) {
        context.io.err(`No user named ${username}. See: bun run cli users list\n`);
        return EXIT.notFound;
      }
      const passwordHash = await hashPassword(await readNewPassword(context));
      await store.setPassword(username, passwordHash, context.now());
      context.io.out(`Password of ${username} changed.\n`);
      return EXIT.ok;
    });
  },

  "users disable": setDisabled(true),
  "users enable": setDisabled(false),

  "bans list": async (args, { io, openStore, now }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const bans = await withStore(openStore, (store) => store.listBans(now()));
    if (values.json) {
      io.out(`${JSON.stringify(bans.map((ban) => ({ subject: ban.subject, started_at: isoOrNull(ban.startedAt), until: isoOrNull(ban.until), level: ban.level })))}\n`);
    } else if (bans.length === 0) {
      io.out("No active bans.\n");
    } else {
      io.out(table([["SUBJECT", "SINCE", "UNTIL", "LEVEL"], ...bans.map((ban) => [ban.subject, iso(ban.startedAt), iso(ban.until), String(ban.level)])]));
    }
    return EXIT.ok;
  },

  "bans clear": async (args, { io, openStore, now }) => {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
    if (positionals.length > 1) throw new UsageError("bans clear takes at most one subject");
    const subject = positionals[0];
    if (subject !== undefined && !/^(?:addr:[0-9a-f.:]+(?:\/64)?|key:[0-9a-f]{12}|user:[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$/.test(subject)) {
      throw new UsageError("a subject looks like addr:192.168.1.50, addr:2001:db8:1:2::/64, key:3f9a0c12be45 or user:alice (see bans list)");
    }
    const cleared = await withStore(openStore, (store) => store.clearBans(now(), subject));
    if (subject !== undefined && cleared === 0) {
      io.err(`No active ban for ${subject}.\n`);
      return EXIT.notFound;
    }
    io.out(`Lifted ${cleared} ban${cleared === 1 ? "" : "s"}.\n`);
    return EXIT.ok;
  },

  "signing-keys list": async (args, { io, openStore, now }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const keys: SigningKeyRecord[] = await withStore(openStore, (store) => store.listSigningKeys());
    const at = now();
    const state = (key: SigningKeyRecord) =>
      key.retiredAt === null ? "signing" : usableKeys([key], key.alg, at).length > 0 ? "verifying" : "expired";
    if (values.json) {
      io.out(`${JSON.stringify(keys.map((key) => ({ kid: key.kid, alg: key.alg, created_at: isoOrNull(key.createdAt), retired_at: isoOrNull(key.retiredAt), state: state(key) })))}\n`);
    } else if (keys.length === 0) {
      io.out("No signing keys yet; the server creates one on its first start.\n");
    } else {
      io.out(table([["KID", "ALG", "CREATED", "RETIRED", "STATE"], ...keys.map((key) => [key.kid, key.alg, iso(key.createdAt), key.retiredAt === null ? "-" : iso(key.retiredAt), state(key)])]));
    }
    return EXIT.ok;
  },

  "signing-keys rotate": async (args, { io, openStore, now, jwtAlg }) => {
    parseArgs({ args, options: {} });
    const candidate = await generateSigningKey(jwtAlg, now());
    await withStore(openStore, (store) => store.rotateSigningKey(candidate, now()));
    io.out(`New ${jwtAlg} signing key ${candidate.kid}; the previous one only verifies from now on.\n`);
    return EXIT.ok;
  },

  pair: async (args, { io, openStore, now, consoleUrls }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const issued = await withStore(openStore, (store) => issuePairingCode(store, now()));
    if (issued === undefined) {
      io.err("This device already has API keys or users, so pairing is over. Create more keys with: bun run cli keys create --name NAME\n");
      return EXIT.conflict;
    }
    if (values.json) {
      io.out(`${JSON.stringify({ code: issued.code, expires_at: isoOrNull(issued.expiresAt), console: consoleUrls() })}\n`);
    } else {
      io.out(describePairingCode(issued, consoleUrls()).trimStart());
    }
    return EXIT.ok;
  },

  doctor: async (args, { io, examine }) => {
    const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
    const results = await examine();
    io.out(values.json ? `${JSON.stringify(results)}\n` : formatDoctorReport(results));
    return results.some((result) => result.status === "fail") ? EXIT.failure : EXIT.ok;
  },

  "token new": (args, { io }) => {
    parseArgs({ args, options: {} });
    io.out(`${generateToken()}\n`);
    return EXIT.ok;
  },
};

export async function runCli(argv: readonly string[], given: CliContext): Promise<number> {
  const named = (text: string) => text.replaceAll(PROGRAM, given.program);
  const context: CliContext = { ...given, io: { out: (text) => given.io.out(named(text)), err: (text) => given.io.err(named(text)) } };
  const words = argv.filter((arg) => !arg.startsWith("-"));
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  // One-word commands (pair, doctor) and two-word ones (keys create).
  const name = commands[words[0] ?? ""] !== undefined ? words[0]! : words.length >= 2 ? `${words[0]} ${words[1]}` : words[0] ?? "";
  const handler = commands[name];
  if (handler === undefined) {
    if (wantsHelp || name === "" || name === "help") {
      context.io.out(HELP.main!);
      return wantsHelp || name === "help" ? EXIT.ok : EXIT.usage;
    }
    context.io.err(`Unknown command: ${name}\n\n${HELP.main}`);
    return EXIT.usage;
  }
  if (wantsHelp) {
    context.io.out(HELP[name]!);
    return EXIT.ok;
  }
  const rest = argv.slice(argv.indexOf(words[name.includes(" ") ? 1 : 0]!) + 1);
  try {
    return await handler(rest, context);
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"))) {
      context.io.err(`${name}: ${error.message}\n\n${HELP[name]}`);
      return EXIT.usage;
    }
    context.io.err(`${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failure;
  }
}
