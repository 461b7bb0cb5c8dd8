/**
 * API keys for tests: generated, tracked by the leak scan, and stored the way the CLI stores them
 * (only the secret's SHA-256). One helper instead of the same five lines in every file.
 */
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import type { KeyStore } from "../../auth/store/store.ts";
import { trackSecret } from "./secrets.ts";

export interface TestKeyOptions {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly createdAt?: number;
  readonly expiresAt?: number | null;
}

/** A new key in `store`; its token is registered with the leak scan before anything can print it. */
export async function insertApiKey(
  store: Pick<KeyStore, "insertKey">,
  options: TestKeyOptions,
): Promise<{ id: string; secret: string; token: string }> {
  const key = generateApiKey();
  trackSecret(key.token);
  await store.insertKey({
    id: key.id,
    name: options.name,
    scopes: options.scopes,
    secretHash: digestToken(key.secret),
    createdAt: options.createdAt ?? Date.now(),
    expiresAt: options.expiresAt ?? null,
  });
  return key;
}
