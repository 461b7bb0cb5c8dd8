/**
 * `bun run bench`: tokengate against two baselines measured in the same run, interleaved
 * (a b c a b c …) because the machine is noisy; ratios are medians of per-round ratios.
 *   (a) raw Bun.serve JSON handler   (b) naive gate: X-Auth-Token compared with ===
 *   (c) tokengate GET /secure-data with a valid token (constant-time compare, routing, logging)
 * Servers run on core 0, load generators on core 1 (taskset), loopback only, every run bounded.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateToken } from "../auth/tokens.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    "ws-seconds": { type: "string", default: "3" },
    "skip-ws": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    "log-level": { type: "string", default: "info" },
    "access-log": { type: "string", default: "all" },
  },
});
const rounds = Math.min(Math.max(Number(values.rounds), 1), 20);
const seconds = Math.min(Math.max(Number(values.seconds), 1), 30);
const connections = Math.min(Math.max(Number(values.connections), 1), 512);
const wsSeconds = Math.min(Math.max(Number(values["ws-seconds"]), 1), 30);
const root = resolve(import.meta.dir, "..");
const token = generateToken();
const dataDir = mkdtempSync(join(tmpdir(), "tokengate-bench-"));
const servers: RunningServer[] = [];
const say = (text: string) => {
  if (!values.json) console.error(text);
};

if (Bun.which("wrk") === null) {
  console.error("bench: wrk is not installed. Install it (Debian/Ubuntu: apt-get install wrk) and run again.");
  process.exit(1);
}
const pinned = Bun.which("taskset") !== null;
if (!pinned) say("bench: taskset not found; servers and load generators will share cores (figures are noisier)");
const onCore = (core: number, argv: string[]) => (pinned ? ["taskset", "-c", String(core), ...argv] : argv);

interface RunningServer {
  readonly name: string;
  readonly port: number;
  readonly proc: Bun.Subprocess;
}

/** A port that was free a moment ago (the kernel picks it; we release it for the child). */
function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  void probe.stop(true);
  return port;
}

async function startServer(name: string, entry: string, env: Record<string, string>): Promise<RunningServer> {
  const port = freePort();
  // Output goes to a file, as on a real box: a pipe would need a reader here, competing for the cores.
  const proc = Bun.spawn(onCore(0, [process.execPath, "run", entry]), {
    env: { PATH: process.env.PATH ?? "", ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdout: Bun.file(join(dataDir, `${name}.log`)),
    stderr: "inherit",
  });
  const server = { name, port, proc };
  servers.push(server);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && proc.exitCode === null) {
    const ready = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false);
    if (ready) return server;
    await Bun.sleep(25);
  }
  throw new Error(`${name} did not start (see ${join(dataDir, `${name}.log`)})`);
}

function toMicros(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (match === null) return Number.NaN;
  const value = Number(match[1]);
  return Math.round(match[2] === "us" ? value : match[2] === "ms" ? value * 1000 : value * 1_000_000);
}

interface HttpFigures {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
}

async function wrk(url: string, token: string | undefined, duration: number): Promise<HttpFigures> {
  const argv = ["wrk", "-t1", `-c${connections}`, `-d${duration}s`, "--latency"];
  if (token !== undefined) argv.push("-H", `X-Auth-Token: ${token}`);
  argv.push(url);
  const proc = Bun.spawn(onCore(1, argv), { stdout: "pipe", stderr: "pipe" });
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN);
  const p50 = toMicros(/^\s+50%\s+(\S+)/m.exec(text)?.[1] ?? "");
  const p99 = toMicros(/^\s+99%\s+(\S+)/m.exec(text)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  return { rps, p50, p99, non2xx };
}

async function wsClient(url: string, mode: "handshake" | "echo"): Promise<number> {
  const proc = Bun.spawn(
    onCore(1, [process.execPath, "run", join(root, "bench/ws-client.ts"), "--url", url, "--mode", mode, "--seconds", String(wsSeconds), "--concurrency", "16"]),
    { stdout: "pipe", stderr: "inherit" },
  );
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  const result = JSON.parse(text.trim().split("\n").at(-1) ?? "{}") as { rate: number; errors: number };
  if (result.errors > 0) say(`  (ws ${mode} client saw ${result.errors} errors)`);
  return result.rate;
}

