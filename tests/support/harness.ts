/**
 * Real servers for tests: the gate in-process on port 0 (with a capturing log sink), or the real
 * `bun run server.ts` as a subprocess. No mocks of Bun or of the network.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { AccessLogMode } from "../../auth/core/log.ts";
import { startListener, type Listener } from "../../auth/http/listener.ts";
import { createLogger } from "../../auth/core/log.ts";
import type { Authenticator } from "../../auth/core/principal.ts";
import { createBootstrapAuthenticator } from "../../auth/authn/static-token.ts";
import { createSeedRoutes, type Route } from "../../auth/http/routes.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { captureOutput, newSecret } from "./secrets.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const SERVER_ENTRY = join(ROOT, "server.ts");

export interface TestGate {
  readonly listener: Listener;
  readonly token: string;
  readonly http: string;
  readonly ws: string;
  readonly port: number;
  readonly lines: string[];
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TestGateOptions {
  readonly token?: string;
  readonly routes?: readonly Route[];
  readonly authenticate?: Authenticator;
  readonly wsMaxPayload?: number;
  readonly shutdownTimeout?: number;
  readonly accessLog?: AccessLogMode;
}

export function startTestGate(options: TestGateOptions = {}): TestGate {
  const token = options.token ?? newSecret();
  const lines: string[] = [];
  const logger = createLogger({
    now: Date.now,
    level: "debug",
    format: "json",
    sink: {
      write(line) {
        lines.push(line);
        captureOutput(line);
      },
    },
  });
  const listener = startListener({
    now: Date.now,
    port: 0,
    host: "127.0.0.1",
    authenticate: options.authenticate ?? createBootstrapAuthenticator(digestToken(token)),
    routes: options.routes ?? createSeedRoutes(),
    logger,
    accessLog: options.accessLog ?? "all",
    wsMaxPayload: options.wsMaxPayload ?? 64 * 1024,
    wsIdleTimeout: 120,
    httpIdleTimeout: 10,
    shutdownTimeout: options.shutdownTimeout ?? 5,
  });
  const port = listener.server.port!;
  return {
    listener,
    token,
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    lines,
    [Symbol.asyncDispose]: () => listener.shutdown(),
  };
}

/** A loopback port nothing listens on (bound, then released): a service that is down. */
export function closedPort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export function makeTempDir(prefix = "tokengate-test-"): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * The variables through which Debian's faketime moves a process's clock (`LD_PRELOAD` and
 * `FAKETIME*`): a subprocess started with a clean environment must still see the test's time.
 */
export function clockEnvironment(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && (name === "LD_PRELOAD" || name.startsWith("FAKETIME") || name === "DONT_FAKE_MONOTONIC")) kept[name] = value;
  }
  return kept;
}

/** A `bun run server.ts` child process with its output captured as it arrives. */
export class ServerProcess {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout = "";
  stderr = "";
  readonly #done: Promise<void>;

  constructor(env: Record<string, string>, cwd: string) {
    this.proc = Bun.spawn([process.execPath, "run", SERVER_ENTRY], {
      cwd,
      // A clean environment: nothing from the developer's shell (or CI) may leak into the config,
      // except a faked clock (faketime), which the child must share with the test.
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, LOG_FORMAT: "json", ...clockEnvironment(), ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        const text = decoder.decode(chunk, { stream: true });
        this[key] += text;
        captureOutput(text);
      }
    };
    this.#done = Promise.all([pump(this.proc.stdout, "stdout"), pump(this.proc.stderr, "stderr")]).then(() => undefined);
  }

  /** Resolves once all output has been read and the process has exited. */
  async exited(): Promise<number> {
    const code = await this.proc.exited;
    await this.#done;
    return code;
  }

  /** Parsed JSON log lines printed so far. */
  logLines(): Array<Record<string, unknown>> {
    return this.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.logLines().find(predicate);
      if (found !== undefined) return found;
      if (this.proc.exitCode !== null) break;
      await Bun.sleep(20);
    }
    throw new Error(`log line not seen within ${timeoutMs} ms (exit code ${this.proc.exitCode})`);
  }

  /** Waits for the listening line and returns the bound port. */
  async port(): Promise<number> {
    const line = await this.waitFor((entry) => entry.msg === "listening");
    return Number(line.port);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    if (this.proc.exitCode === null) this.proc.kill(signal);
    return this.exited();
  }
}

/** Sends bytes exactly as given over a real TCP connection and returns the raw response. */
export async function rawRequest(port: number, request: string | Uint8Array, timeoutMs = 3000): Promise<RawResponse> {
  let received = "";
  const { promise, resolve: done } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_socket, chunk) {
        received += chunk.toString("latin1");
        const parsed = parseRaw(received);
        if (parsed !== undefined && parsed.complete) done();
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  socket.write(request);
  const timer = setTimeout(done, timeoutMs);
  await promise;
  clearTimeout(timer);
  socket.end();
  const parsed = parseRaw(received);
  if (parsed === undefined) return { status: 0, headers: new Headers(), body: "", raw: received };
  return { status: parsed.status, headers: parsed.headers, body: parsed.body, raw: received };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  readonly raw: string;
}

