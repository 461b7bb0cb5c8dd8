/**
 * JWT access tokens (RFC 9068) through jose; nothing about JWS is done by hand. Signing keys are
 * EdDSA (Ed25519) by default or HS256 by configuration, identified by `kid`. Verification pins
 * the algorithm, issuer, audience, `typ`, required claims and a small clock tolerance, and maps
 * every jose failure onto the gate's own errors.
 */
import type { JWK, JWTPayload } from "jose";
import type { webcrypto } from "node:crypto";
import { EXPIRED_TOKEN, GateError, INVALID_TOKEN } from "../core/errors.ts";

/**
 * jose is loaded on the first signature or verification, not at startup: it costs ~9 ms of every
 * start and a JWT is not what most devices use first. Keys are generated and imported with
 * crypto.subtle directly (what jose calls underneath); every JWS operation still goes through jose.
 */
let jose: Promise<typeof import("jose")> | undefined;
const loadJose = () => (jose ??= import("jose"));

export type JwtAlgorithm = "EdDSA" | "HS256";

/** A signing key as stored: JWKs as JSON, the public half absent for HS256. */
export interface SigningKeyRecord {
  readonly kid: string;
  readonly alg: JwtAlgorithm;
  readonly privateJwk: string;
  readonly publicJwk: string | null;
  readonly createdAt: number;
  /** When it stopped signing; it keeps verifying (and stays published) until its tokens expire. */
  readonly retiredAt: number | null;
}

export async function generateSigningKey(alg: JwtAlgorithm, now: number): Promise<SigningKeyRecord> {
  const kidBytes = new Uint8Array(8);
  crypto.getRandomValues(kidBytes);
  const kid = Buffer.from(kidBytes).toString("base64url");
  if (alg === "HS256") {
    // 256 bits, as jose's generateSecret("HS256") makes, in the JWK form its exportJWK writes.
    const secret = new Uint8Array(32);
    crypto.getRandomValues(secret);
    const jwk: JWK = { kty: "oct", k: Buffer.from(secret).toString("base64url") };
    return { kid, alg, privateJwk: JSON.stringify(jwk), publicJwk: null, createdAt: now, retiredAt: null };
  }
  const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]);
  if (!("privateKey" in pair)) throw new Error("Ed25519 key generation returned a single key");
  return {
    kid,
    alg,
    privateJwk: JSON.stringify(await exportBareJwk(pair.privateKey)),
    publicJwk: JSON.stringify(await exportBareJwk(pair.publicKey)),
    createdAt: now,
    retiredAt: null,
  };
}

/** The key material only, as jose's exportJWK writes it: no ext, key_ops or alg members. */
async function exportBareJwk(key: CryptoKey): Promise<JWK> {
  const { ext: _ext, key_ops: _ops, alg: _alg, ...jwk } = await crypto.subtle.exportKey("jwk", key);
  return jwk as JWK;
}

/** A stored JWK as a non-extractable CryptoKey for one use, which jose accepts for that use. */
function importJwk(jwk: JWK, alg: JwtAlgorithm, usage: "sign" | "verify"): Promise<CryptoKey> {
  const algorithm = alg === "HS256" ? { name: "HMAC", hash: "SHA-256" } : { name: "Ed25519" };
  return crypto.subtle.importKey("jwk", jwk as webcrypto.JsonWebKey, algorithm, false, [usage]);
}

export interface KeySet {
  readonly alg: JwtAlgorithm;
  readonly signing: { readonly kid: string; readonly key: CryptoKey };
  readonly verifying: ReadonlyMap<string, CryptoKey>;
  /** Public JWKS document (empty for HS256: a symmetric key is never published). */
  readonly jwks: { readonly keys: readonly JWK[] };
  /** Identifies the records this set was built from, to tell when the store has moved on. */
  readonly fingerprint: string;
}

