/**
 * The CLI's composition root (as server.ts is the server's): reads STORE_URL, DATA_DIR, ROLE_SCOPES,
 * JWT_ALG, HOST and PORT from the environment (`doctor` reads all of it), opens the same store the server uses, runs one command and
 * exits with its code.
 */
import { runCli, type StoreOptions } from "./auth/cli.ts";
import { DEFAULT_ROLE_SCOPES, parseRoleScopes, parseStoreUrl, type StoreLocation } from "./auth/config.ts";
import { openStore } from "./auth/databases.ts";
import { listReachableUrls } from "./auth/addresses.ts";
import { describeFsError, errorCode } from "./auth/bootstrap.ts";
import { runDoctor } from "./auth/doctor.ts";
import { listKnownScopes } from "./auth/scopes.ts";
import type { Store } from "./auth/store.ts";
import { statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { basename, dirname, resolve } from "node:path";

/** Exit code when the reader of our output went away early (`| head`): 128 + SIGPIPE, as a shell reports coreutils. */
export const EXIT_CLOSED_PIPE = 141;

/** The first line of piped stdin; `undefined` when stdin holds nothing at all. */
async function readPipedLine(): Promise<string | undefined> {
  const text = await Bun.stdin.text();
  return text === "" ? undefined : text.split(/\r?\n/)[0];
}

/** Applies one typed character to the line; `done` ends the line, `undefined` as line means end of input. */
function typeChar(line: string, char: string): { line: string | undefined; done: boolean } {
  if (char === "\r" || char === "\n") return { line, done: true };
  if (char === "\u0004") return line === "" ? { line: undefined, done: true } : { line, done: false };
  if (char === "\u007f" || char === "\b") return { line: [...line].slice(0, -1).join(""), done: false };
  if (char === "\u0015") return { line: "", done: false };
  return { line: line + char, done: false };
}

/** A line typed at the terminal without echo (raw mode), restored however it ends; Ctrl-C exits with 130. */
function readTerminalLine(prompt: string): Promise<string | undefined> {
  const stdin = process.stdin;
  const decoder = new TextDecoder();
  let line: string | undefined = "";
  // Echo goes off before the prompt shows, so nothing typed in answer to it is ever echoed.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.resume();
  return new Promise((done) => {
    const finish = (interrupted: boolean) => {
      stdin.off("data", onData);
      stdin.off("end", onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (interrupted) process.exit(130);
      done(line);
    };
    const onData = (chunk: Buffer) => {
      for (const char of decoder.decode(chunk, { stream: true })) {
        if (char === "\u0003") return finish(true);
        const typed = typeChar(line ?? "", char);
        line = typed.line;
        if (typed.done) return finish(false);
      }
    };
    // A terminal that goes away (hang-up) ends the input: nothing was given.
    const onEnd = () => {
      line = undefined;
      finish(false);
    };
    stdin.on("data", onData);
    stdin.on("end", onEnd);
  });
}

function readPassword(prompt: string): Promise<string | undefined> {
  return process.stdin.isTTY ? readTerminalLine(prompt) : readPipedLine();
}

/**
 * A reader that stops early (`| head`, `| true`) closes the pipe, and the next write fails with
 * EPIPE: end quietly, as a shell tool killed by SIGPIPE would, instead of with a stack trace.
 */
function endQuietlyOnClosedPipe(): void {
  process.stdout.on("error", (error) => {
    if (errorCode(error) !== "EPIPE") process.stderr.write(`cannot write the output: ${describeFsError(error)}\n`);
    process.exit(errorCode(error) === "EPIPE" ? EXIT_CLOSED_PIPE : 1);
  });
  process.stderr.on("error", (error) => process.exit(errorCode(error) === "EPIPE" ? EXIT_CLOSED_PIPE : 1));
}

/**
 * Why the SQLite store cannot be opened as asked, or `undefined`. Opening creates a missing file,
 * and an empty store where no server looks (a typo in DATA_DIR, the default ./data of another
 * working directory) would swallow keys and users silently; only the server's first start, or an
 * explicit --create-store, makes one.
 */
function explainMissingStore(file: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const path = resolve(file);
  try {
    statSync(path);
    return undefined;
  } catch (error) {
    if (errorCode(error) !== "ENOENT") return `${path} ${describeFsError(error)}; run this as the user the server runs as`;
  }
  const variable = (env.STORE_URL ?? "").trim() !== "" ? "STORE_URL" : "DATA_DIR";
  const unset = variable === "DATA_DIR" && (env.DATA_DIR ?? "") === "" ? " (unset, so ./data under the current directory)" : "";
  return (
    `no tokengate store at ${path}: ${describeParent(dirname(path), basename(path))}. The server creates it on its first start: ` +
    `start the server once with this ${variable}${unset}, or check ${variable} and the directory you run this from. ` +
    "To make an empty store here on purpose, keys create and users add take --create-store"
  );
}

function describeParent(dir: string, file: string): string {
  try {
    return statSync(dir).isDirectory() ? `${dir} holds no ${file}` : `${dir} is not a directory`;
  } catch {
    return `${dir} does not exist`;
  }
}

function openExistingStore(location: StoreLocation, env: Readonly<Record<string, string | undefined>>, options?: StoreOptions): Promise<Store> {
  // PostgreSQL is another case: its database must exist already, and the server and CLI create only tables in it.
  const missing = location.kind === "sqlite" && options?.create !== true ? explainMissingStore(location.file, env) : undefined;
  return missing === undefined ? openStore(location) : Promise.reject(new Error(missing));
}

/** Runs one CLI command; also `tokengate keys …` in the single binary (tokengate.ts), which passes its name. */
export async function main(argv: readonly string[], program = "bun run cli"): Promise<number> {
  endQuietlyOnClosedPipe();
  const env = Bun.env;
  const now = Date.now;
  const interfaces = () => Object.values(networkInterfaces()).flat().filter((net) => net !== undefined);
  const shared = {
    io: { out: (text: string) => void process.stdout.write(text), err: (text: string) => void process.stderr.write(text) },
    now,
    readPassword,
    typedPasswords: process.stdin.isTTY === true,
    program,
    examine: () => runDoctor({ env, now: now(), interfaces: interfaces(), uid: process.getuid?.() ?? -1 }),
  };
  // The doctor reports a broken configuration instead of refusing to start over it.
  if (argv[0] === "doctor") {
    const unused = () => Promise.reject(new Error("doctor opens no store"));
    return runCli(argv, { ...shared, jwtAlg: "EdDSA", openStore: unused, roleScopes: new Map(), knownScopes: [], consoleUrls: () => [] });
  }
  const dataDir = env.DATA_DIR === undefined || env.DATA_DIR === "" ? "./data" : env.DATA_DIR;
  const roleScopes = parseRoleScopes(env.ROLE_SCOPES === undefined || env.ROLE_SCOPES === "" ? DEFAULT_ROLE_SCOPES : env.ROLE_SCOPES);
  if (roleScopes === undefined) {
    process.stderr.write(`ROLE_SCOPES must look like role=scope,scope;role=scope, e.g. ${DEFAULT_ROLE_SCOPES}\n`);
    return 78;
  }
  const location = parseStoreUrl(env.STORE_URL, dataDir);
  if (location === undefined) {
    process.stderr.write("STORE_URL must be sqlite:///path/to/tokengate.db or postgres://user:password@host:5432/database (or unset)\n");
    return 78;
  }
  const jwtAlg = env.JWT_ALG === "HS256" ? "HS256" : "EdDSA";
  const port = /^\d{1,5}$/.test(env.PORT ?? "") ? Number(env.PORT) : 8000;
  const scheme = env.TLS_CERT_FILE === undefined || env.TLS_CERT_FILE === "" ? "http" : "https";
  return runCli(argv, {
    ...shared,
    jwtAlg,
    openStore: (options) => openExistingStore(location, env, options),
    roleScopes,
    knownScopes: listKnownScopes(roleScopes),
    consoleUrls: () => listReachableUrls(scheme, env.HOST === undefined || env.HOST === "" ? "0.0.0.0" : env.HOST, port, interfaces()),
  });
}

if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
