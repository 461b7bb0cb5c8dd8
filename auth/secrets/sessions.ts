/**
 * Browser sessions: the opaque `tgs_<id>_<secret>` cookie value, the cookie's name and attributes,
 * and reading it back out of a `Cookie` header. Pure. The id is public (lists, audit); the secret
 * carries 256 bits and only its SHA-256 is stored, as for API keys.
 */
import { generateToken } from "./tokens.ts";

export const SESSION_PREFIX = "tgs_";
const ID_BYTES = 8;
export const SESSION_ID_LENGTH = ID_BYTES * 2;
const SESSION_SHAPE = /^tgs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;
const SESSION_LENGTH = SESSION_PREFIX.length + SESSION_ID_LENGTH + 1 + 43;

/** Over plain HTTP; `__Host-` needs `Secure`, which a browser keeps from `http:` pages. */
export const SESSION_COOKIE = "tgs";
/** Over TLS: the prefix makes the browser refuse a cookie a sibling host or a path tried to set. */
export const SECURE_SESSION_COOKIE = "__Host-tgs";

export interface ParsedSessionToken {
  readonly id: string;
  readonly secret: string;
}

export function parseSessionToken(token: string): ParsedSessionToken | undefined {
  if (token.length !== SESSION_LENGTH || !SESSION_SHAPE.test(token)) return undefined;
  return { id: token.slice(4, 4 + SESSION_ID_LENGTH), secret: token.slice(5 + SESSION_ID_LENGTH) };
}

export function isSessionToken(token: string): boolean {
  return token.startsWith(SESSION_PREFIX) && parseSessionToken(token) !== undefined;
}

export function generateSessionToken(): ParsedSessionToken & { readonly token: string } {
  const bytes = new Uint8Array(ID_BYTES);
  crypto.getRandomValues(bytes);
  const id = Buffer.from(bytes).toString("hex");
  const secret = generateToken();
  return { id, secret, token: `${SESSION_PREFIX}${id}_${secret}` };
}

/** The cookie's name on this transport. */
export const sessionCookieName = (secure: boolean) => (secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE);

/**
 * Every value of the session cookie in a `Cookie` header (RFC 6265 §5.4: `name=value` pairs joined
 * by `; `). More than one value is possible (a stale cookie from a sibling path); the caller decides.
 * A browser keeps a comma inside a cookie's value, so `x=1,__Host-tgs=…` is one cookie named `x`
 * (planted by a sibling host, where the prefix's protection never applied): a value with a comma
 * is never read as ours.
 */
export function readSessionCookies(header: string | null, secure: boolean): string[] {
  if (header === null) return [];
  const wanted = sessionCookieName(secure);
  const found: string[] = [];
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq === -1 || pair.slice(0, eq).trim() !== wanted) continue;
    const value = pair.slice(eq + 1).trim();
    if (!value.includes(",")) found.push(value);
  }
  return found;
}

/** A session token anywhere in a text: what must never reach a service, whatever cookie it hides in. */
const SESSION_TOKEN_INSIDE = /tgs_[0-9a-f]{16}_/;

/** Whether one `name=value` pair of a Cookie header is (or hides) the gate's sign-in cookie. */
function isSessionPair(pair: string): boolean {
  const eq = pair.indexOf("=");
  const name = (eq === -1 ? pair : pair.slice(0, eq)).trim();
  return name === SESSION_COOKIE || name === SECURE_SESSION_COOKIE || SESSION_TOKEN_INSIDE.test(pair);
}

/** `Cookie` without the gate's session cookies (either name, or a session token inside another): what a proxied service may see. `undefined` when nothing is left. */
export function withoutSessionCookies(header: string): string | undefined {
  const kept = header
    .split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair !== "" && !isSessionPair(pair));
  return kept.length === 0 ? undefined : kept.join("; ");
}

/** Whether a `Cookie` header may hold one of the gate's session cookies (a cheap test for the hot path; `tgs =` counts too). */
export const mayHoldSessionCookie = (header: string | null) => header !== null && header.includes("tgs");

/**
 * Whether a service's `Set-Cookie` would set (or clear) the gate's own session cookie on this host,
 * or smuggle one inside another cookie's value (`x=1,tgs=…`).
 */
export function setsSessionCookie(setCookie: string): boolean {
  const end = setCookie.indexOf(";");
  const pair = end === -1 ? setCookie : setCookie.slice(0, end);
  return isSessionPair(pair) || pair.split(",").some((part) => isSessionPair(part));
}

/** `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, Path=/; Secure over TLS. No Max-Age past the absolute end. */
export function sessionCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  const flags = `Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Lax`;
  return `${sessionCookieName(secure)}=${token}; ${flags}${secure ? "; Secure" : ""}`;
}

/** `Set-Cookie` that makes the browser forget the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return `${sessionCookieName(secure)}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
}
