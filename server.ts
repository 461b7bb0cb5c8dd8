/**
 * tokengate's composition root: the only reader of Bun.env. It validates the configuration,
 * resolves the bootstrap token, wires the logger to stdout and starts the listener.
 */
import { hostname, networkInterfaces } from "node:os";
import { formatConfigProblems, parseConfig, type Config, type ConfigProblem } from "./auth/config/config.ts";
import { startApp, type App } from "./auth/app.ts";
import { loadRoutesFile, RouteTable } from "./auth/config/routes-file.ts";
import { watchRoutesFile } from "./auth/config/routes-reload.ts";
import { errorCode, loadBootstrapToken } from "./auth/config/bootstrap.ts";
import { isConfigProblem, openAuditFile, readTlsFiles, type TlsFiles } from "./auth/config/files.ts";
import { createLogger, type Logger } from "./auth/core/log.ts";
import { describeStore, openStore } from "./auth/store/open.ts";
import { createRedisAttemptStore, type RedisAttemptStore } from "./auth/guard/redis.ts";
import { describeUrl } from "./auth/core/redact.ts";
import { explainListenFailure, listReachableUrls } from "./auth/core/addresses.ts";
import { offerPairing } from "./auth/oauth/pairing.ts";
import type { Store } from "./auth/store/store.ts";
import type { Clock } from "./auth/core/clock.ts";

const EX_CONFIG = 78;

function failConfig(problems: readonly ConfigProblem[]): never {
  process.stderr.write(formatConfigProblems(problems));
  process.exit(EX_CONFIG);
}

/** The bind explanation, or undefined when the port could not be explained. */
function explainStartFailure(error: unknown, host: string, port: number): ConfigProblem | undefined {
  return explainListenFailure(errorCode(error), host, port);
}

/**
 * Binds and releases the port once before anything is written, so a taken port is reported
 * without leaving a token file and an empty database behind. (The real bind follows within
 * milliseconds; losing that race still ends in the same explained exit.)
 */
function checkPortFree(host: string, port: number): void {
  if (port === 0) return;
  try {
    Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
  } catch (error) {
    const explained = explainStartFailure(error, host, port);
    if (explained !== undefined) failConfig([explained]);
  }
}

/** The one clock of the server: every part of it reads the time through this. */
const systemClock: Clock = () => Date.now();

type Bootstrap = Extract<ReturnType<typeof loadBootstrapToken>, { ok: true }>;

async function openStoreOrExit(config: Config): Promise<Store> {
  try {
    return await openStore(config.store);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return failConfig([
      config.store.kind === "sqlite"
        ? { variable: "DATA_DIR", message: `holds a key database that cannot be opened (${why}); check its permissions and free space` }
        : {
            variable: "STORE_URL",
            message: `names a PostgreSQL database that cannot be used (${why}); check that it runs, that the database exists and that the user may create tables`,
          },
    ]);
  }
}

/**
 * Log lines are batched in memory and written in one call per batch (or every 25 ms), so a busy
 * server makes a few write syscalls a second instead of one per request.
 */
class StdoutSink {
  private readonly stdout = Bun.stdout.writer({ highWaterMark: 64 * 1024 });
  private pending = "";
  private readonly timer = setInterval(() => void this.flush(), 25);

  constructor(private readonly eager: boolean) {
    this.timer.unref();
  }

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= 32 * 1024 || this.eager) void this.flush();
  }

  flush(): number | Promise<number> {
    if (this.pending !== "") {
      this.stdout.write(this.pending);
      this.pending = "";
    }
    return this.stdout.flush();
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** TLS_CERT_FILE and TLS_KEY_FILE, with the certificate's fingerprint; a file that cannot be used stops the start. */
async function readTls(config: Config): Promise<TlsFiles | undefined> {
  const read = await readTlsFiles(config);
  return read !== undefined && isConfigProblem(read) ? failConfig([read]) : read;
}

/** Audit events go to their own file when AUDIT_LOG_FILE is set, otherwise next to the access log. */
function openAuditSink(config: Config, logger: Logger): (line: string) => void {
  const sink = openAuditFile(config, (line) => logger.raw(line));
  return isConfigProblem(sink) ? failConfig([sink]) : sink;
}

function explainAppFailure(error: unknown, config: Config, withTls: boolean): ConfigProblem {
  const code = errorCode(error) ?? "";
  // Bun rejects a key that does not match the certificate (or is not a key) when it binds.
  const tlsProblem =
    withTls && (/^ERR_(?:OSSL|SSL)/.test(code) || (error instanceof Error && /tls|ssl|private key|certificate|pem/i.test(error.message)));
  if (tlsProblem)
    return { variable: "TLS_KEY_FILE", message: "does not hold the private key of TLS_CERT_FILE (or is not a PEM key); check both files" };
  return (
    explainStartFailure(error, config.host, config.port) ?? {
      variable: "PORT",
      message: `tokengate could not start (${code || (error instanceof Error ? error.message : "unknown error")})`,
    }
  );
}

/** The lines a person reads at startup: where it listens, and how to try the token. */
function announce(logger: Logger, config: Config, app: App, bootstrap: Bootstrap, fingerprint: string | undefined): string[] {
  const port = app.listener.server.port ?? config.port;
  const scheme = fingerprint === undefined ? "http" : "https";
  const reachable = listReachableUrls(
    scheme,
    config.host,
    port,
    Object.values(networkInterfaces())
      .flat()
      .filter((net) => net !== undefined),
  );
  logger.info("listening", {
    url: `${scheme}://${config.host}:${port}`,
    port,
    lan: reachable.join(" ") || undefined,
    tls_sha256: fingerprint,
    store: describeStore(config.store),
    attempts: config.redisUrl === null ? "memory" : describeUrl(config.redisUrl),
  });
  if (bootstrap.origin === "generated") {
    logger.warn(
      `No AUTH_TOKEN was configured, so a new token was generated and saved to ${bootstrap.path} (readable only by this user). ` +
        `Try it: curl ${fingerprint === undefined ? "" : "-k "}-H "X-Auth-Token: $(cat ${bootstrap.path})" ${scheme}://127.0.0.1:${port}/secure-data`,
    );
  } else {
    logger.info("bootstrap token loaded", { source: bootstrap.origin, file: bootstrap.path });
  }
  return reachable.length > 0 ? reachable : [`${scheme}://127.0.0.1:${port}/`];
}

/** SIGINT/SIGTERM: close sockets with 1001, flush, exit 0 (once, however many signals arrive). */
function stopOnSignals(logger: Logger, app: App, closers: () => Promise<void>): void {
  let signalled = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      logger.info("shutting down", { signal });
      void app.shutdown().then(async () => {
        await closers();
        process.exit(0);
      });
    });
  }
}

