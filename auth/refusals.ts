/**
 * What happens when authentication fails, in one place for the gate and the token endpoint:
 * a guess counts toward a ban (and becomes 429 once over the limit), and the refusal is audited.
 * The caller resolves the client address once; both steps use it.
 */
import type { AuditLog } from "./audit.ts";
import { tooManyAttempts, type GateError } from "./errors.ts";
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
  readonly keyId?: string | undefined;
}

export function settleRefusal(sinks: RefusalSinks, refusal: Refusal): GateError {
  let outcome = refusal.error;
  if (sinks.guard !== undefined && refusal.isGuess) {
    sinks.guard.recordFailure(refusal.address, refusal.keyId);
    const wait = sinks.guard.retryAfter(refusal.address, refusal.keyId);
    if (wait > 0) outcome = tooManyAttempts(wait);
  }
  if (sinks.audit !== undefined && refusal.audited) sinks.audit.failure(outcome, refusal.address, refusal.path, refusal.keyId);
  return outcome;
}
