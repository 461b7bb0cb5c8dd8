/**
 * tokengate's composition root: the only reader of Bun.env. It validates the configuration,
 * resolves the bootstrap token, wires the logger to stdout and starts the listener.
 */
import { networkInterfaces } from "node:os";
import { formatConfigProblems, parseConfig, type ConfigProblem } from "./auth/config.ts";
import { loadBootstrapToken } from "./auth/bootstrap.ts";
import { createKeyring } from "./auth/keyring.ts";
import { startListener } from "./auth/listener.ts";
import { createPasswordVerifier } from "./auth/passwords.ts";
import { createPasswordAuthenticator } from "./auth/users.ts";
import { createLogger } from "./auth/log.ts";
import { createSeedRoutes } from "./auth/routes.ts";
import { openSqliteStore, type Store } from "./auth/store.ts";
import { digestToken } from "./auth/tokens.ts";

const EX_CONFIG = 78;

function failConfig(problems: readonly ConfigProblem[]): never {
  process.stderr.write(formatConfigProblems(problems));
  process.exit(EX_CONFIG);
}

const parsed = parseConfig(Bun.env, { isTTY: process.stdout.isTTY === true });
if (!parsed.ok) failConfig(parsed.problems);
const config = parsed.config;

const bootstrap = loadBootstrapToken(config.token, config.dataDir);
if (!bootstrap.ok) failConfig(bootstrap.problems);

let store: Store;
try {
  store = openSqliteStore(config.dataDir);
} catch (error) {
  const why = error instanceof Error ? error.message : String(error);
  failConfig([{ variable: "DATA_DIR", message: `holds a key database that cannot be opened (${why}); check its permissions and free space` }]);
}

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

const keyring = createKeyring({
  store,
  bootstrapDigest: digestToken(bootstrap.token),
  onFlushError: (error) => logger.warn("could not record key usage; will retry", { error: error instanceof Error ? error.message : "unknown" }),
});

let listener;
try {
  listener = startListener({
    port: config.port,
    host: config.host,
    authenticate: keyring.authenticate,
    recordUse: keyring.recordUse,
    // One argon2id verification at a time keeps a core free for everything else; 8 may wait.
    authenticatePassword: config.basicAuth
      ? createPasswordAuthenticator({
          users: store,
          verifier: createPasswordVerifier({ concurrency: 1, queueLimit: 8 }),
          roleScopes: config.roleScopes,
        })
      : undefined,
    revalidate: keyring.revalidate,
    routes: createSeedRoutes(),
    logger,
    accessLog: config.accessLog,
    wsMaxPayload: config.wsMaxPayload,
    wsIdleTimeout: config.wsIdleTimeout,
    httpIdleTimeout: config.httpIdleTimeout,
    shutdownTimeout: config.shutdownTimeout,
  });
} catch (error) {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
  const why =
    code === "EADDRINUSE"
      ? `port ${config.port} on ${config.host} is already in use; stop the other program or choose another PORT`
      : code === "EACCES"
        ? `this user may not listen on port ${config.port}; choose a PORT above 1023`
        : code === "EADDRNOTAVAIL"
          ? `${config.host} is not an address of this machine; use 0.0.0.0 or one of its addresses`
          : `the listener could not start (${code || "unknown error"})`;
  failConfig([{ variable: code === "EADDRNOTAVAIL" ? "HOST" : "PORT", message: why }]);
}

keyring.start(() => {
  const closed = listener.revalidateSockets();
  logger.info("keys reloaded", { closed_sockets: closed });
});

const port = listener.server.port ?? config.port;
const lanAddresses =
  config.host === "0.0.0.0" || config.host === "::"
    ? Object.values(networkInterfaces())
        .flat()
        .filter((net) => net !== undefined && !net.internal && net.family === "IPv4")
        .map((net) => `http://${net!.address}:${port}`)
    : [];
logger.info("listening", { url: `http://${config.host}:${port}`, port, lan: lanAddresses.join(" ") || undefined });

const origin = bootstrap.origin;
if (origin === "generated") {
  logger.warn(
    `No AUTH_TOKEN was configured, so a new token was generated and saved to ${bootstrap.path} (readable only by this user). ` +
      `Try it: curl -H "X-Auth-Token: $(cat ${bootstrap.path})" http://127.0.0.1:${port}/secure-data`,
  );
} else {
  logger.info("bootstrap token loaded", { source: origin, file: bootstrap.path });
}

let signalled = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (signalled) return;
    signalled = true;
    logger.info("shutting down", { signal });
    void listener.shutdown().then(async () => {
      keyring.stop();
      keyring.flushUsage();
      store.close();
      clearInterval(flushTimer);
      await flushLog();
      process.exit(0);
    });
  });
}
