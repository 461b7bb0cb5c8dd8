/**
 * What opening a gate inside a program takes before any request: the configuration through the
 * server's zod schema, the bootstrap token, the store, the attempt counters, the log and audit
 * sinks, TLS files and the routes file. Every problem is collected as the server reports it (the
 * variable and the fix) and thrown as one GateConfigError: a library never exits its program.
 */
import { hostname } from "node:os";
import type { AppOptions } from "../app.ts";
import { loadBootstrapToken } from "../config/bootstrap.ts";
import { formatConfigProblems, parseConfig, type Config, type ConfigProblem } from "../config/config.ts";
import { isConfigProblem, openAuditFile, readTlsFiles } from "../config/files.ts";
import { loadRoutesFile, RouteTable } from "../config/routes-file.ts";
import type { Clock } from "../core/clock.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { createRedisAttemptStore, type RedisAttemptStore } from "../guard/redis.ts";
import { openStore } from "../store/open.ts";
import type { Store } from "../store/store.ts";

/** The configuration was refused: each problem names its variable (or option) and the fix. */
export class GateConfigError extends Error {
  override readonly name = "GateConfigError";

  constructor(readonly problems: readonly ConfigProblem[]) {
    super(formatConfigProblems(problems, "the gate was not opened").trimEnd());
  }
}

export interface OpenOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: (line: string) => void;
  readonly now: Clock;
}

/** The app's options and what the program must close with it. */
export interface Opened {
  readonly config: Config;
  readonly appOptions: Omit<AppOptions, "programScopes">;
  readonly store: Store;
  readonly attempts: RedisAttemptStore | undefined;
  readonly logger: Logger;
}

const orThrow = <T>(value: T | ConfigProblem): T => {
  if (isConfigProblem(value)) throw new GateConfigError([value]);
  return value;
};

async function openStoreOrThrow(config: Config): Promise<Store> {
  try {
    return await openStore(config.store);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    const variable = config.store.kind === "sqlite" ? "DATA_DIR" : "STORE_URL";
    throw new GateConfigError([
      { variable, message: `names a store that cannot be opened (${why}); check that it exists and that this user may write it` },
    ]);
  }
}

function parseOrThrow(env: OpenOptions["env"]): Config {
  const parsed = parseConfig(env, { isTTY: false });
  if (!parsed.ok) throw new GateConfigError(parsed.problems);
  return parsed.config;
}

export async function openParts(options: OpenOptions): Promise<Opened> {
  const config = parseOrThrow(options.env);
  const services = loadRoutesFile(config.routesFile);
  if (!services.ok) throw new GateConfigError(services.problems);
  const bootstrap = loadBootstrapToken(config.token, config.dataDir);
  if (!bootstrap.ok) throw new GateConfigError(bootstrap.problems);
  const tls = orThrow(await readTlsFiles(config));
  const logger = createLogger({ now: options.now, level: config.logLevel, format: config.logFormat, sink: { write: options.log } });
  for (const warning of bootstrap.warnings) logger.warn(warning);
  const writeAudit = orThrow(openAuditFile(config, (line) => logger.raw(line)));
  const store = await openStoreOrThrow(config);
  const attempts = config.redisUrl === null ? undefined : createRedisAttemptStore(config.redisUrl, `${config.redisKeyPrefix}attempts:`);
  const appOptions = {
    config,
    store,
    attempts,
    bootstrapToken: bootstrap.token,
    logger,
    machineHostname: hostname(),
    writeAudit,
    tls: tls?.tls,
    now: options.now,
    routeTable: config.routesFile === null ? undefined : new RouteTable(services.routes),
  };
  return { config, appOptions, store, attempts, logger };
}
