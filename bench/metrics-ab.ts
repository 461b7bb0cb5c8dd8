/**
 * The metrics A/B, side by side: the default server (metrics on) and the same one with
 * METRICS=false, both on core 0, loaded at the same moment by two wrk on core 1. Each server gets
 * about half the core, so a slower stretch of the machine falls on both alike, which one after the
 * other it does not (rounds run in sequence here differed by ±15% between identical servers).
 * Per pair: the ratio of requests per second, and of requests per CPU second (the server's own
 * time from /proc, which also corrects for an uneven split of the core). Ratios are medians over
 * the pairs; 1.000 means metrics cost nothing measurable. An A/A control (metrics on against
 * metrics on) shows how close to 1.000 two identical servers land.
 */
import { readFileSync } from "node:fs";
import { median, wrk, type RunningServer } from "./lib.ts";

export interface MetricsRow {
  readonly key: string;
  readonly label: string;
  readonly headers: readonly string[];
}

export interface MetricsSettings {
  /** Starts a fresh server, metrics on or off; every pair has its own two. */
  readonly start: (metrics: boolean) => Promise<RunningServer>;
  readonly stop: (server: RunningServer) => Promise<void>;
  readonly rows: readonly MetricsRow[];
  readonly pairs: number;
  readonly seconds: number;
  readonly connections: number;
  readonly say: (text: string) => void;
}

export interface MetricsResult {
  /** Metrics on over off: requests per second. */
  readonly rps: number;
  /** Metrics on over off: requests per CPU second of the server. */
  readonly perCpu: number;
  readonly pairs: number;
}

/** User and system time a process has spent, in clock ticks (/proc/PID/stat fields 14 and 15). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** One pair: both servers under the same load at once; `a` over `b` in answers and in answers per CPU time. */
async function runPair(
  settings: Pick<MetricsSettings, "seconds" | "connections">,
  a: RunningServer,
  b: RunningServer,
  row: MetricsRow,
  flip: boolean,
) {
  // Which wrk starts first alternates, so neither server always gets the head start.
  const servers = flip ? [b, a] : [a, b];
  const before = servers.map((server) => cpuTicks(server.proc.pid));
  const figures = await Promise.all(
    servers.map((server) =>
      wrk({
        url: `http://127.0.0.1:${server.port}/secure-data`,
        seconds: settings.seconds,
        connections: settings.connections,
        headers: row.headers,
      }),
    ),
  );
  const ticks = servers.map((server, i) => Math.max(cpuTicks(server.proc.pid) - before[i]!, 1));
  const [x, y] = flip ? [1, 0] : [0, 1];
  const [first, second] = [figures[x]!, figures[y]!];
  if (first.non2xx + second.non2xx > 0) throw new Error(`metrics A/B (${row.label}): ${first.non2xx + second.non2xx} answers were not 2xx`);
  return { rps: first.rps / second.rps, perCpu: first.rps / ticks[x]! / (second.rps / ticks[y]!) };
}

/**
 * `pairs` pairs of a server made by `start(a)` over one made by `start(b)`, each pair with two fresh
 * processes started in turn (which first alternates): two identical servers kept for a whole run
 * differed by up to 3% (a process's own layout), more than the cost being measured.
 */
async function comparePairs(settings: MetricsSettings, a: boolean, b: boolean, row: MetricsRow): Promise<MetricsResult> {
  const pairs: Array<{ rps: number; perCpu: number }> = [];
  for (let pair = 0; pair < settings.pairs; pair++) {
    const flip = pair % 2 === 1;
    const first = await settings.start(flip ? b : a);
    const second = await settings.start(flip ? a : b);
    const [serverA, serverB] = flip ? [second, first] : [first, second];
    try {
      await runPair({ ...settings, seconds: 1 }, serverA, serverB, row, flip); // warm-up: JIT, connections
      const result = await runPair(settings, serverA, serverB, row, flip);
      pairs.push(result);
      settings.say(
        `  metrics A/B ${row.label.padEnd(16)} pair ${pair + 1}: req/s ${result.rps.toFixed(3)}, per CPU ${result.perCpu.toFixed(3)}`,
      );
    } finally {
      await Promise.all([settings.stop(first), settings.stop(second)]);
    }
  }
  return { rps: median(pairs.map((p) => p.rps)), perCpu: median(pairs.map((p) => p.perCpu)), pairs: pairs.length };
}

/**
 * Each row: metrics on over off. Then the control: metrics on over metrics on, on the first row's
 * credential; how far from 1.000 it lands is the method's noise.
 */
export async function runMetricsAB(settings: MetricsSettings): Promise<Record<string, MetricsResult>> {
  const results: Record<string, MetricsResult> = {};
  for (const row of settings.rows) results[row.key] = await comparePairs(settings, true, false, row);
  const first = settings.rows[0]!;
  results.control = await comparePairs(settings, true, true, { ...first, label: `${first.label}, on/on` });
  return results;
}