/** Which keys, and which of them are retired: enough to tell whether a re-import is due. */
export function fingerprintOf(records: readonly SigningKeyRecord[]): string {
  return records
    .map((record) => `${record.kid}:${record.retiredAt ?? ""}`)
    .sort()
    .join(",");
}

/**
 * A retired key keeps verifying (and stays in the JWKS) this long: the longest an access token
 * can live (ACCESS_TOKEN_TTL_SECONDS ≤ 86400) plus a minute of clock slack.
 */
export const RETIRED_KEY_LIFETIME_MS = 86_400_000 + 60_000;

/** The longest an access token may live (ACCESS_TOKEN_TTL_SECONDS ≤ 86400): nothing we sign says more. */
export const MAX_ACCESS_TOKEN_TTL_SECONDS = 86_400;

/**
 * Whether the time claims are numbers this server could have written: whole seconds, issued no
 * later than now, living no longer than the longest lifetime. A validly signed `exp: 1e20` (a leaked
 * key, a bug) must be refused, not turned into a date that throws further on.
 */
function plausibleTimes(payload: JWTPayload, nowSeconds: number, tolerance: number): boolean {
  const { exp, iat, nbf } = payload;
  if (!Number.isSafeInteger(exp) || !Number.isSafeInteger(iat) || (nbf !== undefined && !Number.isSafeInteger(nbf))) return false;
  return (
    iat! <= nowSeconds + tolerance &&
    exp! - iat! <= MAX_ACCESS_TOKEN_TTL_SECONDS &&
    exp! <= nowSeconds + MAX_ACCESS_TOKEN_TTL_SECONDS + tolerance
  );
}

/** The keys of `alg` that still matter: live ones, and retired ones whose tokens may still be alive. */
export function usableKeys(records: readonly SigningKeyRecord[], alg: JwtAlgorithm, nowMs: number): SigningKeyRecord[] {
  return records.filter(
    (record) => record.alg === alg && (record.retiredAt === null || record.retiredAt + RETIRED_KEY_LIFETIME_MS > nowMs),
  );
}

/** Imports the usable keys; the newest unretired key of the configured algorithm signs. */
export async function importKeySet(records: readonly SigningKeyRecord[], alg: JwtAlgorithm, nowMs: number): Promise<KeySet | undefined> {
  const usable = usableKeys(records, alg, nowMs);
  const signer = usable.filter((record) => record.retiredAt === null).sort((a, b) => b.createdAt - a.createdAt)[0];
  if (signer === undefined) return undefined;
  const verifying = new Map<string, CryptoKey>();
  const published: JWK[] = [];
  for (const record of usable) {
    const jwk = JSON.parse(record.publicJwk ?? record.privateJwk) as JWK;
    verifying.set(record.kid, await importJwk(jwk, alg, "verify"));
    if (record.publicJwk !== null) published.push({ ...jwk, kid: record.kid, alg, use: "sig" });
  }
  const signingKey = await importJwk(JSON.parse(signer.privateJwk) as JWK, alg, "sign");
  return { alg, signing: { kid: signer.kid, key: signingKey }, verifying, jwks: { keys: published }, fingerprint: fingerprintOf(usable) };
}

export interface TokenSettings {
  readonly issuer: string;
  readonly audience: string;
  /** Access-token lifetime in seconds. */
  readonly ttl: number;
  /** Clock tolerance in seconds for exp/nbf/iat. */
  readonly clockTolerance: number;
}

export interface AccessTokenClaims {
  readonly sub: string;
  readonly scope: readonly string[];
  readonly roles: readonly string[];
  readonly clientId: string;
  /** The refresh-token family (session) this token belongs to, when it has one. */
  readonly sid?: string | undefined;
}

export interface IssuedToken {
  readonly token: string;
  readonly jti: string;
  /** Epoch seconds. */
  readonly exp: number;
}

