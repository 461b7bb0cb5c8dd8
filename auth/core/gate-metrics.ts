/**
 * tokengate's metrics: every family the scrape shows, its labels and buckets, in one place. Pure:
 * the layers that observe (the gate, the guard, sockets, the proxy, the password queue, the poller)
 * are handed a `GateMetrics` by the composition root and keep the children they need.
 *
 * Label values come only from fixed vocabularies: a route of the gate's table or of the routes file
 * (never the request's path), a status code from a fixed list or its class, a refusal's kind, a close
 * code from a fixed list or its range. Nothing a client sends can add a series.
 */
import { POLICIES, type GateErrorKind } from "./errors.ts";
import { createRegistry, type Counter, type CounterChild, type GaugeChild, type HistogramChild, type Registry } from "./metrics.ts";

/** Seconds: from a secret checked in memory (tens of µs) to a queued argon2id check (seconds). */
const AUTH_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Revocations reach open sockets within a poll (100 ms) and the 250 ms sweep; minutes mean trouble. */
const REVOCATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const POLL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** The route label of a request that matched no route (a 404, or a refusal before routing). */
export const UNMATCHED_ROUTE = "unmatched";

/** Statuses the gate answers itself, and a service's common ones: each its own label; any other is its class. */
const NAMED_STATUSES: ReadonlySet<number> = new Set([
  101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 413, 415, 421, 422, 426, 429,
  500, 501, 502, 503, 504,
]);

/** `401`, `2xx` for a status not in the list, `none` for no answer at all (0: a service never answered), `other` for the rest. */
export function statusLabel(status: number): string {
  if (NAMED_STATUSES.has(status)) return String(status);
  if (status === 0) return "none";
  return Number.isInteger(status) && status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : "other";
}

/** RFC 6455's codes and the gate's own (POLICIES); a client's or a service's other codes go by range. */
const NAMED_CLOSE_CODES: ReadonlySet<number> = new Set([
  ...Array.from({ length: 16 }, (_, i) => 1000 + i),
  ...Object.values(POLICIES).map((policy) => policy.close),
]);

export function closeCodeLabel(code: number): string {
  if (NAMED_CLOSE_CODES.has(code)) return String(code);
  if (code >= 3000 && code <= 3999) return "3xxx";
  return code >= 4000 && code <= 4999 ? "4xxx" : "other";
}

/** The three kinds of ban subject (`addr:`, `key:`, `user:`): a ban's label, never the subject itself. */
export type BanSubjectKind = "addr" | "key" | "user";
export const BAN_SUBJECT_KINDS: readonly BanSubjectKind[] = ["addr", "key", "user"];

/** Slots for statuses 0–599, and one for anything else: a status finds its counter by index. */
const STATUS_SLOTS = 601;

/** Answers of one route (or one service): counted by status, timed. The children are made on first use and kept. */
export class StatusSeries {
  private readonly byStatus: Array<CounterChild | undefined> = new Array<CounterChild | undefined>(STATUS_SLOTS).fill(undefined);

  constructor(
    private readonly counter: Counter,
    readonly label: string,
    readonly duration: HistogramChild,
  ) {}

  answered(status: number, seconds: number): void {
    const slot = status >= 0 && status < STATUS_SLOTS - 1 ? status : STATUS_SLOTS - 1;
    (this.byStatus[slot] ??= this.counter.child(this.label, statusLabel(status))).inc();
    this.duration.observe(seconds);
  }
}

/** One outcome of a credential check: counted always, timed when the check waited (see createAuthSeries). */
export interface VerificationOutcome {
  readonly checks: CounterChild;
  readonly duration: HistogramChild;
}

/** A credential's checks by outcome. */
export interface VerificationSeries {
  readonly valid: VerificationOutcome;
  readonly invalid: VerificationOutcome;
  /** Not judged: the store is away (503), or the password queue is full. */
  readonly unavailable: VerificationOutcome;
}

export interface SocketSeries {
  readonly open: GaugeChild;
  readonly opened: CounterChild;
  readonly revocationClose: HistogramChild;
  closed(code: number): CounterChild;
}

export interface PasswordQueueSeries {
  readonly depth: GaugeChild;
  readonly running: GaugeChild;
  /** Refused at once: the queue was full. */
  readonly queueFull: CounterChild;
  /** Refused at once: this client (or this username) already had a check waiting. */
  readonly holderQueued: CounterChild;
}

export interface StoreSeries {
  readonly poll: HistogramChild;
  readonly failures: CounterChild;
  readonly reloads: CounterChild;
  readonly syncAge: GaugeChild;
  readonly stale: GaugeChild;
}

export interface ProcessSeries {
  readonly rss: GaugeChild;
  readonly eventLoopLag: HistogramChild;
}

