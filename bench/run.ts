/**
 * `bun run bench`: what tokengate's auth costs, measured against baselines in the same run.
 *   (a) raw Bun.serve JSON handler   (b) naive gate: X-Auth-Token compared with ===
 *   (c) tokengate GET /secure-data with a static key, an API key, a JWT, Basic, and a 10% invalid mix
 * plus WebSocket handshakes and echo against a raw Bun.serve websocket, memory per idle socket,
 * cold start and idle RSS, and the reverse-proxy rows of proxy.ts (the built-in proxy, nginx
 * auth_request → /auth/verify, proxied WebSocket echo). Metrics A/B: the same server with
 * METRICS=false beside the default one (metrics on), static key and API key, loaded side by side
 * (metrics-ab.ts). Runs are interleaved; ratios are medians of per-round ratios.
 * Servers run on core 0, load generators on core 1, loopback only, every run bounded.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { openDataDirStore } from "../tests/support/stores.ts";
import { digestToken, generateToken } from "../auth/secrets/tokens.ts";
import { runMetricsAB, type MetricsResult } from "./metrics-ab.ts";
import { printProxyReport, runProxyBench, type ProxySettings } from "./proxy.ts";
import {
  buildBinaries,
  freePort,
  median,
  onCore,
  pinned,
  rssKiB,
  runClient,
  startServer,
  waitHealthy,
  wrk,
  type HttpFigures,
  type RunningServer,
} from "./lib.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
    "ws-seconds": { type: "string", default: "2" },
    sockets: { type: "string", default: "10000" },
    "cold-runs": { type: "string", default: "5" },
    "access-log": { type: "string", default: "refused" },
    "log-level": { type: "string", default: "info" },
    "skip-ws": { type: "boolean", default: false },
    "skip-memory": { type: "boolean", default: false },
    "skip-binary": { type: "boolean", default: false },
    "skip-proxy": { type: "boolean", default: false },
    "proxy-only": { type: "boolean", default: false },
    "metrics-only": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const clamp = (text: string | undefined, min: number, max: number) => Math.min(Math.max(Number(text), min), max);
const rounds = clamp(values.rounds, 1, 20);
const seconds = clamp(values.seconds, 1, 30);
const connections = clamp(values.connections, 1, 512);
const wsSeconds = clamp(values["ws-seconds"], 1, 30);
const maxSockets = clamp(values.sockets, 1000, 10_000);
const coldRuns = clamp(values["cold-runs"], 1, 20);
const root = resolve(import.meta.dir, "..");
const say = (text: string) => {
  if (!values.json) console.error(text);
};

if (Bun.which("wrk") === null) {
  console.error("bench: wrk is not installed. Install it (Debian/Ubuntu: apt-get install wrk) and run again.");
  process.exit(1);
}
if (!pinned) say("bench: taskset not found; servers and load generators will share cores (figures are noisier)");

const proxySettings: ProxySettings = {
  root,
  rounds,
  seconds,
  connections,
  wsSeconds,
  skipWs: values["skip-ws"]!,
  logLevel: values["log-level"]!,
  accessLog: values["access-log"]!,
  say,
};
if (values["proxy-only"]) {
  const proxy = await runProxyBench(proxySettings);
  const settings = {
    rounds,
    seconds,
    connections,
    wsSeconds,
    pinned,
    bun: Bun.version,
    accessLog: values["access-log"],
    logLevel: values["log-level"],
  };
  if (values.json) console.log(JSON.stringify({ settings, proxy }, null, 2));
  else printProxyReport(proxy);
  process.exit(0);
}

const token = generateToken();
const password = generateToken();
const dataDir = mkdtempSync(join(tmpdir(), "tokengate-bench-"));
const servers: RunningServer[] = [];
const track = (server: RunningServer) => (servers.push(server), server);
const stop = async (server: RunningServer) => {
  server.proc.kill();
  await server.proc.exited;
};

// Credentials the run uses: an API key and a user in the store the server will open.
const store = await openDataDirStore(dataDir);
const key = generateApiKey();
await store.insertKey({
  id: key.id,
  name: "bench",
  scopes: ["data:read", "ws:connect"],
  secretHash: digestToken(key.secret),
  createdAt: Date.now(),
  expiresAt: null,
});
await store.insertUser({
  username: "bench",
  passwordHash: await Bun.password.hash(password, { algorithm: "argon2id", memoryCost: 65_536, timeCost: 2 }),
  roles: ["viewer"],
  createdAt: Date.now(),
});
await store.close();

const gateEnv = {
  AUTH_TOKEN: token,
  DATA_DIR: dataDir,
  LOG_LEVEL: values["log-level"]!,
  LOG_FORMAT: "json",
  ACCESS_LOG: values["access-log"]!,
  BASIC_AUTH: "true",
  ACCESS_TOKEN_TTL_SECONDS: "3600",
};

/** Metrics on (the default) over METRICS=false: fresh servers side by side (metrics-ab.ts). */
async function measureMetrics(): Promise<Record<string, MetricsResult>> {
  let started = 0;
  return await runMetricsAB({
    start: async (metrics) =>
      track(
        await startServer(`tokengate-metrics-${++started}`, join(root, "server.ts"), { ...gateEnv, METRICS: String(metrics) }, dataDir),
      ),
    stop: async (server) => {
      await stop(server);
      const index = servers.indexOf(server);
      if (index >= 0) servers.splice(index, 1);
    },
    rows: [
      { key: "static", label: "static", headers: [`X-Auth-Token: ${token}`] },
      { key: "apikey", label: "API key", headers: [`Authorization: Bearer ${key.token}`] },
    ],
    pairs: Math.max(rounds * 2, 6),
    seconds,
    connections,
    say,
  });
}

