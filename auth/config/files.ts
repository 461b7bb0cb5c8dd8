/**
 * The files the configuration names besides the token: the TLS certificate and key, and the audit
 * log file. Read here for both composition roots (the server and the library); a file that cannot
 * be used is a ConfigProblem naming its variable and the fix, never a throw.
 */
import { openSync, readFileSync, writeSync } from "node:fs";
import { describeFsError } from "./bootstrap.ts";
import type { Config, ConfigProblem } from "./config.ts";

export interface TlsFiles {
  readonly tls: { readonly cert: string; readonly key: string };
  /** SHA-256 fingerprint of the certificate, as a person compares it. */
  readonly fingerprint: string;
}

const isProblem = (value: unknown): value is ConfigProblem => typeof value === "object" && value !== null && "variable" in value;

function readPem(variable: "TLS_CERT_FILE" | "TLS_KEY_FILE", path: string): string | ConfigProblem {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    return { variable, message: `names ${path}, which ${describeFsError(error)}; point it at a PEM file this user can read` };
  }
}

/** TLS_CERT_FILE and TLS_KEY_FILE, with the certificate's fingerprint; undefined without TLS. */
export async function readTlsFiles(config: Pick<Config, "tls">): Promise<TlsFiles | ConfigProblem | undefined> {
  if (config.tls === null) return undefined;
  const cert = readPem("TLS_CERT_FILE", config.tls.certFile);
  if (isProblem(cert)) return cert;
  const key = readPem("TLS_KEY_FILE", config.tls.keyFile);
  if (isProblem(key)) return key;
  // Loaded only with TLS: node:crypto costs ~5 ms of every start.
  const { X509Certificate } = await import("node:crypto");
  try {
    return { tls: { cert, key }, fingerprint: new X509Certificate(cert).fingerprint256 };
  } catch {
    return { variable: "TLS_CERT_FILE", message: `names ${config.tls.certFile}, which is not a PEM certificate` };
  }
}

/** Where audit lines go: AUDIT_LOG_FILE (appended, readable only by this user), or `fallback` (the log) when unset. */
export function openAuditFile(
  config: Pick<Config, "auditLogFile">,
  fallback: (line: string) => void,
): ((line: string) => void) | ConfigProblem {
  if (config.auditLogFile === null) return fallback;
  try {
    const fd = openSync(config.auditLogFile, "a", 0o600);
    return (line) => void writeSync(fd, line);
  } catch (error) {
    return {
      variable: "AUDIT_LOG_FILE",
      message: `names ${config.auditLogFile}, which ${describeFsError(error)}; create its directory or fix its permissions`,
    };
  }
}

export { isProblem as isConfigProblem };