export interface GateMetrics {
  readonly registry: Registry;
  /** Runs before each scrape: state kept elsewhere (open sockets, the queue, bans) is read then, never per request. */
  sample(collect: () => void): void;
  /** A route's series by its label (a route path of the gate, a routes-file name): made once, then the same object. */
  routeSeries(label: string): StatusSeries;
  /** A routes-file route's upstream answers, by its name. */
  upstreamSeries(route: string): StatusSeries;
  readonly tokenChecks: VerificationSeries;
  readonly passwordChecks: VerificationSeries;
  refusal(kind: GateErrorKind): CounterChild;
  readonly bansStarted: Readonly<Record<BanSubjectKind, CounterChild>>;
  readonly bansActive: Readonly<Record<BanSubjectKind, GaugeChild>>;
  readonly sockets: SocketSeries;
  readonly passwordQueue: PasswordQueueSeries;
  readonly store: StoreSeries;
  readonly process: ProcessSeries;
}

export interface GateMetricsOptions {
  /** The package's version, for `tokengate_build_info`. */
  readonly version: string;
  /** When the process started, epoch seconds. */
  readonly startTime: number;
}

/** Series made per label value on demand, each label once: route and service names are a fixed set. */
function memoize<T>(make: (label: string) => T): (label: string) => T {
  const made = new Map<string, T>();
  return (label) => {
    let found = made.get(label);
    if (found === undefined) made.set(label, (found = make(label)));
    return found;
  };
}

/** A counter by route and code with its duration histogram by route: one StatusSeries per route, made once. */
function createStatusFamily(registry: Registry, counted: { name: string; help: string }, timed: { name: string; help: string }) {
  const counter = registry.counter({ ...counted, labelNames: ["route", "code"] });
  const durations = registry.histogram({ ...timed, labelNames: ["route"], buckets: REQUEST_BUCKETS });
  return memoize((label) => new StatusSeries(counter, label, durations.child(label)));
}

function createHttpSeries(registry: Registry) {
  return {
    routeSeries: createStatusFamily(
      registry,
      {
        name: "tokengate_http_requests_total",
        help: "Requests the gate answered, by route (its route path, a routes-file route name, or unmatched) and status code (listed codes, else their class)",
      },
      {
        name: "tokengate_http_request_duration_seconds",
        help: "Time from a request reaching the gate to its answer (the response head; for a WebSocket, the upgrade), by route",
      },
    ),
    upstreamSeries: createStatusFamily(
      registry,
      {
        name: "tokengate_proxy_upstream_responses_total",
        help: "Answers of the routes file's services, by route name and status code (none: no answer, i.e. unreachable, too slow or a body too large)",
      },
      {
        name: "tokengate_proxy_upstream_duration_seconds",
        help: "Time a routes-file service took to answer (its response head), by route name",
      },
    ),
  };
}

/**
 * Every credential check is counted; the ones that wait are timed. A token answered from memory (a
 * known key, the bootstrap token, a cached JWT) takes microseconds, and reading the clock around it
 * would cost a good part of that on every request; its time is in the request's duration. A token
 * that waits (a JWT's signature, the store asked for a key it had not seen) and every password
 * (queue and argon2id) are timed.
 */
function createAuthSeries(registry: Registry) {
  const checks = registry.counter({
    name: "tokengate_auth_checks_total",
    help: "Presented credentials checked, by credential (token or password) and result (valid, invalid, unavailable)",
    labelNames: ["credential", "result"],
  });
  const durations = registry.histogram({
    name: "tokengate_auth_duration_seconds",
    help: "Time of credential checks that waited: a token's signature check or store lookup, a password's queue and argon2id",
    labelNames: ["credential", "result"],
    buckets: AUTH_BUCKETS,
  });
  const outcome = (credential: string, result: string): VerificationOutcome => ({
    checks: checks.child(credential, result),
    duration: durations.child(credential, result),
  });
  const series = (credential: string): VerificationSeries => ({
    valid: outcome(credential, "valid"),
    invalid: outcome(credential, "invalid"),
    unavailable: outcome(credential, "unavailable"),
  });
  const refusals = registry.counter({
    name: "tokengate_refusals_total",
    help: "Refused authentication attempts, by the refusal's kind (core/errors.ts), whether or not they count toward a ban",
    labelNames: ["reason"],
  });
  // Every kind from the start: a rate() over a series that appears mid-way misses its first count.
  const byKind = Object.fromEntries(Object.keys(POLICIES).map((kind) => [kind, refusals.child(kind)])) as Record<
    GateErrorKind,
    CounterChild
  >;
  return {
    tokenChecks: series("token"),
    passwordChecks: series("password"),
    refusal: (kind: GateErrorKind) => byKind[kind],
  };
}

