/**
 * The reverse-proxy rows of `bun run bench`. One service (servers/upstream.ts: a short body, and a
 * WebSocket that greets and echoes) sits behind every proxy:
 *   - tokengate's built-in proxy (ROUTES_FILE, an API key of scope svc) against a naive Bun fetch
 *     proxy (servers/fetch-proxy.ts, no auth), and against nginx proxy_pass (the anchor);
 *   - nginx auth_request → tokengate GET /auth/verify against auth_request → servers/naive-auth.ts;
 *   - WebSocket echo through the built-in proxy against a direct connection to the service.
 * Servers and nginx on core 0, wrk and the WebSocket client on core 1, loopback only, every run
 * bounded. Runs are interleaved and ratios are medians of per-round ratios, as in run.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { digestToken, generateToken } from "../auth/secrets/tokens.ts";
import { openDataDirStore } from "../tests/support/stores.ts";
import { freePort, median, onCore, runClient, startServer, waitHealthy, wrk, type HttpFigures, type RunningServer } from "./lib.ts";

export interface ProxySettings {
  readonly root: string;
  readonly rounds: number;
  readonly seconds: number;
  readonly connections: number;
  readonly wsSeconds: number;
  readonly skipWs: boolean;
  readonly logLevel: string;
  readonly accessLog: string;
  readonly say: (text: string) => void;
}

export interface Target {
  readonly ratio: number;
  readonly target: number;
  readonly met: boolean;
}

export interface ProxyRow {
  readonly label: string;
  readonly rps: number;
  readonly p50_us: number;
  readonly p99_us: number;
  readonly non2xx: number;
}

export interface ProxyReport {
  readonly http: Record<string, ProxyRow>;
  readonly ratios: {
    readonly builtin_over_fetch_proxy: number;
    readonly builtin_over_nginx: number | undefined;
    readonly builtin_over_upstream: number;
    readonly verify_over_naive_auth: number | undefined;
  };
  readonly ws:
    | {
        readonly directEcho: number;
        readonly proxiedEcho: number;
        readonly naiveProxyEcho: number;
        /** Through tokengate ÷ direct (the target). */
        readonly ratio: number;
        /** Through tokengate ÷ through the naive Bun proxy (reported). */
        readonly overNaiveProxy: number;
      }
    | undefined;
  readonly targets: { readonly builtin: Target; readonly forwardAuth: Target | undefined; readonly wsEcho: Target | undefined };
}

