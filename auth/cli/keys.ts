/**
 * `keys create | list | revoke | rotate`: API keys in the store the server reads. Only a key's
 * hash is stored, so a new key is printed once and never again.
 */
import { parseArgs } from "node:util";
import {
  DEFAULT_KEY_SCOPES,
  ID_LENGTH,
  judgeDuration,
  KEY_LIFETIME,
  keyState,
  parseApiKey,
  parseDuration,
  parseScopes,
  ROTATION_OVERLAP,
  type DurationRange,
  UNSHOWABLE_IN_NAME,
} from "../secrets/keys.ts";
import type { KeyRecord, NewKey } from "../store/store.ts";
import { AdminProblem, createKey, describeKey, revokeKey, rotateKey } from "../admin/keys.ts";
import { findUnknownScopes } from "../http/scopes.ts";
import {
  EXIT,
  iso,
  isoOrNull,
  parseJsonFlag,
  printListing,
  UsageError,
  withStore,
  type CliIo,
  type Command,
  type CommandTable,
} from "./shared.ts";

function keyRow(key: KeyRecord, now: number): string[] {
  const lastUsed = key.lastUsedAt === null ? "never" : `${iso(key.lastUsedAt)} from ${key.lastUsedAddr ?? "?"}`;
  const ends = key.revokedAt !== null && key.revokedAt > now ? `${iso(key.revokedAt)} (rotated)` : iso(key.expiresAt);
  return [key.id, key.name, key.scopes.join(","), iso(key.createdAt), ends, lastUsed, keyState(key, now)];
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

/** The one key id that `keys revoke` and `keys rotate` take. */
function parseOneKeyId(positionals: readonly string[], verb: string): string {
  if (positionals.length > 1) throw new UsageError(`${verb} takes one key id`);
  return parseKeyId(positionals[0]);
}

/** A duration flag, judged before anything is written: out of range is a usage error naming the range. */
function parseDurationFlag(flag: string, text: string | undefined, range: DurationRange): number | undefined {
  if (text === undefined) return undefined;
  // A negative duration is well-formed but out of range: say the range, not the format.
  const negative = /^-\d+[smhdw]$/.test(text.trim());
  const ms = negative ? Number.NEGATIVE_INFINITY : parseDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} takes a duration ${range.words}, such as 90s, 15m, 12h, 30d or 2w`);
  const problem = judgeDuration(ms, range);
  if (problem !== undefined) throw new UsageError(`${flag} ${text.trim()} is out of range: it ${problem}`);
  return ms;
}

function parseKeyName(text: string | undefined): string {
  const name = text?.trim();
  if (name === undefined || name === "") throw new UsageError('--name is required, e.g. --name "kitchen lamp"');
  if (name.length > 200 || UNSHOWABLE_IN_NAME.test(name))
    throw new UsageError("--name must be 1 to 200 characters without control or text-direction characters");
  return name;
}

/** Scopes a new key gets: the default, or --scopes checked for shape and, unless allowed, against the known set. */
function chooseScopes(text: string | undefined, allowNew: boolean, known: readonly string[]): string[] {
  if (text === undefined) return [...DEFAULT_KEY_SCOPES];
  const scopes = parseScopes(text);
  if (scopes === undefined) throw new UsageError("--scopes takes scopes such as data:read,ws:connect (lower case), or *");
  const unknown = findUnknownScopes(scopes, allowNew ? scopes : known);
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown scope ${unknown.join(", ")}: no route requires it and ROLE_SCOPES does not name it. Known scopes: ${[...new Set(known)].join(" ")}. ` +
        "Add --allow-new-scope if it is meant for a route still to come",
    );
  }
  return scopes;
}

/** An operation's problem as the CLI says it: the sentence on stderr, and its exit code. */
function reportProblem(io: CliIo, problem: AdminProblem): number {
  if (problem.kind === "invalid") throw new UsageError(`${problem.message} with --${problem.field ?? "expires"}`);
  if (problem.kind === "not_found") {
    io.err(`${problem.message}. See: bun run cli keys list\n`);
    return EXIT.notFound;
  }
  io.err(`${problem.message}.\n`);
  return EXIT.conflict;
}

function printNewKey(io: CliIo, verb: string, record: NewKey, token: string, json: boolean): void {
  if (json) {
    io.out(
      `${JSON.stringify({ id: record.id, name: record.name, scopes: record.scopes, created_at: isoOrNull(record.createdAt), expires_at: isoOrNull(record.expiresAt), key: token })}\n`,
    );
    return;
  }
  io.out(
    `${verb} API key ${record.id} "${record.name}"\n` +
      `  scopes:  ${record.scopes.join(" ")}\n` +
      `  expires: ${iso(record.expiresAt)}\n` +
      `The key is shown only this once; store it now:\n${token}\n`,
  );
}

