/**
 * The CLI's composition root (as server.ts is the server's): reads STORE_URL, DATA_DIR, ROLE_SCOPES,
 * JWT_ALG, HOST and PORT from the environment (`doctor` reads all of it), opens the same store the server uses, runs one command and
 * exits with its code.
 */
import { runCli, type StoreOptions } from "./auth/cli/commands.ts";
import { formatConfigProblems, parseCliSettings, type StoreLocation } from "./auth/config/config.ts";
import { describeStore, openStore } from "./auth/store/open.ts";
import { listReachableUrls } from "./auth/core/addresses.ts";
import { describeFsError, errorCode } from "./auth/config/bootstrap.ts";
import { runDoctor } from "./auth/cli/doctor.ts";
import { listKnownScopes } from "./auth/http/scopes.ts";
import { METRICS_SCOPE } from "./auth/http/metrics.ts";
import { ADMIN_SCOPE } from "./auth/admin/endpoints.ts";
import { createSeedRoutes } from "./auth/http/routes.ts";
import { loadRoutesFile } from "./auth/config/routes-file.ts";
import type { Store } from "./auth/store/store.ts";
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

function openExistingStore(
  location: StoreLocation,
  env: Readonly<Record<string, string | undefined>>,
  options?: StoreOptions,
): Promise<Store> {
  // PostgreSQL is another case: its database must exist already, and the server and CLI create only tables in it.
  const missing = location.kind === "sqlite" && options?.create !== true ? explainMissingStore(location.file, env) : undefined;
  return missing === undefined ? openStore(location) : Promise.reject(new Error(missing));
}

/** Runs one CLI command; also `tokengate keys …` in the single binary (tokengate.ts), which passes its name. */
export async function main(argv: readonly string[], program = "bun run cli"): Promise<number> {
  endQuietlyOnClosedPipe();
  const env = Bun.env;
  const now = Date.now;
  const interfaces = () =>
    Object.values(networkInterfaces())
      .flat()
      .filter((net) => net !== undefined);
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
  // The same variable parsers as the server's: what the server would refuse, the CLI refuses alike.
  const parsed = parseCliSettings(env);
  if (!parsed.ok) {
    process.stderr.write(formatConfigProblems(parsed.problems, "the command did not run"));
    return 78;
  }
  const { store, roleScopes, jwtAlg, host, port, scheme, routesFile } = parsed.settings;
  // The scopes the user's own routes need are known scopes too (keys are made for them). A broken
  // routes file stops the server, not the CLI: it is said once, and the commands go on without it.
  const services = loadRoutesFile(routesFile);
  if (!services.ok) process.stderr.write(formatConfigProblems(services.problems, "its routes' scopes are not known to this command"));
  return runCli(argv, {
    ...shared,
    jwtAlg,
    openStore: (options) => openExistingStore(store, env, options),
    storeName: describeStore(store),
    roleScopes,
    knownScopes: listKnownScopes(roleScopes, [
      ...createSeedRoutes(),
      ...(services.ok ? services.routes : []),
      { scope: ADMIN_SCOPE },
      { scope: METRICS_SCOPE },
    ]),
    consoleUrls: () => listReachableUrls(scheme, host, port, interfaces()),
  });
}

if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
