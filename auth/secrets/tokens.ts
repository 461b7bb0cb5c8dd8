/**
 * Secret handling: generating strong tokens, digesting them, and comparing in constant time.
 * Comparisons always run over fixed-length SHA-256 digests, so neither the content nor the length
 * of the expected secret leaks through timing.
 */
// `crypto.timingSafeEqual` is Bun's global form of node:crypto's function; importing node:crypto
// instead would load its stream machinery, ~5 ms of every start.

export const MAX_TOKEN_LENGTH = 4096;

/**
 * A token is 1..4096 visible ASCII characters without a comma. Spaces and commas are excluded
 * because HTTP joins repeated header fields with ", ": a token containing them is
 * indistinguishable from two tokens, so it is refused rather than guessed at.
 */
const TOKEN_CHARS = /^[\x21-\x2b\x2d-\x7e]+$/;

export function isTokenShaped(value: string): boolean {
  return value.length > 0 && value.length <= MAX_TOKEN_LENGTH && TOKEN_CHARS.test(value);
}

export const DIGEST_BYTES = 32;

/** SHA-256 of a token (UTF-8; accepted tokens are ASCII, so this is also their wire bytes). */
export function digestToken(token: string): Uint8Array {
  return Bun.SHA256.hash(token) as Uint8Array;
}

export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === DIGEST_BYTES && b.byteLength === DIGEST_BYTES && crypto.timingSafeEqual(a, b);
}

// Hashing into one scratch buffer saves an allocation per request; safe because the hash and
// the comparison run synchronously, with no await in between.
const scratch = new Uint8Array(DIGEST_BYTES);

/** Whether `candidate` hashes to `expected` (a 32-byte SHA-256), compared in constant time. */
export function tokenMatchesDigest(candidate: string, expected: Uint8Array): boolean {
  Bun.SHA256.hash(candidate, scratch);
  return expected.byteLength === DIGEST_BYTES && crypto.timingSafeEqual(scratch, expected);
}

/** A matcher for one configured secret. Only the digest is kept; the plain secret is not captured. */
export function createSecretMatcher(secretDigest: Uint8Array): (candidate: string) => boolean {
  const expected = Uint8Array.from(secretDigest);
  return (candidate) => tokenMatchesDigest(candidate, expected);
}

/** 256 bits from the platform CSPRNG, base64url without padding (43 characters, header- and URL-safe). */
export function generateToken(bytes = 32): string {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return Buffer.from(buffer).toString("base64url");
}
