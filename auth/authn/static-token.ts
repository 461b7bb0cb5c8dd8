/**
 * The bootstrap token: the seed's single shared secret (AUTH_TOKEN or the generated token file),
 * acting with every scope. Only the secret's digest is kept.
 */
import { INVALID_TOKEN, type GateError } from "../core/errors.ts";
import { BOOTSTRAP_PRINCIPAL, type Principal } from "../core/principal.ts";
import { createSecretMatcher } from "../secrets/tokens.ts";

export function createBootstrapAuthenticator(secretDigest: Uint8Array): (token: string) => Principal | GateError {
  const matches = createSecretMatcher(secretDigest);
  return (token) => (matches(token) ? BOOTSTRAP_PRINCIPAL : INVALID_TOKEN);
}
