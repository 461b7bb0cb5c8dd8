/**
 * Structured logging. The logger formats; a sink writes. Nothing here knows about secrets: callers
 * pass only ids and redacted targets, and tests scan what the sink received to prove it.
 */
import type { LogFormat, LogLevel } from "./config.ts";

export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

export interface LogSink {
  write(line: string): void;
}

export interface Logger {
  readonly level: LogLevel;
  enabled(level: Exclude<LogLevel, "silent">): boolean;
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

function formatPretty(level: Exclude<LogLevel, "silent">, message: string, fields: LogFields | undefined, now: Date): string {
  let line = `${now.toISOString().slice(11, 23)} ${LABEL[level]} ${message.replace(/[\x00-\x1f\x7f]/g, " ")}`;
  if (fields !== undefined) {
    for (const key in fields) {
      const value = fields[key];
      if (value !== undefined) line += ` ${key}=${prettyValue(value)}`;
    }
  }
  return `${line}\n`;
}

function formatJson(level: Exclude<LogLevel, "silent">, message: string, fields: LogFields | undefined, now: Date): string {
  return `${JSON.stringify({ time: now.toISOString(), level, msg: message, ...fields })}\n`;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly sink: LogSink;
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = RANK[options.level];
  const format = options.format === "json" ? formatJson : formatPretty;
  const emit = (level: Exclude<LogLevel, "silent">, message: string, fields?: LogFields) => {
    if (RANK[level] < threshold) return;
    options.sink.write(format(level, message, fields, new Date()));
  };
  return {
    level: options.level,
    enabled: (level) => RANK[level] >= threshold,
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
  };
}