export async function issueAccessToken(
  keys: KeySet,
  settings: TokenSettings,
  claims: AccessTokenClaims,
  nowMs: number,
): Promise<IssuedToken> {
  const iat = Math.floor(nowMs / 1000);
  const exp = iat + settings.ttl;
  const jti = crypto.randomUUID();
  const payload: JWTPayload = { scope: claims.scope.join(" "), roles: [...claims.roles], client_id: claims.clientId };
  if (claims.sid !== undefined) payload.sid = claims.sid;
  const { SignJWT } = await loadJose();
  const token = await new SignJWT(payload)
    .setProtectedHeader({ alg: keys.alg, typ: "at+jwt", kid: keys.signing.kid })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(keys.signing.key);
  return { token, jti, exp };
}

export interface VerifiedAccessToken {
  readonly sub: string;
  readonly scope: readonly string[];
  readonly roles: readonly string[];
  readonly clientId: string;
  readonly jti: string;
  /** Epoch seconds. */
  readonly exp: number;
  readonly sid: string | null;
}

/** Three base64url segments: worth handing to jose. Anything else is not a JWT. */
export function looksLikeJwt(token: string): boolean {
  // The dot test first: bootstrap tokens and API keys have none, and they are the hot path.
  return token.includes(".") && /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/.test(token);
}

const REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "scope", "client_id"];

/**
 * Whether every segment is canonical base64url. The last character of a segment can carry unused
 * bits; decoders ignore them, so a signed token has several spellings that verify. Accepting only
 * the canonical one keeps a token one string: one cache entry, one audit identity, no malleability.
 */
export function isCanonicalJwt(token: string): boolean {
  const parts = token.split(".");
  return parts.length === 3 && parts.every((part) => Buffer.from(part, "base64url").toString("base64url") === part);
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((entry) => typeof entry === "string") ? value : undefined;
}

/**
 * Verifies an access token. Returns its claims, or EXPIRED_TOKEN / INVALID_TOKEN; never throws.
 * alg is pinned (so `none` and HS/EdDSA confusion fail), typ must be at+jwt, kid must be known.
 */
export async function verifyAccessToken(
  token: string,
  keys: KeySet,
  settings: TokenSettings,
  nowMs: number,
): Promise<VerifiedAccessToken | GateError> {
  if (!isCanonicalJwt(token)) return INVALID_TOKEN;
  const { errors, jwtVerify } = await loadJose();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      (header) => {
        const key = header.kid === undefined ? undefined : keys.verifying.get(header.kid);
        if (key === undefined) throw new errors.JWKSNoMatchingKey();
        return key;
      },
      {
        algorithms: [keys.alg],
        issuer: settings.issuer,
        audience: settings.audience,
        typ: "at+jwt",
        requiredClaims: REQUIRED_CLAIMS,
        clockTolerance: settings.clockTolerance,
        currentDate: new Date(nowMs),
      },
    ));
  } catch (error) {
    return error instanceof errors.JWTExpired ? EXPIRED_TOKEN : INVALID_TOKEN;
  }
  if (!plausibleTimes(payload, Math.floor(nowMs / 1000), settings.clockTolerance)) return INVALID_TOKEN;
  // jose checks that these claims exist, not their types: a validly signed `sub: 42` must be refused
  // here rather than throw later.
  const { sub, jti, exp, scope, client_id: clientId } = payload;
  const roles = payload.roles === undefined ? [] : stringList(payload.roles);
  const sid = payload.sid === undefined ? null : payload.sid;
  const strings = [sub, jti, scope, clientId].every((claim) => typeof claim === "string" && claim.length <= 1024);
  if (!strings || roles === undefined || (sid !== null && typeof sid !== "string") || exp === undefined) return INVALID_TOKEN;
  return {
    sub: sub as string,
    scope: scope === "" ? [] : (scope as string).split(" "),
    roles,
    clientId: clientId as string,
    jti: jti as string,
    exp,
    sid: sid as string | null,
  };
}
