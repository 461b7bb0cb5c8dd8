/**
 * What happens when authentication fails, in one place for the gate, sockets, the token endpoint
 * and pairing: a guess counts toward a ban (and becomes 429 once over the limit), and the refusal is
 * audited, each as the refusal's policy (core/errors.ts) says.
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
  /** What was refused: its policy (POLICIES) decides whether it counts as a guess and is audited. */
  readonly error: GateError;
  /** What the client is told, when that differs from `error` (one answer for several refusals, no oracle). */
  readonly answer?: GateError | undefined;
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
  const { policy } = refusal.error;
  let outcome = refusal.answer ?? refusal.error;
  if (sinks.guard !== undefined && policy.guess) {
    const account = accountOf(refusal);
    sinks.guard.recordFailure(refusal.address, account);
    const wait = sinks.guard.retryAfter(refusal.address, account);
    if (wait > 0) outcome = tooManyAttempts(wait);
  }
  if (sinks.audit !== undefined && policy.audited)
    sinks.audit.failure(outcome, refusal.address, refusal.path, refusal.keyId, refusal.username);
  return outcome;
}
