/**
 * Shared machinery for the benchmarks: servers pinned to core 0, load generators pinned to core 1
 * (taskset), ports picked by the kernel, readiness by polling /healthz, RSS read from /proc.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const pinned = Bun.which("taskset") !== null;
export const onCore = (core: number, argv: string[]) => (pinned ? ["taskset", "-c", String(core), ...argv] : argv);

export interface RunningServer {
  readonly name: string;
  readonly port: number;
  readonly proc: Bun.Subprocess;
}

/** A port that was free a moment ago (the kernel picks it; we release it for the child). */
export function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  void probe.stop(true);
  return port;
}

/** Polls /healthz until it answers (with a 200 when `strict`: the cold-start measure). */
export async function waitHealthy(port: number, timeoutMs = 15_000, strict = true, pollMs = 5): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (
      await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => !strict || r.status === 200,
        () => false,
      )
    )
      return true;
    await Bun.sleep(pollMs);
  }
  return false;
}

/** Starts `entry` on core 0 with its stdout going to a file (as on a real box) and waits for /healthz. */
export async function startServer(name: string, entry: string, env: Record<string, string>, logDir: string): Promise<RunningServer> {
  const port = freePort();
  const proc = Bun.spawn(onCore(0, [process.execPath, "run", entry]), {
    env: { PATH: process.env.PATH ?? "", ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdout: Bun.file(join(logDir, `${name}.log`)),
    stderr: "inherit",
  });
  // Any answer means listening: the naive gate answers 401 to everything without its token.
  if (!(await waitHealthy(port, 15_000, false))) {
    proc.kill();
    throw new Error(`${name} did not start (see ${join(logDir, `${name}.log`)})`);
  }
  return { name, port, proc };
}

/** Resident set size of a process, in KiB (Linux). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

function toMicros(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (match === null) return Number.NaN;
  const value = Number(match[1]);
  return Math.round(match[2] === "us" ? value : match[2] === "ms" ? value * 1000 : value * 1_000_000);
}

export interface HttpFigures {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
}

export interface WrkOptions {
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  readonly headers?: readonly string[];
  /** A wrk Lua script and the environment it reads. */
  readonly script?: { readonly path: string; readonly env: Record<string, string> };
}

export async function wrk(options: WrkOptions): Promise<HttpFigures> {
  const argv = ["wrk", "-t1", `-c${options.connections}`, `-d${options.seconds}s`, "--latency"];
  for (const header of options.headers ?? []) argv.push("-H", header);
  if (options.script !== undefined) argv.push("-s", options.script.path);
  argv.push(options.url);
  const proc = Bun.spawn(onCore(1, argv), { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...options.script?.env } });
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN),
    p50: toMicros(/^\s+50%\s+(\S+)/m.exec(text)?.[1] ?? ""),
    p99: toMicros(/^\s+99%\s+(\S+)/m.exec(text)?.[1] ?? ""),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0),
  };
}

export const median = (numbers: readonly number[]): number => {
  const sorted = [...numbers].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** Runs a bench client script on core 1 and returns the JSON it prints last. */
export async function runClient<T>(root: string, script: string, args: string[]): Promise<T> {
  const proc = Bun.spawn(onCore(1, [process.execPath, "run", join(root, "bench", script), ...args]), { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  return JSON.parse(text.trim().split("\n").at(-1) ?? "{}") as T;
}

/** `bun build --compile --bytecode` of the raw server and of tokengate.ts, as `bun run build` ships it. */
export async function buildBinaries(outDir: string): Promise<{ raw: string; gate: string }> {
  const root = resolve(import.meta.dir, "..");
  const build = async (entry: string, name: string) => {
    const outfile = join(outDir, name);
    const proc = Bun.spawn([process.execPath, "build", "--compile", "--bytecode", "--minify", entry, "--outfile", outfile], {
      cwd: root,
      stdout: "ignore",
      stderr: "pipe",
    });
    if ((await proc.exited) !== 0) throw new Error(`bun build ${entry} failed: ${await new Response(proc.stderr).text()}`);
    return outfile;
  };
  return { raw: await build("./bench/servers/raw.ts", "raw-bin"), gate: await build("./tokengate.ts", "tokengate-bin") };
}