const PREFIX = "/svc/";
const SCOPE = "svc";
/** What servers/upstream.ts answers: every row checks it before it is measured. */
const UPSTREAM_BODY = "hello from upstream\n";
const NGINX = Bun.which("nginx", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/local/sbin` });

interface Fleet {
  readonly upstream: RunningServer;
  readonly fetchProxy: RunningServer;
  readonly gate: RunningServer;
  readonly nginx: RunningServer | undefined;
  /** An API key of scope svc: the built-in proxy and /auth/verify accept it, the naive endpoint compares with it. */
  readonly token: string;
}

interface Scenario {
  readonly key: string;
  readonly label: string;
  readonly url: string;
}

const target = (ratio: number, bound: number): Target => ({ ratio, target: bound, met: ratio >= bound });

/** An API key of scope svc in the store of `dataDir`, made as run.ts makes its own. */
async function createKey(dataDir: string): Promise<string> {
  const store = await openDataDirStore(dataDir);
  const key = generateApiKey();
  await store.insertKey({
    id: key.id,
    name: "bench-proxy",
    scopes: [SCOPE],
    secretHash: digestToken(key.secret),
    createdAt: Date.now(),
    expiresAt: null,
  });
  await store.close();
  return key.token;
}

function writeRoutesFile(dir: string, upstreamPort: number): string {
  const file = join(dir, "routes.toml");
  const lines = [
    "[[route]]",
    'name = "echo"',
    `match = { path_prefix = "${PREFIX}" }`,
    `upstream = "http://127.0.0.1:${upstreamPort}"`,
    `scope = "${SCOPE}"`,
    "strip_prefix = true",
    "websocket = true",
  ];
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** `{{NAME}}` → values.NAME; a placeholder without a value is an error, not an empty string. */
function fillTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (placeholder, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`nginx template: no value for ${placeholder}`);
    return value;
  });
}

/** nginx from bench/nginx/proxy.conf, pid and logs under a temporary directory in `dir`, on core 0. */
async function startNginx(binary: string, root: string, dir: string, ports: Readonly<Record<string, number>>): Promise<RunningServer> {
  const work = mkdtempSync(join(dir, "nginx-"));
  const port = freePort();
  const values = { WORK: work, PORT: String(port), ...Object.fromEntries(Object.entries(ports).map(([name, p]) => [name, String(p)])) };
  const conf = join(work, "nginx.conf");
  writeFileSync(conf, fillTemplate(readFileSync(join(root, "bench/nginx/proxy.conf"), "utf8"), values));
  const argv = [binary, "-p", work, "-e", join(work, "error.log"), "-c", conf, "-g", "daemon off;"];
  const proc = Bun.spawn(onCore(0, argv), { env: { PATH: process.env.PATH ?? "" }, stdout: "ignore", stderr: "inherit" });
  if (!(await waitHealthy(port, 10_000, true))) {
    proc.kill();
    await proc.exited;
    throw new Error(`nginx did not start (see ${join(work, "error.log")})`);
  }
  return { name: "nginx", port, proc };
}

/** Every server of the proxy rows, each added to `started` as soon as it runs (the caller stops them). */
async function startFleet(settings: ProxySettings, dir: string, started: RunningServer[]): Promise<Fleet> {
  const server = (name: string, entry: string, env: Record<string, string>) =>
    startServer(name, join(settings.root, entry), env, dir).then((s) => (started.push(s), s));
  const token = await createKey(dir);
  const upstream = await server("upstream", "bench/servers/upstream.ts", {});
  const fetchProxy = await server("fetch-proxy", "bench/servers/fetch-proxy.ts", { UPSTREAM: `http://127.0.0.1:${upstream.port}` });
  const gate = await server("tokengate-proxy", "server.ts", {
    AUTH_TOKEN: generateToken(),
    DATA_DIR: dir,
    LOG_LEVEL: settings.logLevel,
    LOG_FORMAT: "json",
    ACCESS_LOG: settings.accessLog,
    ROUTES_FILE: writeRoutesFile(dir, upstream.port),
    TRUSTED_PROXIES: "127.0.0.1",
  });
  if (NGINX === null) {
    settings.say("bench: nginx not found (Debian/Ubuntu: apt-get install nginx-light); the nginx rows are skipped");
    return { upstream, fetchProxy, gate, nginx: undefined, token };
  }
  const naive = await server("naive-auth", "bench/servers/naive-auth.ts", { AUTH_TOKEN: token });
  const ports = { UPSTREAM_PORT: upstream.port, GATE_PORT: gate.port, NAIVE_PORT: naive.port };
  const nginx = await startNginx(NGINX, settings.root, dir, ports);
  started.push(nginx);
  return { upstream, fetchProxy, gate, nginx, token };
}

function scenariosFor(fleet: Fleet): Scenario[] {
  const at = (server: RunningServer, path: string) => `http://127.0.0.1:${server.port}${path}`;
  const list: Scenario[] = [
    { key: "upstream", label: "upstream, direct", url: at(fleet.upstream, "/item") },
    { key: "fetch_proxy", label: "naive Bun fetch proxy", url: at(fleet.fetchProxy, `${PREFIX}item`) },
    { key: "builtin", label: "tokengate proxy, API key", url: at(fleet.gate, `${PREFIX}item`) },
  ];
  if (fleet.nginx === undefined) return list;
  return list.concat([
    { key: "nginx", label: "nginx proxy_pass", url: at(fleet.nginx, "/plain/item") },
    { key: "nginx_naive", label: "nginx auth_request→naive", url: at(fleet.nginx, "/naive/item") },
    { key: "nginx_verify", label: "nginx auth_request→verify", url: at(fleet.nginx, "/gate/item") },
  ]);
}

