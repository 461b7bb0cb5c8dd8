/**
 * The audit log: security events as JSON lines, separate from the access log, to stdout or to
 * AUDIT_LOG_FILE. Events carry ids, addresses and reason codes only; every field is something
 * the gate produced itself, never a presented credential, so a secret cannot reach this stream.
 */
import type { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import type { Clock } from "../core/clock.ts";

export type AuditEvent =
  | "auth.success"
  | "auth.failure"
  | "key.created"
  | "key.revoked"
  | "key.rotated"
  | "refresh.reuse_detected"
  | "ban.started"
  | "ban.ended"
  | "pairing.completed"
  | "session.created"
  | "session.ended"
  | "passkey.added"
  | "passkey.removed"
  | "admin.action";

export type AuditFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface AuditLog {
  /** Whether successful authentications are sampled at all (lets the hot path skip the call). */
  readonly samplesSuccess: boolean;
  record(event: AuditEvent, fields: AuditFields): void;
  /** A refused authentication; `address` is the client (proxies resolved), `keyId` if one was presented. */
  failure(error: GateError, address: string, path: string, keyId?: string, username?: string): void;
  /** A successful authentication, kept only for the sampled fraction. */
  success(principal: Principal, address: () => string, path: string): void;
}

export interface AuditOptions {
  readonly write: (line: string) => void;
  /** Fraction of successful authentications recorded (0 = none, 1 = all). */
  readonly successSample: number;
  readonly random?: () => number;
  readonly now: Clock;
}

export function createAuditLog(options: AuditOptions): AuditLog {
  const random = options.random ?? Math.random;
  const record = (event: AuditEvent, fields: AuditFields) =>
    options.write(`${JSON.stringify({ time: new Date(options.now()).toISOString(), audit: event, ...fields })}\n`);
  return {
    samplesSuccess: options.successSample > 0,
    record,
    failure(error, address, path, keyId, username) {
      record("auth.failure", { reason: error.code, detail: error.description, address, path, key_id: keyId, user: username });
    },
    success(principal, address, path) {
      if (options.successSample <= 0 || random() >= options.successSample) return;
      record("auth.success", { principal: principal.id, kind: principal.kind, address: address(), path });
    },
  };
}
