/**
 * What happens when authentication fails, in one place for the gate, sockets, the token endpoint
 * and pairing: a guess counts toward a ban (and becomes 429 once over the limit), and the refusal is
 * audited, each as the refusal's policy (core/errors.ts) says.
 * The caller resolves the client address once; both steps use it.
 */
import type { AuditLog } from "./audit.ts";
import type { BanSubjectKind, GateMetrics } from "../core/gate-metrics.ts";
import { tooManyAttempts, type GateError } from "../core/errors.ts";
import type { Guard } from "./guard.ts";
import { USERNAME } from "../authn/users.ts";
import { parseIp } from "../core/addresses.ts";
import { SECRET_MIN_LENGTH } from "../core/redact.ts";
import { parseApiKey } from "../secrets/keys.ts";

export interface RefusalSinks {
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
  /** Counts the refusal by its kind (tokengate_refusals_total); goes wherever the audit log goes. */
  readonly metrics?: GateMetrics | undefined;
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
  /**
   * An account subject the caller made from a verified principal (not from what the client typed),
   * counted instead of one made from `keyId` or `username`: `codes:key:<id>` for device codes.
   */
  readonly account?: string | undefined;
}

const KEY_ID = /^[0-9a-f]{12}$/;
/** The ban subject of a signed-in typist of device codes, apart from the bans others' failures set on the same account. */
export const TYPIST_PREFIX = "codes:";

/**
 * Whether `text` is a subject the guard bans, as `bans list` shows it: `addr:<ip>` (an IPv6 /64 as
 * `addr:<prefix>::/64`), `key:<id>`, `user:<name>`, or `codes:` before a key or user (device
 * codes). The CLI names one with it to lift a ban.
 */
export function isBanSubject(text: string): boolean {
  // Someone signed in who typed wrong device codes: `codes:` and their own key or user subject.
  if (text.startsWith(TYPIST_PREFIX))
    return /^(key|user):/.test(text.slice(TYPIST_PREFIX.length)) && isBanSubject(text.slice(TYPIST_PREFIX.length));
  const colon = text.indexOf(":");
  const kind = text.slice(0, colon);
  const value = text.slice(colon + 1);
  if (kind === "key") return KEY_ID.test(value);
  if (kind === "user") return USERNAME.test(value);
  if (kind !== "addr") return false;
  return parseIp(value.endsWith("::/64") ? value.slice(0, -3) : value) !== undefined;
}
/** A ban's metric label: the kind of its subject; a typist's (`codes:key:…`, `codes:user:…`) as the key's or the user's. */
export function banSubjectKind(subject: string): BanSubjectKind {
  const account = subject.startsWith(TYPIST_PREFIX) ? subject.slice(TYPIST_PREFIX.length) : subject;
  return account.startsWith("key:") ? "key" : account.startsWith("user:") ? "user" : "addr";
}

const isPlainUsername = (text: string) => USERNAME.test(text) && text.length < SECRET_MIN_LENGTH && parseApiKey(text) === undefined;

/**
 * The names a refusal aimed at, kept only when they have the shape of a key id or a username: what
 * a client typed into those fields may be a secret (an API key pasted as the username), and it
 * must not reach the audit log, the bans table or `bans list`.
 */
function namesOf(refusal: Refusal): { keyId: string | undefined; username: string | undefined } {
  const keyId = refusal.keyId !== undefined && KEY_ID.test(refusal.keyId) ? refusal.keyId : undefined;
  const username = refusal.username !== undefined && isPlainUsername(refusal.username) ? refusal.username : undefined;
  return { keyId, username };
}

/** The guard's account subject of a refusal, if it aimed at one. */
function accountOf(names: { keyId: string | undefined; username: string | undefined }): string | undefined {
  return names.keyId !== undefined ? `key:${names.keyId}` : names.username !== undefined ? `user:${names.username}` : undefined;
}

export function settleRefusal(sinks: RefusalSinks, refusal: Refusal): GateError {
  const { policy } = refusal.error;
  sinks.metrics?.refusal(refusal.error.kind).inc();
  const names = namesOf(refusal);
  let outcome = refusal.answer ?? refusal.error;
  if (sinks.guard !== undefined && policy.guess) {
    const account = refusal.account ?? accountOf(names);
    sinks.guard.recordFailure(refusal.address, account);
    const wait = sinks.guard.retryAfter(refusal.address, account);
    if (wait > 0) outcome = tooManyAttempts(wait);
  }
  if (sinks.audit !== undefined && policy.audited) sinks.audit.failure(outcome, refusal.address, refusal.path, names.keyId, names.username);
  return outcome;
}
