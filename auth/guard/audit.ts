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
  | "device.approved"
  | "device.denied"
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
  /** The last events recorded by this process, newest first (the admin API's Activity): never re-read from the log file. */
  recent(filter?: AuditFilter): RecentEvent[];
}

/** An audit event as kept in memory: what was written, parsed back into fields. */
export type RecentEvent = Readonly<Record<string, string | number | boolean | null>> & {
  readonly time: string;
  readonly audit: AuditEvent;
};

export interface AuditFilter {
  /** Events of this name, or of this prefix (`session.`). */
  readonly event?: string | undefined;
  /** At most this many (default and ceiling: the ring's size). */
  readonly limit?: number | undefined;
}

/** How many events the ring keeps: a few days of a household's sign-ins and refusals, a few hundred KiB. */
export const RECENT_EVENTS = 1000;

export interface AuditOptions {
  readonly write: (line: string) => void;
  /** Fraction of successful authentications recorded (0 = none, 1 = all). */
  readonly successSample: number;
  readonly random?: () => number;
  readonly now: Clock;
}

/** A bounded ring: the oldest event goes when a new one comes past the limit. */
function createRing(limit: number) {
  const events: RecentEvent[] = [];
  let next = 0;
  return {
    add(event: RecentEvent) {
      if (events.length < limit) events.push(event);
      else events[next] = event;
      next = (next + 1) % limit;
    },
    /** Newest first. */
    list(): RecentEvent[] {
      return [...events.slice(0, next).reverse(), ...events.slice(next).reverse()];
    },
  };
}

export function createAuditLog(options: AuditOptions): AuditLog {
  const random = options.random ?? Math.random;
  const ring = createRing(RECENT_EVENTS);
  const record = (event: AuditEvent, fields: AuditFields) => {
    const line = JSON.stringify({ time: new Date(options.now()).toISOString(), audit: event, ...fields });
    // The same fields the line carries (JSON drops undefined), so the ring holds nothing the log does not.
    ring.add(JSON.parse(line) as RecentEvent);
    options.write(`${line}\n`);
  };
  return {
    recent(filter = {}) {
      const limit = Math.max(1, Math.min(filter.limit ?? RECENT_EVENTS, RECENT_EVENTS));
      const wanted = filter.event;
      const matches = (event: RecentEvent) =>
        wanted === undefined || event.audit === wanted || (wanted.endsWith(".") && event.audit.startsWith(wanted));
      return ring.list().filter(matches).slice(0, limit);
    },
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
