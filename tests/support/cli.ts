/**
 * The real CLI as a subprocess: `bun run cli.ts …` with a clean environment, piped stdin, or a real
 * pseudo-terminal (util-linux `script`) that answers prompts as they appear on the screen.
 */
import { expect } from "bun:test";
import { join } from "node:path";
import { EXIT } from "../../auth/cli/shared.ts";
import { clockEnvironment, makeTempDir, ROOT } from "./harness.ts";
import { captureOutput, trackSecret } from "./secrets.ts";
import { openDataDirStore } from "./stores.ts";

export const CLI_ENTRY = join(ROOT, "cli.ts");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Added to a clean environment (PATH, and faketime's variables): nothing from the developer's shell leaks in. */
  readonly env: Record<string, string>;
  /** Piped to stdin; empty by default. */
  readonly input?: string;
  readonly cwd?: string;
}

export async function runCliProcess(args: readonly string[], options: CliOptions): Promise<CliResult> {
  const proc = Bun.spawn([process.execPath, "run", CLI_ENTRY, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...clockEnvironment(), ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdin: new Blob([options.input ?? ""]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  // stdout legitimately prints a new key once; stderr never may, so it joins the leak scan.
  captureOutput(stderr);
  return { code, stdout, stderr };
}

const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** Each step waits until `prompt` is on the screen (after the previous step's), then types `reply` and Enter. */
export interface TerminalStep {
  readonly prompt: string;
  readonly reply: string;
}

/**
 * Runs the CLI on a real pseudo-terminal, as a person at a console would: stdin is a TTY, and
 * replies are typed only once their prompt shows. Returns the exit code and everything the
 * terminal displayed (which is also scanned for secrets).
 */
export async function runCliInTerminal(
  args: readonly string[],
  env: Record<string, string>,
  steps: readonly TerminalStep[],
): Promise<{ code: number; screen: string }> {
  const command = [process.execPath, "run", CLI_ENTRY, ...args].map(shellQuote).join(" ");
  const proc = Bun.spawn(["script", "-qec", command, "/dev/null"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "dumb", ...clockEnvironment(), ...env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  let screen = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of proc.stdout) screen += decoder.decode(chunk, { stream: true });
  })();
  let seen = 0;
  for (const step of steps) {
    const deadline = Date.now() + 10_000;
    while (screen.indexOf(step.prompt, seen) === -1) {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`prompt ${JSON.stringify(step.prompt)} not shown; screen: ${JSON.stringify(screen)}`);
      await Bun.sleep(10);
    }
    seen = screen.indexOf(step.prompt, seen) + step.prompt.length;
    proc.stdin.write(`${step.reply}\r`);
    await proc.stdin.flush();
  }
  const code = await proc.exited;
  await reading;
  proc.stdin.end();
  captureOutput(screen);
  return { code, screen };
}

export async function cli(dataDir: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, { env: { DATA_DIR: dataDir } });
}

export async function cliWithInput(dataDir: string, input: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, { env: { DATA_DIR: dataDir }, input });
}

/** A data directory with an empty store in it, as the server's first start leaves it. */
export async function makeDataDir(): Promise<{ path: string; [Symbol.dispose](): void }> {
  const dir = makeTempDir();
  await (await openDataDirStore(dir.path)).close();
  return dir;
}

export async function listKeys(dataDir: string): Promise<Array<Record<string, unknown>>> {
  const listed = await cli(dataDir, "keys", "list", "--json");
  expect(listed.code).toBe(EXIT.ok);
  return JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
}

export async function createKey(dataDir: string, ...args: string[]): Promise<{ id: string; key: string; scopes: string[] }> {
  const result = await cli(dataDir, "keys", "create", "--json", ...args);
  expect(result.code).toBe(EXIT.ok);
  const created = JSON.parse(result.stdout) as { id: string; key: string; scopes: string[] };
  trackSecret(created.key);
  return created;
}

/** Runs the CLI on a fresh data directory: the exit code, and a text somewhere in its output. */
export async function expectCliAnswer(args: readonly string[], code: number, text: string): Promise<void> {
  using dir = await makeDataDir();
  const result = await cli(dir.path, ...args);
  expect(result.code).toBe(code);
  expect(result.stdout + result.stderr).toContain(text);
}