const median = (numbers: number[]) => {
  const sorted = [...numbers].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

try {
  const raw = await startServer("raw", join(root, "bench/servers/raw.ts"), {});
  const naive = await startServer("naive", join(root, "bench/servers/naive.ts"), { AUTH_TOKEN: token });
  const gate = await startServer("tokengate", join(root, "server.ts"), {
    AUTH_TOKEN: token,
    DATA_DIR: dataDir,
    LOG_LEVEL: values["log-level"]!,
    ACCESS_LOG: values["access-log"]!,
    LOG_FORMAT: "json",
  });
  const rawWs = await startServer("raw-ws", join(root, "bench/servers/raw-ws.ts"), {});

  const targets = [
    { key: "a", label: "(a) raw Bun.serve", url: `http://127.0.0.1:${raw.port}/secure-data`, token: undefined },
    { key: "b", label: "(b) naive gate (===)", url: `http://127.0.0.1:${naive.port}/secure-data`, token },
    { key: "c", label: "(c) tokengate /secure-data", url: `http://127.0.0.1:${gate.port}/secure-data`, token },
  ] as const;

  say(`bench: tokengate with LOG_LEVEL=${values["log-level"]} ACCESS_LOG=${values["access-log"]} (log written to a file)`);
  say(`bench: ${rounds} rounds × ${targets.length} servers × ${seconds}s, wrk -t1 -c${connections}, servers on core 0, wrk on core 1`);
  for (const target of targets) await wrk(target.url, target.token, 1); // warm-up (JIT, connections)

  const http: Record<"a" | "b" | "c", HttpFigures[]> = { a: [], b: [], c: [] };
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const figures = await wrk(target.url, target.token, seconds);
      http[target.key].push(figures);
      say(`  round ${round + 1} ${target.label.padEnd(28)} ${figures.rps.toFixed(0).padStart(8)} req/s  p50 ${figures.p50}µs  p99 ${figures.p99}µs`);
    }
  }
  const perRound = (f: (i: number) => number) => Array.from({ length: rounds }, (_, i) => f(i));
  const ratios = {
    c_over_b: median(perRound((i) => http.c[i]!.rps / http.b[i]!.rps)),
    c_over_a: median(perRound((i) => http.c[i]!.rps / http.a[i]!.rps)),
    b_over_a: median(perRound((i) => http.b[i]!.rps / http.a[i]!.rps)),
    p99_c_over_b: median(perRound((i) => http.c[i]!.p99 / http.b[i]!.p99)),
  };

  let ws: { handshakes: { raw: number; gate: number; ratio: number }; echo: { raw: number; gate: number; ratio: number } } | undefined;
  if (!values["skip-ws"]) {
    const wsRounds = Math.min(rounds, 3);
    const hs = { raw: [] as number[], gate: [] as number[] };
    const echo = { raw: [] as number[], gate: [] as number[] };
    const rawUrl = `ws://127.0.0.1:${rawWs.port}/ws`;
    const gateUrl = `ws://127.0.0.1:${gate.port}/ws?token=${token}`;
    for (let round = 0; round < wsRounds; round++) {
      hs.raw.push(await wsClient(rawUrl, "handshake"));
      hs.gate.push(await wsClient(gateUrl, "handshake"));
      echo.raw.push(await wsClient(rawUrl, "echo"));
      echo.gate.push(await wsClient(gateUrl, "echo"));
      say(`  ws round ${round + 1}: handshakes/s raw ${hs.raw.at(-1)!.toFixed(0)} tokengate ${hs.gate.at(-1)!.toFixed(0)}; echo msg/s raw ${echo.raw.at(-1)!.toFixed(0)} tokengate ${echo.gate.at(-1)!.toFixed(0)}`);
    }
    ws = {
      handshakes: { raw: median(hs.raw), gate: median(hs.gate), ratio: median(hs.gate.map((g, i) => g / hs.raw[i]!)) },
      echo: { raw: median(echo.raw), gate: median(echo.gate), ratio: median(echo.gate.map((g, i) => g / echo.raw[i]!)) },
    };
  }

  const summary = (list: HttpFigures[]) => ({
    rps: median(list.map((f) => f.rps)),
    p50_us: median(list.map((f) => f.p50)),
    p99_us: median(list.map((f) => f.p99)),
    non2xx: list.reduce((sum, f) => sum + f.non2xx, 0),
  });
  const report = {
    settings: { rounds, seconds, connections, wsSeconds, pinned, bun: Bun.version, tokengateLogLevel: values["log-level"], accessLog: values["access-log"] },
    http: { a_raw: summary(http.a), b_naive: summary(http.b), c_tokengate: summary(http.c) },
    ratios,
    target: { c_over_b: 0.95, met: ratios.c_over_b >= 0.95 },
    ws,
  };

  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const row = (label: string, s: ReturnType<typeof summary>) =>
      `${label.padEnd(30)} ${s.rps.toFixed(0).padStart(9)} ${String(s.p50_us).padStart(9)} ${String(s.p99_us).padStart(9)} ${String(s.non2xx).padStart(7)}`;
    console.log(`\n${"scenario".padEnd(30)} ${"req/s".padStart(9)} ${"p50 µs".padStart(9)} ${"p99 µs".padStart(9)} ${"non-2xx".padStart(7)}`);
    console.log(row("(a) raw Bun.serve", report.http.a_raw));
    console.log(row("(b) naive gate (===)", report.http.b_naive));
    console.log(row("(c) tokengate /secure-data", report.http.c_tokengate));
    console.log(`\nmedian per-round ratios: c/b ${ratios.c_over_b.toFixed(3)} (target ≥ 0.95: ${report.target.met ? "met" : "MISSED"})  c/a ${ratios.c_over_a.toFixed(3)}  b/a ${ratios.b_over_a.toFixed(3)}  p99 c/b ${ratios.p99_c_over_b.toFixed(3)}`);
    if (ws !== undefined) {
      console.log(`WebSocket handshakes/s: raw ${ws.handshakes.raw.toFixed(0)}, tokengate ${ws.handshakes.gate.toFixed(0)} (ratio ${ws.handshakes.ratio.toFixed(3)})`);
      console.log(`WebSocket echo msg/s:   raw ${ws.echo.raw.toFixed(0)}, tokengate ${ws.echo.gate.toFixed(0)} (ratio ${ws.echo.ratio.toFixed(3)})`);
    }
  }
} finally {
  for (const server of servers) server.proc.kill();
  await Promise.all(servers.map((server) => server.proc.exited));
  rmSync(dataDir, { recursive: true, force: true });
}
