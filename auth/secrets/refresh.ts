/**
 * Refresh tokens: opaque `tgr_<id>_<secret>` strings. Pure. Like API keys, the id is public and
 * only the SHA-256 of the 256-bit secret is stored; unlike them, each is good for one exchange.
 */
import { generateToken } from "./tokens.ts";

const REFRESH_SHAPE = /^tgr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** A concurrent retry of the same refresh within this window is not treated as theft. */
export const REFRESH_GRACE_MS = 5_000;

export function parseRefreshToken(token: string): { id: string; secret: string } | undefined {
  const match = REFRESH_SHAPE.exec(token);
  return match === null ? undefined : { id: match[1]!, secret: match[2]! };
}

export function generateRefreshToken(): { id: string; secret: string; token: string } {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  const id = Buffer.from(bytes).toString("hex");
  const secret = generateToken();
  return { id, secret, token: `tgr_${id}_${secret}` };
}

export function generateFamilyId(): string {
  return crypto.randomUUID();
}

/** A family id as generateFamilyId makes it: a lower-case UUID. */
const FAMILY_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `text` has the shape of a refresh-token family id (lists and audit lines show them). */
export function isFamilyId(text: string): boolean {
  return FAMILY_SHAPE.test(text);
}
