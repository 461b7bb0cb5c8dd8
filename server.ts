/**
 * tokengate's composition root: the only reader of Bun.env. It validates the configuration,
 * resolves the bootstrap token, wires the logger to stdout and starts the listener.
 */
import { openSync, readFileSync, writeSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { formatConfigProblems, parseConfig, type ConfigProblem } from "./auth/config.ts";
import { startApp, type App } from "./auth/app.ts";
import { describeFsError, errorCode, loadBootstrapToken } from "./auth/bootstrap.ts";
import { createLogger } from "./auth/log.ts";
import { describeStore, openStore } from "./auth/databases.ts";
import { createRedisAttemptStore, type RedisAttemptStore } from "./auth/redis.ts";
import { describeUrl } from "./auth/redact.ts";
import { explainListenFailure, listReachableUrls } from "./auth/addresses.ts";
import { offerPairing } from "./auth/pairing.ts";
import type { Store } from "./auth/store.ts";
import type { Clock } from "./auth/clock.ts";

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

// One async main instead of top-level await: `bun build --compile --bytecode` needs that.
/** Starts the server; also `tokengate serve` in the single binary (tokengate.ts). */
export async function main(): Promise<void> {
  const parsed = parseConfig(Bun.env, { isTTY: process.stdout.isTTY === true });
  if (!parsed.ok) failConfig(parsed.problems);
  const config = parsed.config;
  if (!config.reusePort) checkPortFree(config.host, config.port);

  const bootstrap = loadBootstrapToken(config.token, config.dataDir);
  if (!bootstrap.ok) failConfig(bootstrap.problems);

  let store: Store;
  try {
    store = await openStore(config.store);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    failConfig([
      config.store.kind === "sqlite"
        ? { variable: "DATA_DIR", message: `holds a key database that cannot be opened (${why}); check its permissions and free space` }
        : { variable: "STORE_URL", message: `names a PostgreSQL database that cannot be used (${why}); check that it runs, that the database exists and that the user may create tables` },
    ]);
  }
  // Redis is optional at startup: while it is away the guard counts in this process and says so.
  const attempts: RedisAttemptStore | undefined = config.redisUrl === null ? undefined : createRedisAttemptStore(config.redisUrl, `${config.redisKeyPrefix}attempts:`);

  // Log lines are batched in memory and written in one call per batch (or every 25 ms), so a
  // busy server makes a few write syscalls a second instead of one per request.
  const stdout = Bun.stdout.writer({ highWaterMark: 64 * 1024 });
  let pending = "";
  const flushLog = () => {
    if (pending !== "") {
      stdout.write(pending);
      pending = "";
    }
    return stdout.flush();
  };
  const flushTimer = setInterval(() => void flushLog(), 25);
  flushTimer.unref();
  const logger = createLogger({
    now: systemClock,
    level: config.logLevel,
    format: config.logFormat,
    sink: {
      write(line) {
        pending += line;
        if (pending.length >= 32 * 1024 || config.logFormat === "pretty") void flushLog();
      },
    },
  });
  for (const warning of bootstrap.warnings) logger.warn(warning);

  // TLS: read the PEM files here (I/O stays in the composition root) and show the certificate's
  // fingerprint so clients on the LAN can pin it.
  let tls: { cert: string; key: string } | undefined;
  let fingerprint: string | undefined;
  if (config.tls !== null) {
    const read = (variable: "TLS_CERT_FILE" | "TLS_KEY_FILE", path: string) => {
      try {
        return readFileSync(path, "utf8");
      } catch (error) {
        return failConfig([{ variable, message: `names ${path}, which ${describeFsError(error)}; point it at a PEM file this user can read` }]);
      }
    };
    tls = { cert: read("TLS_CERT_FILE", config.tls.certFile), key: read("TLS_KEY_FILE", config.tls.keyFile) };
    // Loaded only with TLS: node:crypto costs ~5 ms of every start.
    const { X509Certificate } = await import("node:crypto");
    try {
      fingerprint = new X509Certificate(tls.cert).fingerprint256;
    } catch {
      failConfig([{ variable: "TLS_CERT_FILE", message: `names ${config.tls.certFile}, which is not a PEM certificate` }]);
    }
  }

  // Audit events go to their own file when AUDIT_LOG_FILE is set (appended, readable only by us),
  // otherwise into the stdout stream next to the access log.
  let writeAudit = (line: string) => logger.raw(line);
  if (config.auditLogFile !== null) {
    try {
      const fd = openSync(config.auditLogFile, "a", 0o600);
      writeAudit = (line) => void writeSync(fd, line);
    } catch (error) {
      failConfig([{ variable: "AUDIT_LOG_FILE", message: `names ${config.auditLogFile}, which ${describeFsError(error)}; create its directory or fix its permissions` }]);
    }
  }

  let app: App;
  try {
    app = await startApp({ config, store, attempts, bootstrapToken: bootstrap.token, logger, machineHostname: hostname(), writeAudit, tls, now: systemClock });
  } catch (error) {
    const code = errorCode(error) ?? "";
    const explained = explainStartFailure(error, config.host, config.port);
    // Bun rejects a key that does not match the certificate (or is not a key) when it binds.
    const tlsProblem = tls !== undefined && (/^ERR_(?:OSSL|SSL)/.test(code) || (error instanceof Error && /tls|ssl|private key|certificate|pem/i.test(error.message)));
    failConfig([
      tlsProblem
        ? { variable: "TLS_KEY_FILE", message: "does not hold the private key of TLS_CERT_FILE (or is not a PEM key); check both files" }
        : (explained ?? { variable: "PORT", message: `tokengate could not start (${code || (error instanceof Error ? error.message : "unknown error")})` }),
    ]);
  }
  const { listener } = app;

  const port = listener.server.port ?? config.port;
  const scheme = tls === undefined ? "http" : "https";
  const reachable = listReachableUrls(scheme, config.host, port, Object.values(networkInterfaces()).flat().filter((net) => net !== undefined));
  logger.info("listening", {
    url: `${scheme}://${config.host}:${port}`,
    port,
    lan: reachable.join(" ") || undefined,
    tls_sha256: fingerprint,
    store: describeStore(config.store),
    attempts: config.redisUrl === null ? "memory" : describeUrl(config.redisUrl),
  });

  const origin = bootstrap.origin;
  if (origin === "generated") {
    logger.warn(
      `No AUTH_TOKEN was configured, so a new token was generated and saved to ${bootstrap.path} (readable only by this user). ` +
        `Try it: curl ${tls === undefined ? "" : "-k "}-H "X-Auth-Token: $(cat ${bootstrap.path})" ${scheme}://127.0.0.1:${port}/secure-data`,
    );
  } else {
    logger.info("bootstrap token loaded", { source: origin, file: bootstrap.path });
  }

  // Not awaited: a store that hangs here must not hold up the signal handlers below.
  if (config.pairing) {
    void offerPairing({
      store,
      logger,
      urls: reachable.length > 0 ? reachable : [`${scheme}://127.0.0.1:${port}/`],
      // The code goes to the terminal only, after the log lines before it, never into the log.
      terminal: process.stdout.isTTY === true ? (text) => void Promise.resolve(flushLog()).then(() => process.stdout.write(text)) : undefined,
      now: systemClock,
    });
  }

  let signalled = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      logger.info("shutting down", { signal });
      void app.shutdown().then(async () => {
        await store.close().catch(() => undefined);
        attempts?.close();
        clearInterval(flushTimer);
        await flushLog();
        process.exit(0);
      });
    });
  }
}

if (import.meta.main) void main();
