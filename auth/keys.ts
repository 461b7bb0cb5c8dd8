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

const DURATION = /^(\d{1,9})(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `90s`, `15m`, `1h`, `30d`, `2w` → milliseconds; `undefined` for anything else. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A scope is a lower-case word with `:`, `.`, `_` or `-` inside (`data:read`), or `*` for all. */
const SCOPE = /^(?:\*|[a-z][a-z0-9_.-]*(?::[a-z0-9_.-]+)*)$/;

/** `a,b c` → `["a","b","c"]` (commas or spaces), or `undefined` if any entry is not a scope. */
export function parseScopes(text: string): string[] | undefined {
  const scopes = text.split(/[,\s]+/).filter((scope) => scope !== "");
  if (scopes.length === 0 || !scopes.every((scope) => SCOPE.test(scope))) return undefined;
  return [...new Set(scopes)];
}

export const DEFAULT_KEY_SCOPES = ["data:read", "ws:connect"] as const;
