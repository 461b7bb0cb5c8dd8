/**
 * `/admin/api/signing-keys…`: list the JWT signing keys and rotate them, through the same
 * operations as `bun run cli signing-keys …` (signing-keys.ts). A rotation moves the store's
 * revision: the framework's look at the store after the change reloads this server's keys before
 * the answer goes out, and every other instance follows at its next look. No answer holds a JWK.
 */
import { z } from "zod";
import type { JwtAlgorithm } from "../secrets/jwt.ts";
import type { SigningKeyStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { describeSigningKey, listSigningKeys, rotateSigningKey } from "./signing-keys.ts";

export const SigningKeyView = z
  .object({
    kid: z.string().describe("the key id JWTs name in their header"),
    alg: z.enum(["EdDSA", "HS256"]),
    created_at: z.string().nullable().describe("ISO 8601"),
    retired_at: z.string().nullable().describe("ISO 8601, or null while it signs"),
    state: z
      .enum(["signing", "verifying", "expired"])
      .describe("signing: new tokens get it; verifying: retired, in the JWKS until its last tokens expire; expired: of no use"),
  })
  .describe("A JWT signing key; its private (and public) key material is never shown here");

export interface SigningKeyEndpointOptions {
  readonly store: SigningKeyStore;
  /** JWT_ALG: the algorithm a new key is made for. */
  readonly jwtAlg: JwtAlgorithm;
}

export function createSigningKeyEndpoints(options: SigningKeyEndpointOptions): AdminEndpoint[] {
  const { store, jwtAlg } = options;
  const list = endpoint({
    method: "GET",
    path: "/signing-keys",
    summary: "Every JWT signing key: kid, algorithm, created, retired, and whether it signs, only verifies or is past use",
    answer: z.object({ signing_keys: z.array(SigningKeyView) }),
    status: 200,
    run: async ({ now }) => ({ signing_keys: (await listSigningKeys(store)).map((key) => describeSigningKey(key, now)) }),
  });
  const rotate = endpoint({
    method: "POST",
    path: "/signing-keys/rotate",
    summary: "A new signing key for JWT_ALG signs from now on; the old one verifies until its tokens expire",
    body: z.object({}).describe("nothing to send: an empty object"),
    answer: z.object({
      signing_key: SigningKeyView.describe("the key that signs from now on"),
      signing_keys: z.array(SigningKeyView).describe("every key after the rotation"),
    }),
    status: 201,
    audit: { action: "signing-keys.rotate", detail: (output) => ({ kid: output.signing_key.kid, alg: output.signing_key.alg }) },
    async run({ now }) {
      const rotation = await rotateSigningKey(store, jwtAlg, now);
      return {
        signing_key: describeSigningKey(rotation.key, now),
        signing_keys: rotation.keys.map((key) => describeSigningKey(key, now)),
      };
    },
  });
  return [list, rotate] as AdminEndpoint[];
}