// One async main instead of top-level await: `bun build --compile --bytecode` needs that.
/** Starts the server; also `tokengate serve` in the single binary (tokengate.ts). */
export async function main(): Promise<void> {
  const parsed = parseConfig(Bun.env, { isTTY: process.stdout.isTTY === true });
  if (!parsed.ok) return failConfig(parsed.problems);
  const config = parsed.config;
  const services = loadRoutesFile(config.routesFile);
  if (!services.ok) return failConfig(services.problems);
  const routeTable = config.routesFile === null ? undefined : new RouteTable(services.routes);
  if (!config.reusePort) checkPortFree(config.host, config.port);
  const bootstrap = loadBootstrapToken(config.token, config.dataDir);
  if (!bootstrap.ok) return failConfig(bootstrap.problems);
  const store = await openStoreOrExit(config);
  // Redis is optional at startup: while it is away the guard counts in this process and says so.
  const attempts: RedisAttemptStore | undefined =
    config.redisUrl === null ? undefined : createRedisAttemptStore(config.redisUrl, `${config.redisKeyPrefix}attempts:`);
  const sink = new StdoutSink(config.logFormat === "pretty");
  const logger = createLogger({ now: systemClock, level: config.logLevel, format: config.logFormat, sink });
  for (const warning of bootstrap.warnings) logger.warn(warning);
  const tls = await readTls(config);
  const writeAudit = openAuditSink(config, logger);

  const app = await startApp({
    config,
    store,
    attempts,
    bootstrapToken: bootstrap.token,
    logger,
    machineHostname: hostname(),
    writeAudit,
    tls: tls?.tls,
    now: systemClock,
    routeTable,
  }).catch((error: unknown) => failConfig([explainAppFailure(error, config, tls !== undefined)]));
  const urls = announce(logger, config, app, bootstrap, tls?.fingerprint);
  const routesWatch =
    config.routesFile === null || routeTable === undefined ? undefined : watchRoutesFile(config.routesFile, routeTable, logger);
  // Registered only with a routes file: otherwise SIGHUP keeps its usual meaning (stop).
  if (routesWatch !== undefined) process.on("SIGHUP", () => routesWatch.reload("SIGHUP"));
  if (config.routesFile !== null && config.trustedProxies.length === 0) {
    logger.warn(
      "ROUTES_FILE is set but TRUSTED_PROXIES is empty: /auth/verify cannot read the original request from your proxy; set TRUSTED_PROXIES to its address",
    );
  }
  // Not awaited: a store that hangs here must not hold up the signal handlers below.
  if (config.pairing) {
    // The code goes to the terminal only, after the log lines before it, never into the log.
    const terminal =
      process.stdout.isTTY === true
        ? (text: string) => void Promise.resolve(sink.flush()).then(() => process.stdout.write(text))
        : undefined;
    void offerPairing({ store, logger, urls, terminal, now: systemClock });
  }
  // A promise nobody awaited that fails must cost one log line, never the whole gate (Bun exits on it).
  process.on("unhandledRejection", (error) =>
    logger.error("unhandled rejection", { error: error instanceof Error ? error.name : "unknown" }),
  );
  stopOnSignals(logger, app, async () => {
    routesWatch?.close();
    await store.close().catch(() => undefined);
    attempts?.close();
    sink.close();
    await sink.flush();
  });
}

if (import.meta.main) void main();
