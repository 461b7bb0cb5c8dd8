/**
 * API keys: the opaque `tg_<id>_<secret>` format, their lifetimes and scopes. Pure. A key's id is
 * public (lists, logs, audit); its secret carries 256 bits and only its SHA-256 is ever stored.
 */
import { generateToken } from "./tokens.ts";

export const KEY_PREFIX = "tg_";
const ID_BYTES = 6;
export const ID_LENGTH = ID_BYTES * 2;
const KEY_SHAPE = /^tg_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;
const KEY_LENGTH = KEY_PREFIX.length + ID_LENGTH + 1 + 43;

export interface ParsedApiKey {
  readonly id: string;
  readonly secret: string;
}

/** Splits a presented token into id and secret, or `undefined` if it is not shaped like a key. */
export function parseApiKey(token: string): ParsedApiKey | undefined {
  // Runs on every request: a test without captures, then two slices at fixed offsets.
  if (token.length !== KEY_LENGTH || !KEY_SHAPE.test(token)) return undefined;
  return { id: token.slice(3, 3 + ID_LENGTH), secret: token.slice(4 + ID_LENGTH) };
}

export function formatApiKey(id: string, secret: string): string {
  return `${KEY_PREFIX}${id}_${secret}`;
}

export function generateKeyId(): string {
  const bytes = new Uint8Array(ID_BYTES);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString("hex");
}

export function generateApiKey(): ParsedApiKey & { readonly token: string } {
  const id = generateKeyId();
  const secret = generateToken();
  return { id, secret, token: formatApiKey(id, secret) };
}

export type KeyState = "active" | "expired" | "revoked";

export interface KeyLifetime {
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
}

/** Revocation wins over expiry: a revoked key stays "revoked" even after its expiry passes. */
export function keyState(key: KeyLifetime, now: number): KeyState {
  if (key.revokedAt !== null && key.revokedAt <= now) return "revoked";
  if (key.expiresAt !== null && key.expiresAt <= now) return "expired";
  return "active";
}

const DURATION = /^(\d+)(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `90s`, `15m`, `1h`, `30d`, `2w` → milliseconds; `undefined` for anything else. Ranges are judged apart (judgeDuration). */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  return Number.isFinite(ms) ? ms : undefined;
}

export interface DurationRange {
  readonly min: number;
  readonly max: number;
  /** The range in words, for messages: "from 1s to 36500d (100 years)". */
  readonly words: string;
}

const DAY_MS = UNIT_MS.d!;

/**
 * A key's lifetime. A second at least, since a key that is born expired only loses its secret;
 * a century at most, far inside what a Date can hold (year 275760), so a typo such as
 * `100000000d` is refused instead of being stored as an expiry no one can print.
 */
export const KEY_LIFETIME: DurationRange = { min: 1_000, max: 36_500 * DAY_MS, words: "from 1s to 36500d (100 years)" };

/** How long a rotated key keeps working: 0s stops it at once; a year is the longest hand-over worth having. */
export const ROTATION_OVERLAP: DurationRange = { min: 0, max: 365 * DAY_MS, words: "from 0s (stop at once) to 365d" };

/** What is wrong with `ms` for `range`, or `undefined` when it fits. */
export function judgeDuration(ms: number, range: DurationRange): string | undefined {
  if (!Number.isFinite(ms) || ms < range.min || ms > range.max) return `must be ${range.words}`;
  return undefined;
}

/** A scope is a lower-case word with `:`, `.`, `_` or `-` inside (`data:read`), or `*` for all. */
const SCOPE = /^(?:\*|[a-z][a-z0-9_.-]*(?::[a-z0-9_.-]+)*)$/;

/** `a,b c` → `["a","b","c"]` (commas or spaces), or `undefined` if any entry is not a scope. */
export function parseScopes(text: string): string[] | undefined {
  const scopes = text.split(/[,\s]+/).filter((scope) => scope !== "");
  if (scopes.length === 0 || !scopes.every((scope) => SCOPE.test(scope))) return undefined;
  return [...new Set(scopes)];
}

/**
 * What a key's (or a paired device's) name may not hold: C0 and C1 control characters, and the
 * bidirectional overrides and isolates that would make `keys list` or the console show a name in
 * another order than it was typed.
 */
export const UNSHOWABLE_IN_NAME = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

export const DEFAULT_KEY_SCOPES = ["data:read", "ws:connect"] as const;
