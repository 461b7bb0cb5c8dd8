/**
 * What happens when authentication fails, in one place for the gate and the token endpoint:
 * a guess counts toward a ban (and becomes 429 once over the limit), and the refusal is audited.
 * The caller resolves the client address once; both steps use it.
 */
import type { AuditLog } from "./audit.ts";
import { tooManyAttempts, type GateError } from "../core/errors.ts";
import type { Guard } from "./guard.ts";

export interface RefusalSinks {
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
}

export interface Refusal {
  readonly error: GateError;
  /** Unknown secrets and wrong passwords; stale-but-genuine credentials are not guesses. */
  readonly isGuess: boolean;
  /** Whether the refusal is worth an audit line (a request with no credential at all is not). */
  readonly audited: boolean;
  readonly address: string;
  readonly path: string;
  /** The API key id the refused credential named: guesses against it are counted for the key. */
  readonly keyId?: string | undefined;
  /** The username a refused password was for: guesses are counted for the account too. */
  readonly username?: string | undefined;
}

/** The guard's account subject of a refusal, if it aimed at one. */
export function accountOf(refusal: { readonly keyId?: string | undefined; readonly username?: string | undefined }): string | undefined {
  return refusal.keyId !== undefined ? `key:${refusal.keyId}` : refusal.username !== undefined ? `user:${refusal.username}` : undefined;
}

export function settleRefusal(sinks: RefusalSinks, refusal: Refusal): GateError {
  let outcome = refusal.error;
  if (sinks.guard !== undefined && refusal.isGuess) {
    const account = accountOf(refusal);
    sinks.guard.recordFailure(refusal.address, account);
    const wait = sinks.guard.retryAfter(refusal.address, account);
    if (wait > 0) outcome = tooManyAttempts(wait);
  }
  if (sinks.audit !== undefined && refusal.audited) sinks.audit.failure(outcome, refusal.address, refusal.path, refusal.keyId, refusal.username);
  return outcome;
}
