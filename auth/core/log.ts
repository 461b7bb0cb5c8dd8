/**
 * Structured logging. The logger formats; a sink writes. Nothing here knows about secrets: callers
 * pass only ids and redacted targets, and tests scan what the sink received to prove it.
 */
import type { Clock } from "./clock.ts";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** Which requests get an access-log line: all, only refusals (and WebSocket connections), or none. */
export const ACCESS_LOG_MODES = ["all", "refused", "off"] as const;
export type AccessLogMode = (typeof ACCESS_LOG_MODES)[number];

export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/** Milliseconds since a `performance.now()` reading, to two decimals: the latencies log lines carry (not wall-clock time). */
export function elapsedMs(started: number): number {
  return roundMs(performance.now() - started);
}

/** Milliseconds as the logs write them: to the hundredth. */
export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export interface LogSink {
  write(line: string): void;
}

/** One access-log entry. `target` must already be redacted; `principal` is a public id. */
export interface AccessEntry {
  readonly method: string;
  readonly target: string;
  readonly status: number;
  readonly ms: number;
  readonly principal: string;
  readonly remote: string;
  /** For a proxied request: the route's name, the upstream's status (0: none) and its latency. */
  readonly upstream?: { readonly route: string; readonly status: number; readonly ms: number } | undefined;
}

export interface Logger {
  readonly level: LogLevel;
  enabled(level: Exclude<LogLevel, "silent">): boolean;
  /** The per-request line (level info). Formatted without a generic object walk: it runs on every request. */
  access(entry: AccessEntry): void;
  /** A line formatted elsewhere (audit events), written to the same sink whatever the level. */
  raw(line: string): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
const LABEL: Record<Exclude<LogLevel, "silent">, string> = { debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR" };

/** Pretty values are unquoted when safe; anything with spaces, quotes or control bytes is JSON-quoted. */
function prettyValue(value: string | number | boolean): string {
  const text = String(value);
  return /^[\x21-\x7e]*$/.test(text) && !text.includes('"') && text !== "" ? text : JSON.stringify(text);
}

/** ISO time, recomputed at most once per millisecond: at tens of thousands of lines a second it adds up. */
function createIsoClock(now: Clock): () => string {
  let clockMs = Number.NaN;
  let clockIso = "";
  return () => {
    const at = now();
    if (at !== clockMs) {
      clockMs = at;
      clockIso = new Date(at).toISOString();
    }
    return clockIso;
  };
}

function formatPretty(isoNow: () => string, level: Exclude<LogLevel, "silent">, message: string, fields: LogFields | undefined): string {
  let line = `${isoNow().slice(11, 23)} ${LABEL[level]} ${message.replace(/[\x00-\x1f\x7f]/g, " ")}`;
  if (fields !== undefined) {
    for (const key in fields) {
      const value = fields[key];
      if (value !== undefined) line += ` ${key}=${prettyValue(value)}`;
    }
  }
  return `${line}\n`;
}

function formatJson(isoNow: () => string, level: Exclude<LogLevel, "silent">, message: string, fields: LogFields | undefined): string {
  return `${JSON.stringify({ time: isoNow(), level, msg: message, ...fields })}\n`;
}

/** Printable ASCII without `"` or `\` needs no JSON escaping. */
const JSON_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const jsonString = (text: string) => (JSON_SAFE.test(text) ? `"${text}"` : JSON.stringify(text));

// Same fields and order as formatJson would produce, built directly: this runs once per request.
// Method and target are client-chosen, so they are escaped when they need it; principal ids and
// addresses are ours.
function accessJson(isoNow: () => string, entry: AccessEntry): string {
  return `{"time":"${isoNow()}","level":"info","msg":"request","method":${jsonString(entry.method)},"path":${jsonString(entry.target)},"status":${entry.status},"ms":${entry.ms},"principal":"${entry.principal}","remote":"${entry.remote}"${upstreamJson(entry)}}\n`;
}

// Route names are ours (the routes file allows [a-z0-9_-] only), so they need no escaping.
function upstreamJson(entry: AccessEntry): string {
  const { upstream } = entry;
  return upstream === undefined ? "" : `,"route":"${upstream.route}","upstream_status":${upstream.status},"upstream_ms":${upstream.ms}`;
}

function upstreamPretty(entry: AccessEntry): string {
  const { upstream } = entry;
  return upstream === undefined ? "" : ` route=${upstream.route} upstream_status=${upstream.status} upstream_ms=${upstream.ms}`;
}

function accessPretty(isoNow: () => string, entry: AccessEntry): string {
  return `${isoNow().slice(11, 23)} ${LABEL.info} ${prettyValue(entry.method)} ${prettyValue(entry.target)} ${entry.status} ${entry.ms}ms principal=${entry.principal} remote=${entry.remote}${upstreamPretty(entry)}\n`;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly sink: LogSink;
  /** The clock stamped on each line. */
  readonly now: Clock;
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = RANK[options.level];
  const format = options.format === "json" ? formatJson : formatPretty;
  const formatAccess = options.format === "json" ? accessJson : accessPretty;
  const { sink } = options;
  const isoNow = createIsoClock(options.now);
  const emit = (level: Exclude<LogLevel, "silent">, message: string, fields?: LogFields) => {
    if (RANK[level] < threshold) return;
    sink.write(format(isoNow, level, message, fields));
  };
  const accessOn = RANK.info >= threshold;
  return {
    level: options.level,
    enabled: (level) => RANK[level] >= threshold,
    access: (entry) => {
      if (accessOn) sink.write(formatAccess(isoNow, entry));
    },
    raw: (line) => sink.write(line),
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
  };
}
