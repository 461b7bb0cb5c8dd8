/**
 * The real CLI as a subprocess: `bun run cli.ts …` with a clean environment and piped stdin.
 */
import { join } from "node:path";
import { ROOT } from "./harness.ts";
import { captureOutput } from "./secrets.ts";

export const CLI_ENTRY = join(ROOT, "cli.ts");

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Added to a clean environment (PATH only): nothing from the developer's shell leaks in. */
  readonly env: Record<string, string>;
  /** Piped to stdin; empty by default. */
  readonly input?: string;
  readonly cwd?: string;
}

export async function runCliProcess(args: readonly string[], options: CliOptions): Promise<CliResult> {
  const proc = Bun.spawn([process.execPath, "run", CLI_ENTRY, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
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