/** One request per row before any load: a row that does not reach the service would measure refusals. */
async function checkScenario(scenario: Scenario, token: string): Promise<void> {
  const answer = await fetch(scenario.url, { headers: { "X-Auth-Token": token } });
  const body = await answer.text();
  if (answer.status !== 200 || body !== UPSTREAM_BODY) {
    throw new Error(
      `${scenario.label}: ${scenario.url} answered ${answer.status} ${JSON.stringify(body.slice(0, 200))}, not the upstream's 200`,
    );
  }
}

async function measureHttp(list: readonly Scenario[], token: string, settings: ProxySettings): Promise<Record<string, HttpFigures[]>> {
  const headers = [`X-Auth-Token: ${token}`];
  const run = (scenario: Scenario, seconds: number) => wrk({ url: scenario.url, seconds, connections: settings.connections, headers });
  for (const scenario of list) await run(scenario, 1); // warm-up: JIT, connections, nginx's keepalive pools
  const http: Record<string, HttpFigures[]> = Object.fromEntries(list.map((scenario) => [scenario.key, []]));
  for (let round = 0; round < settings.rounds; round++) {
    for (const scenario of list) {
      const figures = await run(scenario, settings.seconds);
      http[scenario.key]!.push(figures);
      settings.say(
        `  round ${round + 1} ${scenario.label.padEnd(26)} ${figures.rps.toFixed(0).padStart(8)} req/s  p99 ${figures.p99}µs  non-2xx ${figures.non2xx}`,
      );
    }
  }
  return http;
}

/** Echo messages/s on 16 sockets for `seconds`, from core 1 (ws-client.ts stops itself by count and time). */
const echoRate = (root: string, url: string, seconds: number) =>
  runClient<{ rate: number }>(root, "ws-client.ts", [
    "--url",
    url,
    "--mode",
    "echo",
    "--seconds",
    String(seconds),
    "--concurrency",
    "16",
  ]).then((result) => result.rate);

/**
 * WebSocket echo direct to the service, through the built-in proxy, and through the naive Bun proxy
 * (what piping two sockets costs on the same core, reported only), alternating.
 */
async function measureWs(settings: ProxySettings, fleet: Fleet): Promise<ProxyReport["ws"]> {
  const urls = {
    direct: `ws://127.0.0.1:${fleet.upstream.port}/ws`,
    proxied: `ws://127.0.0.1:${fleet.gate.port}${PREFIX}ws?token=${encodeURIComponent(fleet.token)}`,
    naive: `ws://127.0.0.1:${fleet.fetchProxy.port}${PREFIX}ws`,
  };
  for (const url of Object.values(urls)) await echoRate(settings.root, url, 1);
  const samples = { direct: [] as number[], proxied: [] as number[], naive: [] as number[] };
  for (let round = 0; round < Math.min(settings.rounds, 3); round++) {
    for (const name of ["direct", "proxied", "naive"] as const)
      samples[name].push(await echoRate(settings.root, urls[name], settings.wsSeconds));
    const [d, p, n] = [samples.direct, samples.proxied, samples.naive].map((list) => list.at(-1)!.toFixed(0));
    settings.say(`  round ${round + 1} ws echo/s direct ${d}, via tokengate ${p}, via the naive Bun proxy ${n}`);
  }
  const over = (top: number[], bottom: number[]) => median(top.map((rate, i) => rate / bottom[i]!));
  return {
    directEcho: median(samples.direct),
    proxiedEcho: median(samples.proxied),
    naiveProxyEcho: median(samples.naive),
    ratio: over(samples.proxied, samples.direct),
    overNaiveProxy: over(samples.proxied, samples.naive),
  };
}