function parseRaw(text: string): (Omit<RawResponse, "raw"> & { complete: boolean }) | undefined {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return undefined;
  const [statusLine = "", ...headerLines] = text.slice(0, end).split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const body = Buffer.from(text.slice(end + 4), "latin1").toString("utf8");
  const length = Number(headers.get("content-length") ?? "NaN");
  const complete = status === 101 || (Number.isFinite(length) && Buffer.byteLength(body) >= length);
  return { status, headers, body, complete };
}

/** Runs the real curl binary; returns status, headers and body. */
export async function curl(args: string[]): Promise<{ status: number; body: string; headers: string; exitCode: number }> {
  const proc = Bun.spawn(["curl", "-s", "-S", "-D", "-", "--max-time", "5", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, exitCode] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const split = out.indexOf("\r\n\r\n");
  const headers = split === -1 ? out : out.slice(0, split);
  const body = split === -1 ? "" : out.slice(split + 4);
  const status = Number(headers.split("\r\n")[0]?.split(" ")[1] ?? 0);
  return { status, body, headers, exitCode };
}

/** Opens a WebSocket and collects what happens to it. */
export class WsProbe {
  readonly socket: WebSocket;
  readonly messages: Array<string | ArrayBuffer> = [];
  readonly opened: Promise<boolean>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, options?: { protocols?: string[]; headers?: Headers }) {
    this.socket =
      options === undefined
        ? new WebSocket(url)
        : new WebSocket(url, { protocols: options.protocols ?? [], headers: options.headers ?? new Headers() } as never);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve) => {
      this.socket.addEventListener("open", () => resolve(true));
      this.socket.addEventListener("close", () => resolve(false));
    });
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason }));
    });
    this.socket.addEventListener("message", (event) => this.messages.push(event.data as string | ArrayBuffer));
  }

  async nextMessage(index: number, timeoutMs = 3000): Promise<string | ArrayBuffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length <= index) {
      if (Date.now() > deadline) throw new Error(`no message #${index} within ${timeoutMs} ms`);
      await Bun.sleep(5);
    }
    return this.messages[index]!;
  }
}

/** The whole application (startApp: keyring, JWTs, token endpoint) in-process on port 0. */
export interface TestApp extends AsyncDisposable {
  readonly app: import("../../auth/app.ts").App;
  readonly store: import("../../auth/store/store.ts").Store;
  readonly dataDir: string;
  /** Audit lines the app wrote. */
  readonly audit: string[];
  readonly token: string;
  readonly http: string;
  readonly ws: string;
  readonly lines: string[];
  /** The routes file's table when ROUTES_FILE was set (tests replace it as a reload would). */
  readonly routeTable: import("../../auth/config/routes-file.ts").RouteTable | undefined;
}

export async function startTestApp(env: Record<string, string> = {}, options: { readonly now?: () => number } = {}): Promise<TestApp> {
  const { parseConfig } = await import("../../auth/config/config.ts");
  const { startApp } = await import("../../auth/app.ts");
  const { openDataDirStore } = await import("./stores.ts");
  const dir = makeTempDir();
  const token = env.AUTH_TOKEN ?? newSecret();
  const parsed = parseConfig({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path, ...env, AUTH_TOKEN: token }, { isTTY: false });
  if (!parsed.ok) throw new Error(`test config invalid: ${parsed.problems.map((problem) => problem.variable).join(", ")}`);
  const { loadRoutesFile, RouteTable } = await import("../../auth/config/routes-file.ts");
  const services = loadRoutesFile(parsed.config.routesFile);
  if (!services.ok) throw new Error(`test routes file invalid: ${services.problems.map((problem) => problem.message).join("; ")}`);
  // STORE_URL names another engine (a test's own PostgreSQL database); without it, the data dir's SQLite file.
  const store =
    env.STORE_URL === undefined
      ? await openDataDirStore(dir.path)
      : await (await import("../../auth/store/open.ts")).openStore(parsed.config.store);
  const routeTable = parsed.config.routesFile === null ? undefined : new RouteTable(services.routes);
  const lines: string[] = [];
  const audit: string[] = [];
  const logger = createLogger({
    now: Date.now,
    level: "debug",
    format: "json",
    sink: { write: (line) => (lines.push(line), captureOutput(line)) },
  });
  const { tls } = parsed.config;
  const app = await startApp({
    tls: tls === null ? undefined : { cert: readFileSync(tls.certFile, "utf8"), key: readFileSync(tls.keyFile, "utf8") },
    config: parsed.config,
    store,
    bootstrapToken: token,
    logger,
    pollMs: 50,
    machineHostname: "testbox",
    writeAudit: (line) => (audit.push(line), captureOutput(line)),
    now: options.now ?? Date.now,
    routeTable,
  });
  const port = app.listener.server.port!;
  return {
    app,
    store,
    dataDir: dir.path,
    audit,
    token,
    routeTable,
    http: `${tls === null ? "http" : "https"}://127.0.0.1:${port}`,
    ws: `${tls === null ? "ws" : "wss"}://127.0.0.1:${port}`,
    lines,
    async [Symbol.asyncDispose]() {
      await app.shutdown();
      await store.close();
      dir[Symbol.dispose]();
    },
  };
}