function createGuardSeries(registry: Registry) {
  const started = registry.counter({
    name: "tokengate_bans_started_total",
    help: "Bans this process started (a subject past the failure limit), by subject kind: addr, key or user",
    labelNames: ["subject"],
  });
  const active = registry.gauge({
    name: "tokengate_bans_active",
    help: "Bans in force in this process (its copy of the store's, all instances' bans), by subject kind",
    labelNames: ["subject"],
  });
  const byKind = <T>(make: (kind: BanSubjectKind) => T) =>
    Object.fromEntries(BAN_SUBJECT_KINDS.map((kind) => [kind, make(kind)])) as Record<BanSubjectKind, T>;
  return { bansStarted: byKind((kind) => started.child(kind)), bansActive: byKind((kind) => active.child(kind)) };
}

function createSocketSeries(registry: Registry): SocketSeries {
  const closes = registry.counter({
    name: "tokengate_websocket_closes_total",
    help: "WebSockets closed, by close code (RFC 6455's and the gate's own, else 3xxx, 4xxx or other)",
    labelNames: ["code"],
  });
  const byCode = new Array<CounterChild | undefined>(5000).fill(undefined);
  return {
    open: registry.gauge({ name: "tokengate_websockets_open", help: "WebSockets open now (proxied ones included)" }).child(),
    opened: registry.counter({ name: "tokengate_websockets_opened_total", help: "WebSockets opened after authentication" }).child(),
    revocationClose: registry
      .histogram({
        name: "tokengate_revocation_close_seconds",
        help: "Time from a key's revocation or a user's disabling (the time stored with it) to the close (4403) of a socket it held open",
        buckets: REVOCATION_BUCKETS,
      })
      .child(),
    closed: (code) => {
      const slot = Number.isInteger(code) && code >= 0 && code < 5000 ? code : 0;
      return (byCode[slot] ??= closes.child(closeCodeLabel(code)));
    },
  };
}

function createPasswordQueueSeries(registry: Registry): PasswordQueueSeries {
  const rejections = registry.counter({
    name: "tokengate_password_rejections_total",
    help: "Password checks refused at once with 503: queue_full, or holder_queued (this client or username already had one waiting)",
    labelNames: ["reason"],
  });
  return {
    depth: registry.gauge({ name: "tokengate_password_queue_depth", help: "Password checks waiting for the argon2id worker" }).child(),
    running: registry.gauge({ name: "tokengate_password_checks_running", help: "Password checks running now" }).child(),
    queueFull: rejections.child("queue_full"),
    holderQueued: rejections.child("holder_queued"),
  };
}

function createStoreSeries(registry: Registry): StoreSeries {
  return {
    poll: registry
      .histogram({
        name: "tokengate_store_poll_duration_seconds",
        help: "Time of one look at the store for other processes' changes (a reload included when there was one)",
        buckets: POLL_BUCKETS,
      })
      .child(),
    failures: registry.counter({ name: "tokengate_store_poll_failures_total", help: "Looks at the store that failed" }).child(),
    reloads: registry
      .counter({ name: "tokengate_store_reloads_total", help: "Reloads of the keyring after another process's change" })
      .child(),
    syncAge: registry
      .gauge({
        name: "tokengate_store_sync_age_seconds",
        help: "Seconds since the store last answered a look: how old the keyring's view may be",
      })
      .child(),
    stale: registry
      .gauge({
        name: "tokengate_store_stale",
        help: "1 while the keyring's view is too old to trust (credentials from the store are refused with 503), else 0",
      })
      .child(),
  };
}

function createProcessSeries(registry: Registry, options: GateMetricsOptions): ProcessSeries {
  registry
    .gauge({ name: "tokengate_build_info", help: "Always 1; the version as a label", labelNames: ["version"] })
    .child(options.version)
    .set(1);
  registry
    .gauge({ name: "process_start_time_seconds", help: "Start time of the process since the Unix epoch, in seconds" })
    .child()
    .set(options.startTime);
  return {
    rss: registry.gauge({ name: "process_resident_memory_bytes", help: "Resident memory size of the process, in bytes" }).child(),
    eventLoopLag: registry
      .histogram({
        name: "tokengate_event_loop_lag_seconds",
        help: "How late a timer set to fire every 500 ms fired: time the event loop was busy with other work",
        buckets: LAG_BUCKETS,
      })
      .child(),
  };
}

export function createGateMetrics(options: GateMetricsOptions): GateMetrics {
  const registry = createRegistry();
  const http = createHttpSeries(registry);
  const auth = createAuthSeries(registry);
  const guard = createGuardSeries(registry);
  const sockets = createSocketSeries(registry);
  const passwordQueue = createPasswordQueueSeries(registry);
  const store = createStoreSeries(registry);
  const processSeries = createProcessSeries(registry, options);
  return { registry, sample: registry.beforeRender, ...http, ...auth, ...guard, sockets, passwordQueue, store, process: processSeries };
}
