/**
 * What can be done to the JWT signing keys, once, for both faces: the CLI (`signing-keys …`) and
 * the admin API (`/admin/api/signing-keys…`). A retired key keeps verifying (and stays in the
 * JWKS) until the last token it signed has expired. A key's private half stays in the store: views
 * hold its kid, algorithm, times and state, never a JWK.
 */
import { isoOrNull } from "../core/times.ts";
import { generateSigningKey, usableKeys, type JwtAlgorithm, type SigningKeyRecord } from "../secrets/jwt.ts";
import type { SigningKeyStore } from "../store/store.ts";

/** signing: the key new tokens get; verifying: retired, its tokens still live; expired: of no use any more. */
export type SigningKeyState = "signing" | "verifying" | "expired";

export function judgeSigningKeyState(key: SigningKeyRecord, now: number): SigningKeyState {
  if (key.retiredAt === null) return "signing";
  return usableKeys([key], key.alg, now).length > 0 ? "verifying" : "expired";
}

/** A signing key as lists and answers show it: never its private or public JWK. */
export function describeSigningKey(key: SigningKeyRecord, now: number) {
  return {
    kid: key.kid,
    alg: key.alg,
    created_at: isoOrNull(key.createdAt),
    retired_at: isoOrNull(key.retiredAt),
    state: judgeSigningKeyState(key, now),
  };
}

/** Every stored signing key, oldest first. */
export function listSigningKeys(store: Pick<SigningKeyStore, "listSigningKeys">): Promise<SigningKeyRecord[]> {
  return store.listSigningKeys();
}

export interface SigningKeyRotation {
  /** The key that signs from now on. */
  readonly key: SigningKeyRecord;
  /** Every stored key after the rotation (keys retired long ago are dropped by it). */
  readonly keys: readonly SigningKeyRecord[];
}

/**
 * A new key of `alg` (the server's JWT_ALG) signs from now on; the live ones of that algorithm
 * retire in the same transaction. The rotation moves the store's revision, so running servers
 * reload their signing keys at their next look at the store.
 */
export async function rotateSigningKey(
  store: Pick<SigningKeyStore, "rotateSigningKey">,
  alg: JwtAlgorithm,
  now: number,
): Promise<SigningKeyRotation> {
  const key = await generateSigningKey(alg, now);
  const keys = await store.rotateSigningKey(key, now);
  return { key, keys };
}
