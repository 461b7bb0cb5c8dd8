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
  // The fields after the command name, which is in parentheses and may hold ") " itself.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** One server's figures over the same seconds as the other's: answers per second, and per CPU tick. */
async function loadOne(settings: Pick<MetricsSettings, "seconds" | "connections">, server: RunningServer, row: MetricsRow) {
  const before = cpuTicks(server.proc.pid);
  const url = `http://127.0.0.1:${server.port}/secure-data`;
  const figures = await wrk({ url, seconds: settings.seconds, connections: settings.connections, headers: row.headers });
  if (figures.non2xx > 0) throw new Error(`metrics A/B (${row.label}): ${figures.non2xx} answers were not 2xx`);
  return { rps: figures.rps, perTick: figures.rps / Math.max(cpuTicks(server.proc.pid) - before, 1) };
}

/**
 * `pairs` pairs of a server made by `start(a)` over one made by `start(b)`, loaded at once. Each
 * pair has two fresh processes (two identical servers kept for a whole run differed by up to 3%, a
 * process's own layout, more than the cost being measured); which one starts first alternates.
 */
async function comparePairs(settings: MetricsSettings, a: boolean, b: boolean, row: MetricsRow): Promise<MetricsResult> {
  const pairs: Array<{ rps: number; perCpu: number }> = [];
  for (let pair = 0; pair < settings.pairs; pair++) {
    const aFirst = pair % 2 === 0;
    const first = await settings.start(aFirst ? a : b);
    const second = await settings.start(aFirst ? b : a);
    const [serverA, serverB] = aFirst ? [first, second] : [second, first];
    try {
      const both = (seconds: number) =>
        Promise.all([loadOne({ ...settings, seconds }, serverA, row), loadOne({ ...settings, seconds }, serverB, row)]);
      await both(1); // warm-up: JIT, connections
      const [onA, onB] = await both(settings.seconds);
      const result = { rps: onA.rps / onB.rps, perCpu: onA.perTick / onB.perTick };
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