const createKeyCommand: Command = {
  summary: ["keys create --name NAME [--scopes a,b] [--expires 30d] [--json]", "create a key (printed once)"],
  help: `Usage: bun run cli keys create --name NAME [--scopes a,b] [--expires DURATION] [--json]

Creates an API key and prints it once; only its hash is stored.
  --name NAME        what the key is for, e.g. "kitchen lamp" (required)
  --scopes a,b       scopes granted (default: ${DEFAULT_KEY_SCOPES.join(",")}; * grants all). Each must be
                     one a route requires or ROLE_SCOPES names, so a typo cannot make a useless key
  --allow-new-scope  accept scopes nothing requires yet (for routes still to come)
  --expires DURATION lifetime ${KEY_LIFETIME.words}, such as 90s, 15m, 12h, 30d, 2w (default: never expires)
  --json             print a JSON object instead of text
  --create-store     create the store if it does not exist yet (normally the server's first start does)
`,
  run: async (args, { io, openStore, now, knownScopes }) => {
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
    const name = parseKeyName(values.name);
    const expiresInMs = parseDurationFlag("--expires", values.expires, KEY_LIFETIME);
    const { token, record } = await withStore(
      () => openStore({ create: values["create-store"] }),
      async (store) => {
        // A program using tokengate as a library records the scopes its routes require in the store.
        const known = values.scopes === undefined ? knownScopes : [...knownScopes, ...(await store.listAppScopes())];
        const scopes = chooseScopes(values.scopes, values["allow-new-scope"], known);
        return createKey(store, { name, scopes, expiresInMs }, now());
      },
    );
    printNewKey(io, "Created", record, token, values.json);
    return EXIT.ok;
  },
};

const listKeysCommand: Command = {
  summary: ["keys list [--json]", "list keys and their state"],
  help: `Usage: bun run cli keys list [--json]

Lists every key: id, name, scopes, created, expires, last used, state (active, expired, revoked).
Secrets are never shown; they are not stored. A stored time that is not a valid date is shown
as "invalid date" (also in --json).
`,
  run: async (args, { io, openStore, now }) => {
    const json = parseJsonFlag(args);
    const records: KeyRecord[] = await withStore(openStore, (store) => store.listKeys());
    const at = now();
    printListing(io, {
      json,
      records,
      asJson: (key) => describeKey(key, at),
      none: "No API keys yet. Create one with: bun run cli keys create --name NAME\n",
      header: ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "STATE"],
      asRow: (key) => keyRow(key, at),
    });
    return EXIT.ok;
  },
};

const revokeKeyCommand: Command = {
  summary: ["keys revoke ID [--json]", "revoke a key now"],
  help: `Usage: bun run cli keys revoke ID [--json]

Revokes the key with this id (see keys list). Open WebSockets that use it are closed with 4403
and HTTP requests get 401 within a second.
`,
  run: (args, { io, openStore, now }) => {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean", default: false } } });
    const id = parseOneKeyId(positionals, "revoke");
    return withStore(openStore, async (store) => {
      const at = now();
      const after = await revokeKey(store, id, at);
      if (after instanceof AdminProblem) return reportProblem(io, after);
      if (values.json) io.out(`${JSON.stringify(describeKey(after, at))}\n`);
      else io.out(`Revoked key ${id} ("${after.name}"). Open WebSockets using it are being closed.\n`);
      return EXIT.ok;
    });
  },
};

const rotateKeyCommand: Command = {
  summary: ["keys rotate ID [--overlap 1h] [--expires 30d] [--json]", "replace a key, old one works for the overlap"],
  help: `Usage: bun run cli keys rotate ID [--overlap DURATION] [--expires DURATION] [--json]

Creates a replacement key with the same name and scopes and prints it once. The old key keeps
working for the overlap (default 0s: it stops at once), then counts as revoked.
  --overlap DURATION  how long the old key stays valid, ${ROTATION_OVERLAP.words}, e.g. 1h
  --expires DURATION  lifetime of the new key, ${KEY_LIFETIME.words} (default: the old key's lifetime, or never)
`,
  run: (args, { io, openStore, now }) => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { overlap: { type: "string" }, expires: { type: "string" }, json: { type: "boolean", default: false } },
    });
    const id = parseOneKeyId(positionals, "rotate");
    const overlap = parseDurationFlag("--overlap", values.overlap, ROTATION_OVERLAP) ?? 0;
    const expires = parseDurationFlag("--expires", values.expires, KEY_LIFETIME);
    return withStore(openStore, async (store) => {
      const at = now();
      const rotation = await rotateKey(store, id, { overlapMs: overlap, expiresInMs: expires }, at);
      if (rotation instanceof AdminProblem) return reportProblem(io, rotation);
      printNewKey(io, "Rotated: new", rotation.record, rotation.token, values.json);
      if (!values.json) io.out(`Old key ${id} ${overlap === 0 ? "stopped working now" : `keeps working until ${iso(at + overlap)}`}.\n`);
      return EXIT.ok;
    });
  },
};

/** In the order the main help lists them. */
export const keyCommands: CommandTable = {
  "keys create": createKeyCommand,
  "keys list": listKeysCommand,
  "keys revoke": revokeKeyCommand,
  "keys rotate": rotateKeyCommand,
};