try {
  if (values["metrics-only"]) {
    const metrics = await measureMetrics();
    if (values.json) console.log(JSON.stringify({ metrics }, null, 2));
    else
      for (const [name, result] of Object.entries(metrics))
        console.log(
          `metrics on/off ${name}: per CPU second ${result.perCpu.toFixed(3)}, req/s ${result.rps.toFixed(3)} (${result.pairs} pairs)`,
        );
    rmSync(dataDir, { recursive: true, force: true }); // its servers are stopped; exit skips the finally below
    process.exit(0);
  }
  const raw = track(await startServer("raw", join(root, "bench/servers/raw.ts"), {}, dataDir));
  const naive = track(await startServer("naive", join(root, "bench/servers/naive.ts"), { AUTH_TOKEN: token }, dataDir));
  const gate = track(await startServer("tokengate", join(root, "server.ts"), gateEnv, dataDir));
  const rawWs = track(await startServer("raw-ws", join(root, "bench/servers/raw-ws.ts"), {}, dataDir));
  // The same configuration and store as the server beside it; pairing off, so it offers no code.
  const library = track(await startServer("library", join(root, "bench/servers/library.ts"), { ...gateEnv, PAIRING: "false" }, dataDir));
  const jwt = (
    (await (
      await fetch(`http://127.0.0.1:${gate.port}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username: "bench", password }),
      })
    ).json()) as { access_token: string }
  ).access_token;

  const url = (server: RunningServer) => `http://127.0.0.1:${server.port}/secure-data`;
  const mix = (header: string, valid: string, invalid: string) => ({
    path: join(root, "bench/mix.lua"),
    env: { BENCH_HEADER: header, BENCH_VALID: valid, BENCH_INVALID: invalid },
  });
  const wrongStatic = generateToken();
  const scenarios = [
    { key: "a", label: "(a) raw Bun.serve", run: (s: number) => wrk({ url: url(raw), seconds: s, connections }) },
    {
      key: "b",
      label: "(b) naive gate (===)",
      run: (s: number) => wrk({ url: url(naive), seconds: s, connections, headers: [`X-Auth-Token: ${token}`] }),
    },
    {
      key: "static",
      label: "(c) static key",
      run: (s: number) => wrk({ url: url(gate), seconds: s, connections, headers: [`X-Auth-Token: ${token}`] }),
    },
    {
      key: "apikey",
      label: "(c) API key",
      run: (s: number) => wrk({ url: url(gate), seconds: s, connections, headers: [`Authorization: Bearer ${key.token}`] }),
    },
    {
      key: "jwt",
      label: "(c) JWT",
      run: (s: number) => wrk({ url: url(gate), seconds: s, connections, headers: [`Authorization: Bearer ${jwt}`] }),
    },
    {
      key: "library",
      label: "(c) library route, API key",
      run: (s: number) =>
        wrk({
          url: `http://127.0.0.1:${library.port}/library/secure-data`,
          seconds: s,
          connections,
          headers: [`Authorization: Bearer ${key.token}`],
        }),
    },
    {
      key: "b_mix",
      label: "(b) naive, 10% invalid",
      run: (s: number) => wrk({ url: url(naive), seconds: s, connections, script: mix("X-Auth-Token", token, wrongStatic) }),
    },
    {
      key: "mix",
      label: "(c) static, 10% invalid",
      run: (s: number) => wrk({ url: url(gate), seconds: s, connections, script: mix("X-Auth-Token", token, wrongStatic) }),
    },
  ] as const;

  say(
    `bench: ${rounds} rounds × ${scenarios.length} scenarios × ${seconds}s, wrk -t1 -c${connections}; tokengate LOG_LEVEL=${gateEnv.LOG_LEVEL} ACCESS_LOG=${gateEnv.ACCESS_LOG}`,
  );
  for (const scenario of scenarios) await scenario.run(1); // warm-up: JIT, connections, caches
  const http: Record<string, HttpFigures[]> = Object.fromEntries(scenarios.map((scenario) => [scenario.key, []]));
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      const figures = await scenario.run(seconds);
      http[scenario.key]!.push(figures);
      say(
        `  round ${round + 1} ${scenario.label.padEnd(26)} ${figures.rps.toFixed(0).padStart(8)} req/s  p99 ${figures.p99}µs  non-2xx ${figures.non2xx}`,
      );
    }
  }
  const basic = await wrk({ url: url(gate), seconds, connections: 4, headers: [`Authorization: Basic ${btoa(`bench:${password}`)}`] });
  say(`  Basic auth (argon2id, -c4): ${basic.rps.toFixed(1)} req/s, non-2xx ${basic.non2xx}`);

  const ratio = (top: string, bottom: string, field: "rps" | "p99" = "rps") =>
    median(http[top]!.map((figures, i) => figures[field] / http[bottom]![i]![field]));
  const ratios = {
    static: ratio("static", "b"),
    apikey: ratio("apikey", "b"),
    jwt: ratio("jwt", "b"),
    mix: ratio("mix", "b_mix"),
    static_over_raw: ratio("static", "a"),
    library: ratio("library", "apikey"),
    naive_over_raw: ratio("b", "a"),
    p99_static: ratio("static", "b", "p99"),
    p99_apikey: ratio("apikey", "b", "p99"),
    p99_jwt: ratio("jwt", "b", "p99"),
  };

  let ws:
    { handshakes: number; echo: number; raw: { handshakes: number; echo: number }; gate: { handshakes: number; echo: number } } | undefined;
  if (!values["skip-ws"]) {
    const client = (target: string, mode: string) =>
      runClient<{ rate: number }>(root, "ws-client.ts", [
        "--url",
        target,
        "--mode",
        mode,
        "--seconds",
        String(wsSeconds),
        "--concurrency",
        "16",
      ]).then((result) => result.rate);
    const rawUrl = `ws://127.0.0.1:${rawWs.port}/ws`;
    const gateUrl = `ws://127.0.0.1:${gate.port}/ws?token=${token}`;
    const samples = { rh: [] as number[], gh: [] as number[], re: [] as number[], ge: [] as number[] };
    for (let round = 0; round < Math.min(rounds, 3); round++) {
      samples.rh.push(await client(rawUrl, "handshake"));
      samples.gh.push(await client(gateUrl, "handshake"));
      samples.re.push(await client(rawUrl, "echo"));
      samples.ge.push(await client(gateUrl, "echo"));
    }
    ws = {
      handshakes: median(samples.gh.map((g, i) => g / samples.rh[i]!)),
      echo: median(samples.ge.map((g, i) => g / samples.re[i]!)),
      raw: { handshakes: median(samples.rh), echo: median(samples.re) },
      gate: { handshakes: median(samples.gh), echo: median(samples.ge) },
    };
    say(
      `  ws: handshakes/s raw ${ws.raw.handshakes.toFixed(0)} tokengate ${ws.gate.handshakes.toFixed(0)}; echo/s raw ${ws.raw.echo.toFixed(0)} tokengate ${ws.gate.echo.toFixed(0)}`,
    );
  }
  for (const server of [raw, naive, gate, rawWs, library]) await stop(server);
  servers.length = 0;
  const metricsAB = await measureMetrics();
  const metricsWorst = Math.min(metricsAB.static!.perCpu, metricsAB.apikey!.perCpu);

  // The reverse-proxy rows: their own servers (a service, proxies in front of it, nginx), stopped again before memory.
  const proxy = values["skip-proxy"] ? undefined : await runProxyBench(proxySettings);

  // Memory per idle socket: a fresh server for every size, so allocator reuse cannot hide growth.
  const memory: Array<{ sockets: number; rawBytesPerSocket: number; gateBytesPerSocket: number; extraBytesPerSocket: number }> = [];
  if (!values["skip-memory"]) {
    for (const count of [1000, 5000, 10_000].filter((n) => n <= maxSockets)) {
      const perSocket = async (name: string, entry: string, env: Record<string, string>, protocol: string | undefined, query: string) => {
        const server = track(await startServer(name, entry, env, dataDir));
        await Bun.sleep(300);
        const before = rssKiB(server.proc.pid);
        const args = ["--url", `ws://127.0.0.1:${server.port}/ws${query}`, "--count", String(count), "--seconds", "60"];
        if (protocol !== undefined) args.push("--protocol", protocol);
        const holder = Bun.spawn(onCore(1, [process.execPath, "run", join(root, "bench/ws-idle.ts"), ...args]), {
          stdout: "pipe",
          stdin: "pipe",
          stderr: "inherit",
        });
        const reader = holder.stdout.getReader();
        const { value } = await reader.read();
        const opened = JSON.parse(new TextDecoder().decode(value).trim().split("\n")[0]!) as { open: number; failed: number };
        await Bun.sleep(500);
        const after = rssKiB(server.proc.pid);
        holder.kill();
        await holder.exited;
        await stop(server);
        servers.splice(servers.indexOf(server), 1);
        if (opened.open !== count) say(`  (${name}: only ${opened.open}/${count} sockets opened, ${opened.failed} failed)`);
        return ((after - before) * 1024) / Math.max(opened.open, 1);
      };
      const rawBytes = await perSocket("raw-ws-mem", join(root, "bench/servers/raw-ws.ts"), {}, undefined, "");
      const gateBytes = await perSocket("tokengate-mem", join(root, "server.ts"), gateEnv, undefined, `?token=${token}`);
      memory.push({
        sockets: count,
        rawBytesPerSocket: rawBytes,
        gateBytesPerSocket: gateBytes,
        extraBytesPerSocket: gateBytes - rawBytes,
      });
      say(
        `  memory @${count} sockets: raw ${rawBytes.toFixed(0)} B/socket, tokengate ${gateBytes.toFixed(0)} B/socket (+${(gateBytes - rawBytes).toFixed(0)})`,
      );
    }
  }

  // Cold start: spawn → first 200 on /healthz; and idle RSS a second after start. HOME is passed
  // through so Bun's runtime transpiler cache applies, as it does for anyone running `bun run`
  // from a shell: without it every start transpiles every source file again (~30 ms more).
  const coldStart = async (argv: string[], env: Record<string, string>) => {
    const port = freePort();
    const started = performance.now();
    const proc = Bun.spawn(onCore(0, argv), {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env, PORT: String(port), HOST: "127.0.0.1" },
      stdout: "ignore",
      stderr: "inherit",
    });
    await waitHealthy(port, 15_000, true, 1);
    const ms = performance.now() - started;
    await Bun.sleep(1000);
    const rss = rssKiB(proc.pid);
    proc.kill();
    await proc.exited;
    return { ms, rss };
  };
  const run = (entry: string) => [process.execPath, "run", entry];
  // The shipped form (issue 9): `bun build --compile --bytecode` of tokengate.ts against the
  // same build of the raw server. Built once per run, into the run's temporary directory.
  const binaries = values["skip-binary"] ? undefined : await buildBinaries(dataDir);
  const cold = {
    raw: [] as number[],
    gate: [] as number[],
    rawRss: [] as number[],
    gateRss: [] as number[],
    rawBin: [] as number[],
    gateBin: [] as number[],
  };
  for (let attempt = 0; attempt < coldRuns; attempt++) {
    const r = await coldStart(run(join(root, "bench/servers/raw.ts")), {});
    const g = await coldStart(run(join(root, "server.ts")), gateEnv);
    cold.raw.push(r.ms);
    cold.gate.push(g.ms);
    cold.rawRss.push(r.rss);
    cold.gateRss.push(g.rss);
    if (binaries !== undefined) {
      cold.rawBin.push((await coldStart([binaries.raw], {})).ms);
      cold.gateBin.push((await coldStart([binaries.gate, "serve"], gateEnv)).ms);
    }
  }

  const coldBinary = binaries === undefined ? undefined : { rawMs: median(cold.rawBin), gateMs: median(cold.gateBin) };
  const coldTarget = (ratio: number) => ({ ratio, target: 1.3, met: ratio <= 1.3 });
  const summary = (list: readonly HttpFigures[]) => ({
    rps: median(list.map((f) => f.rps)),
    p50_us: median(list.map((f) => f.p50)),
    p99_us: median(list.map((f) => f.p99)),
    non2xx: list.reduce((sum, f) => sum + f.non2xx, 0),
  });
  const targets = {
    static: { ratio: ratios.static, target: 0.95, met: ratios.static >= 0.95 },
    apikey: { ratio: ratios.apikey, target: 0.95, met: ratios.apikey >= 0.95 },
    jwt: { ratio: ratios.jwt, target: 0.9, met: ratios.jwt >= 0.9 },
    library: { ratio: ratios.library, target: 0.97, met: ratios.library >= 0.97 },
    metrics: { ratio: metricsWorst, target: 0.98, met: metricsWorst >= 0.98 },
    p99: {
      ratio: Math.max(ratios.p99_static, ratios.p99_apikey, ratios.p99_jwt),
      target: 1.2,
      met: Math.max(ratios.p99_static, ratios.p99_apikey, ratios.p99_jwt) <= 1.2,
    },
    ws_handshakes: ws === undefined ? undefined : { ratio: ws.handshakes, target: 0.9, met: ws.handshakes >= 0.9 },
    ws_echo: ws === undefined ? undefined : { ratio: ws.echo, target: 0.95, met: ws.echo >= 0.95 },
    idle_socket_bytes:
      memory.length === 0
        ? undefined
        : {
            extra: Math.max(...memory.map((m) => m.extraBytesPerSocket)),
            target: 1024,
            met: Math.max(...memory.map((m) => m.extraBytesPerSocket)) <= 1024,
          },
    cold_start: coldTarget(median(cold.gate) / median(cold.raw)),
    cold_start_binary: coldBinary === undefined ? undefined : coldTarget(coldBinary.gateMs / coldBinary.rawMs),
  };
  const report = {
    settings: {
      rounds,
      seconds,
      connections,
      wsSeconds,
      pinned,
      bun: Bun.version,
      accessLog: gateEnv.ACCESS_LOG,
      logLevel: gateEnv.LOG_LEVEL,
    },
    http: Object.fromEntries(Object.entries(http).map(([name, list]) => [name, summary(list)])),
    basic: { rps: basic.rps, non2xx: basic.non2xx },
    ratios,
    metrics: metricsAB,
    ws,
    proxy,
    memory,
    coldStart: { rawMs: median(cold.raw), gateMs: median(cold.gate), binary: coldBinary },
    idleRssKiB: { raw: median(cold.rawRss), gate: median(cold.gateRss) },
    targets,
  };

  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const pct = (value: number) => value.toFixed(3);
    const mark = (entry: { met: boolean } | undefined) => (entry === undefined ? "-" : entry.met ? "met" : "MISSED");
    console.log(
      `\n${"scenario".padEnd(28)} ${"req/s".padStart(9)} ${"p50 µs".padStart(8)} ${"p99 µs".padStart(8)} ${"non-2xx".padStart(8)}`,
    );
    for (const scenario of scenarios) {
      const s = report.http[scenario.key]!;
      console.log(
        `${scenario.label.padEnd(28)} ${s.rps.toFixed(0).padStart(9)} ${String(s.p50_us).padStart(8)} ${String(s.p99_us).padStart(8)} ${String(s.non2xx).padStart(8)}`,
      );
    }
    console.log(`${"(c) Basic (argon2id, -c4)".padEnd(28)} ${basic.rps.toFixed(1).padStart(9)}`);
    console.log(`\nagainst the naive gate (median of per-round ratios):`);
    console.log(
      `  static ${pct(ratios.static)} (≥0.95 ${mark(targets.static)})  API key ${pct(ratios.apikey)} (≥0.95 ${mark(targets.apikey)})  JWT ${pct(ratios.jwt)} (≥0.90 ${mark(targets.jwt)})`,
    );
    console.log(
      `  10% invalid mix ${pct(ratios.mix)}  p99 static/key/jwt ${pct(ratios.p99_static)}/${pct(ratios.p99_apikey)}/${pct(ratios.p99_jwt)} (≤1.2 ${mark(targets.p99)})`,
    );
    console.log(
      `  library route (gate.protect) vs the server's /secure-data, API key: ${pct(ratios.library)} (≥0.97 ${mark(targets.library)})`,
    );
    const ab = (name: string) => `${pct(metricsAB[name]!.perCpu)} (req/s ${pct(metricsAB[name]!.rps)})`;
    console.log(
      `metrics on vs METRICS=false, side by side, per CPU second: static ${ab("static")}  API key ${ab("apikey")} (≥0.98 ${mark(targets.metrics)}); A/A control ${ab("control")}`,
    );
    if (ws !== undefined)
      console.log(
        `WebSocket vs raw: handshakes ${pct(ws.handshakes)} (≥0.90 ${mark(targets.ws_handshakes)})  echo ${pct(ws.echo)} (≥0.95 ${mark(targets.ws_echo)})`,
      );
    if (proxy !== undefined) printProxyReport(proxy);
    for (const m of memory)
      console.log(
        `idle sockets @${m.sockets}: raw ${m.rawBytesPerSocket.toFixed(0)} B, tokengate ${m.gateBytesPerSocket.toFixed(0)} B, extra ${m.extraBytesPerSocket.toFixed(0)} B/socket (≤1024 ${mark(targets.idle_socket_bytes)})`,
      );
    console.log(
      `cold start (bun run): raw ${report.coldStart.rawMs.toFixed(0)} ms, tokengate ${report.coldStart.gateMs.toFixed(0)} ms, ratio ${pct(targets.cold_start.ratio)} (≤1.3 ${mark(targets.cold_start)})`,
    );
    if (coldBinary !== undefined && targets.cold_start_binary !== undefined) {
      console.log(
        `cold start (compiled binary): raw ${coldBinary.rawMs.toFixed(0)} ms, tokengate ${coldBinary.gateMs.toFixed(0)} ms, ratio ${pct(targets.cold_start_binary.ratio)} (≤1.3 ${mark(targets.cold_start_binary)})`,
      );
    }
    console.log(
      `idle RSS: raw ${(report.idleRssKiB.raw / 1024).toFixed(1)} MiB, tokengate ${(report.idleRssKiB.gate / 1024).toFixed(1)} MiB`,
    );
  }
} finally {
  for (const server of servers) server.proc.kill();
  await Promise.all(servers.map((server) => server.proc.exited));
  rmSync(dataDir, { recursive: true, force: true });
}
