/**
 * The bootstrap token: the seed's shared secret. It comes from AUTH_TOKEN, from the file named by
 * AUTH_TOKEN_FILE, or, when neither is set, from a token generated on first start and stored under
 * DATA_DIR with mode 0600. This module does the file I/O; the rules live in config.ts.
 */
import { chmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync, closeSync, fsyncSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkSecret, type ConfigProblem, type TokenSource } from "./config.ts";
import { generateToken } from "../secrets/tokens.ts";

export const TOKEN_FILE_NAME = "auth_token";

export type TokenOrigin = "env" | "file" | "generated" | "stored";

export type BootstrapResult =
  | {
      readonly ok: true;
      readonly token: string;
      readonly origin: TokenOrigin;
      /** Absolute path of the file the token came from or was written to. */
      readonly path?: string;
      readonly warnings: readonly string[];
    }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** The `code` of a Node/Bun system error (`ENOENT`, `EADDRINUSE`, …), if it has one. */
export function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

/** A file-system failure in plain words, to follow "which": "does not exist", "cannot be accessed …". */
export function describeFsError(error: unknown): string {
  switch (errorCode(error)) {
    case "ENOENT":
      return "does not exist";
    case "EACCES":
    case "EPERM":
      return "cannot be accessed by this user (permission denied)";
    case "EISDIR":
      return "is a directory, not a file";
    case "ENOTDIR":
      return "has a path component that is not a directory";
    case "EROFS":
      return "is on a read-only file system";
    default:
      return `cannot be used (${errorCode(error) ?? "unknown error"})`;
  }
}

/** File contents minus the single trailing newline that `echo` and editors add. */
export function readSecretFile(path: string): string {
  return readFileSync(path, "latin1").replace(/\r?\n$/, "");
}

function groupOrOtherCanRead(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

export function loadBootstrapToken(source: TokenSource, dataDir: string): BootstrapResult {
  switch (source.kind) {
    case "env":
      return { ok: true, token: source.value, origin: "env", warnings: [] };
    case "file":
      return loadFromFile(resolve(source.path));
    case "generated":
      return loadOrGenerate(resolve(dataDir));
  }
}

function loadFromFile(path: string): BootstrapResult {
  let token: string;
  try {
    token = readSecretFile(path);
  } catch (error) {
    return {
      ok: false,
      problems: [
        {
          variable: "AUTH_TOKEN_FILE",
          message: `names ${path}, which ${describeFsError(error)}; point it at a readable file that holds the secret`,
        },
      ],
    };
  }
  const problems = checkSecret(token).map((message) => ({
    variable: "AUTH_TOKEN_FILE",
    message: `names ${path}, whose content ${message}`,
  }));
  if (problems.length > 0) return { ok: false, problems };
  const warnings = groupOrOtherCanRead(path)
    ? [`${path} can be read by other users; restrict it with chmod 600 (or the equivalent for your secret store)`]
    : [];
  return { ok: true, token, origin: "file", path, warnings };
}

function loadOrGenerate(dataDir: string): BootstrapResult {
  const path = join(dataDir, TOKEN_FILE_NAME);
  const dataDirProblem = (error: unknown): BootstrapResult => ({
    ok: false,
    problems: [
      {
        variable: "DATA_DIR",
        message: `is ${dataDir}, where the generated token file ${describeFsError(error)}; create the directory and give this user write access, set DATA_DIR elsewhere, or set AUTH_TOKEN / AUTH_TOKEN_FILE`,
      },
    ],
  });

  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    return dataDirProblem(error);
  }

  const token = generateToken();
  try {
    // 'wx' fails if the file exists, so two servers starting at once never overwrite each other's token.
    const fd = openSync(path, "wx", 0o600);
    try {
      writeSync(fd, `${token}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { ok: true, token, origin: "generated", path, warnings: [] };
  } catch (error) {
    if (errorCode(error) !== "EEXIST") return dataDirProblem(error);
  }

  let stored: string;
  try {
    stored = readSecretFile(path);
  } catch (error) {
    return dataDirProblem(error);
  }
  const problems = checkSecret(stored).map((message) => ({
    variable: "DATA_DIR",
    message: `holds ${path}, whose content ${message}; delete the file to have a new token generated`,
  }));
  if (problems.length > 0) return { ok: false, problems };
  const warnings: string[] = [];
  if (groupOrOtherCanRead(path)) {
    try {
      chmodSync(path, 0o600);
      warnings.push(`${path} was readable by other users; its mode was reset to 600`);
    } catch {
      warnings.push(`${path} can be read by other users and this user cannot change that; run chmod 600 on it`);
    }
  }
  return { ok: true, token: stored, origin: "stored", path, warnings };
}