function summarise(list: readonly Scenario[], http: Record<string, HttpFigures[]>, ws: ProxyReport["ws"]): ProxyReport {
  const rows = (key: string) => http[key] ?? [];
  const ratio = (top: string, bottom: string) =>
    rows(top).length === 0 || rows(bottom).length === 0 ? undefined : median(rows(top).map((f, i) => f.rps / rows(bottom)[i]!.rps));
  const row = (scenario: Scenario): [string, ProxyRow] => {
    const figures = rows(scenario.key);
    return [
      scenario.key,
      {
        label: scenario.label,
        rps: median(figures.map((f) => f.rps)),
        p50_us: median(figures.map((f) => f.p50)),
        p99_us: median(figures.map((f) => f.p99)),
        non2xx: figures.reduce((sum, f) => sum + f.non2xx, 0),
      },
    ];
  };
  const ratios = {
    builtin_over_fetch_proxy: ratio("builtin", "fetch_proxy")!,
    builtin_over_nginx: ratio("builtin", "nginx"),
    builtin_over_upstream: ratio("builtin", "upstream")!,
    verify_over_naive_auth: ratio("nginx_verify", "nginx_naive"),
  };
  const targets = {
    builtin: target(ratios.builtin_over_fetch_proxy, 0.95),
    forwardAuth: ratios.verify_over_naive_auth === undefined ? undefined : target(ratios.verify_over_naive_auth, 0.95),
    wsEcho: ws === undefined ? undefined : target(ws.ratio, 0.8),
  };
  return { http: Object.fromEntries(list.map(row)), ratios, ws, targets };
}

/** Starts the proxy rows' servers, checks and measures every row, and stops them all again. */
export async function runProxyBench(settings: ProxySettings): Promise<ProxyReport> {
  const dir = mkdtempSync(join(tmpdir(), "tokengate-bench-proxy-"));
  const started: RunningServer[] = [];
  try {
    const fleet = await startFleet(settings, dir, started);
    const list = scenariosFor(fleet);
    for (const scenario of list) await checkScenario(scenario, fleet.token);
    settings.say(
      `bench (proxy): ${settings.rounds} rounds × ${list.length} scenarios × ${settings.seconds}s, wrk -t1 -c${settings.connections}`,
    );
    const http = await measureHttp(list, fleet.token, settings);
    const ws = settings.skipWs ? undefined : await measureWs(settings, fleet);
    return summarise(list, http, ws);
  } finally {
    for (const server of started) server.proc.kill();
    await Promise.all(started.map((server) => server.proc.exited));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows and ratios, in run.ts's text format. */
export function printProxyReport(report: ProxyReport): void {
  const pct = (value: number | undefined) => (value === undefined ? "-" : value.toFixed(3));
  const mark = (entry: Target | undefined) => (entry === undefined ? "-" : entry.met ? "met" : "MISSED");
  console.log(
    `\n${"reverse proxy (same upstream)".padEnd(28)} ${"req/s".padStart(9)} ${"p50 µs".padStart(8)} ${"p99 µs".padStart(8)} ${"non-2xx".padStart(8)}`,
  );
  for (const s of Object.values(report.http)) {
    console.log(
      `${s.label.padEnd(28)} ${s.rps.toFixed(0).padStart(9)} ${String(s.p50_us).padStart(8)} ${String(s.p99_us).padStart(8)} ${String(s.non2xx).padStart(8)}`,
    );
  }
  const { ratios, targets, ws } = report;
  console.log(
    `built-in proxy ÷ naive fetch proxy ${pct(ratios.builtin_over_fetch_proxy)} (≥0.95 ${mark(targets.builtin)})  ÷ nginx proxy_pass ${pct(ratios.builtin_over_nginx)} (anchor)  ÷ upstream ${pct(ratios.builtin_over_upstream)}`,
  );
  console.log(
    `nginx auth_request → /auth/verify ÷ → naive endpoint ${pct(ratios.verify_over_naive_auth)} (≥0.95 ${mark(targets.forwardAuth)})`,
  );
  if (ws !== undefined)
    console.log(
      `WebSocket echo via the built-in proxy: direct ${ws.directEcho.toFixed(0)} msg/s, proxied ${ws.proxiedEcho.toFixed(0)} msg/s, ratio ${pct(ws.ratio)} (≥0.80 ${mark(targets.wsEcho)}); naive Bun proxy ${ws.naiveProxyEcho.toFixed(0)} msg/s, built-in ÷ naive ${pct(ws.overNaiveProxy)}`,
    );
}
