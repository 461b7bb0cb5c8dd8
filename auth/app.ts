/**
 * The assembled application: signing keys, the keyring, the password queue, the routes and the
 * listener, wired from a validated config and an open store. server.ts calls it with the real
 * environment; tests call it with their own config, so both run exactly the same wiring.
 */
import type { Config } from "./config/config.ts";
import {
  fingerprintOf,
  generateSigningKey,
  importKeySet,
  looksLikeJwt,
  usableKeys,
  type KeySet,
  type TokenSettings,
} from "./secrets/jwt.ts";
import { createKeyring, type JwtVerification, type Keyring } from "./authn/keyring.ts";
import { createServing, startListener, type Listener, type ListenerOptions, type Serving } from "./http/listener.ts";
import type { Logger } from "./core/log.ts";
import { createTokenRoutes } from "./oauth/token-endpoint.ts";
import { createHostPolicy, createOriginPolicy } from "./core/origins.ts";
import { createAddressList, type AddressList } from "./core/addresses.ts";
import { createGuard, createMemoryAttemptStore, type AttemptStore, type Guard } from "./guard/guard.ts";
import {
  createAddressResolver,
  createForwardingCheck,
  createSecureTransportCheck,
  createTransportCheck,
  type AddressResolver,
  type TransportCheck,
} from "./http/clients.ts";
import type { Clock } from "./core/clock.ts";
import { createAuditLog, type AuditLog } from "./guard/audit.ts";
import { createPasswordVerifier } from "./secrets/passwords.ts";
import { createPairingRoutes } from "./oauth/pairing.ts";
import { createDeviceRoutes } from "./oauth/device.ts";
import { createSeedRoutes, createTicketRoute, SCOPES, type Route } from "./http/routes.ts";
import { createTicketBook, type TicketBook } from "./secrets/tickets.ts";
import consolePage from "../console/index.html";
import { createConsole } from "./http/console-assets.ts";
import { createLoginRoutes } from "./session/login.ts";
import { createPasskeyRoutes } from "./session/passkeys.ts";
import { createAdminRoutes } from "./admin/routes.ts";
import { ADMIN_SCOPE } from "./admin/endpoints.ts";
import { listKnownScopes } from "./http/scopes.ts";
import { createGateMetrics, type GateMetrics } from "./core/gate-metrics.ts";
import { createMetricsRoute, METRICS_SCOPE, startProcessSampler } from "./http/metrics.ts";
import { version as packageVersion } from "../package.json";
import { SessionIssuer } from "./session/sessions.ts";
import { createForwardAuthRoute } from "./forward/verify.ts";
import { MAX_BODY_BYTES, RouteTable, routesServeHost } from "./config/routes-file.ts";
import { createProxiedRoutes } from "./proxy/services.ts";
import type { Store } from "./store/store.ts";
import { digestToken } from "./secrets/tokens.ts";
import { createPasswordAuthenticator, type PasswordAuthenticator } from "./authn/users.ts";

export interface App {
  readonly listener: Listener;
  readonly keyring: Keyring;
  /** Stops polling, flushes usage, closes sockets with 1001 and stops the listener. */
  shutdown(): Promise<void>;
}

export interface AppOptions {
  readonly config: Config;
  readonly store: Store;
  readonly bootstrapToken: string;
  readonly logger: Logger;
  /** How often the keyring looks for changes made by other processes (ms). */
  readonly pollMs?: number;
  /** This machine's host name: answered by default (and as `<name>.local`). */
  readonly machineHostname: string;
  /** Where audit lines go (the caller picks stdout or AUDIT_LOG_FILE). */
  readonly writeAudit: (line: string) => void;
  /** PEM contents of TLS_CERT_FILE / TLS_KEY_FILE, read by the caller. */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Failed-attempt counters: shared (Redis) when several instances run; in memory by default. */
  readonly attempts?: AttemptStore | undefined;
  /** The one clock every part of the app reads (server.ts passes the system's). */
  readonly now: Clock;
  /**
   * The user's own services (ROUTES_FILE, read and watched by the caller): the built-in proxy
   * forwards to them and forward auth applies their scopes. Absent: neither has any route.
   */
  readonly routeTable?: RouteTable | undefined;
  /** Scopes a program's own routes require (tokengate as a library): new keys may be given them. */
  readonly programScopes?: (() => readonly string[]) | undefined;
}

/** Clock tolerance for JWT exp/nbf/iat, seconds. */
const CLOCK_TOLERANCE = 5;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : "unknown");

/**
 * The JWT signing keys in force. The first start generates one; every later start (and every
 * instance) reuses it. After `cli signing-keys rotate`, or a retirement aging out, `reload`
 * re-imports them and keeps the previous set if the new one cannot sign.
 */
class SigningKeys {
  private constructor(
    private keySet: KeySet,
    private readonly options: AppOptions,
  ) {}

  static async load(options: AppOptions): Promise<SigningKeys> {
    const { config, store, now } = options;
    const records = await store.ensureSigningKey(await generateSigningKey(config.jwt.alg, now()));
    const initial = await importKeySet(records, config.jwt.alg, now());
    if (initial === undefined) throw new Error(`no usable ${config.jwt.alg} signing key in the database`);
    return new SigningKeys(initial, options);
  }

  readonly current = (): KeySet => this.keySet;

  /** The last reload asked for; each waits for the one before, so two never swap in sets out of order or log one change twice. */
  private reloading: Promise<void> = Promise.resolve();

  reload(): Promise<void> {
    this.reloading = this.reloading.catch(() => undefined).then(() => this.readKeys());
    return this.reloading;
  }

  private async readKeys(): Promise<void> {
    const { config, store, now, logger } = this.options;
    const stored = await store.listSigningKeys();
    if (fingerprintOf(usableKeys(stored, config.jwt.alg, now())) === this.keySet.fingerprint) return;
    const next = await importKeySet(stored, config.jwt.alg, now());
    if (next === undefined)
      return logger.error("signing keys changed but none can sign; keeping the previous set", { alg: config.jwt.alg });
    this.keySet = next;
    logger.info("signing keys reloaded", { kid: next.signing.kid, published: next.jwks.keys.length });
  }
}

/** The keyring, its store-health and key events going to the log and the audit log. */
function openKeyring(options: AppOptions, audit: AuditLog, jwt: JwtVerification, metrics: GateMetrics | undefined): Promise<Keyring> {
  const { logger } = options;
  return createKeyring({
    metrics,
    onStoreHealth: (error) =>
      error === undefined
        ? logger.info("store reachable again; authenticating from it")
        : logger.error("store unreachable; credentials from it are refused with 503 until it answers (the bootstrap token still works)", {
            error: messageOf(error),
          }),
    onKeyEvent: (event, key) =>
      audit.record(event, { key_id: key.id, name: key.name, scopes: key.scopes.join(" "), replaced_by: key.replacedBy ?? undefined }),
    store: options.store,
    bootstrapDigest: digestToken(options.bootstrapToken),
    bootstrapLooksLikeJwt: looksLikeJwt(options.bootstrapToken),
    jwt,
    sessionIdleMs: options.config.sessions.idleMs,
    onFlushError: (error) => logger.warn("could not record key usage; will retry", { error: messageOf(error) }),
    now: options.now,
  });
}

/** The brute-force guard: bans in the store, counts in memory or Redis, events to the audit log. */
async function openGuard(options: AppOptions, audit: AuditLog, metrics: GateMetrics | undefined): Promise<Guard> {
  const { config, logger } = options;
  const exempt = createAddressList(config.banExempt);
  const guard = createGuard({
    metrics,
    attempts: options.attempts ?? createMemoryAttemptStore(),
    bans: options.store,
    exempt: (address) => exempt.has(address),
    now: options.now,
    onEvent: (event) => {
      switch (event.event) {
        case "ban.started":
          return audit.record(event.event, { subject: event.subject, until: new Date(event.until).toISOString(), level: event.level });
        case "ban.ended":
          return audit.record(event.event, { subject: event.subject });
        case "attempts.unavailable":
          return logger.error("attempt counter store unreachable; counting failed attempts in this process until it answers", {
            error: messageOf(event.error),
          });
        case "attempts.available":
          return logger.info("attempt counter store reachable again");
      }
    },
    onBanError: (error) => logger.error("could not record a ban in the store; it holds in this process only", { error: messageOf(error) }),
  });
  await guard.reload();
  return guard;
}

/** What the routes and the gate share: who the client is, the guard, the audit log, the keyring. */
interface Parts {
  readonly options: AppOptions;
  readonly keys: SigningKeys;
  readonly keyring: Keyring;
  readonly guard: Guard;
  readonly audit: AuditLog;
  readonly tickets: TicketBook;
  readonly trustedProxies: AddressList;
  readonly addressOf: AddressResolver;
  readonly passwordTransport: TransportCheck | undefined;
  readonly authenticatePassword: PasswordAuthenticator;
  readonly tokenSettings: TokenSettings;
  readonly routeTable: RouteTable;
  readonly secureTransport: TransportCheck;
  readonly sessions: SessionIssuer;
  /** METRICS: what every part counts into, and /metrics renders; absent when off. */
  readonly metrics: GateMetrics | undefined;
}

/** Browser sign-in: the login page's endpoints and passkeys. */
function buildSessionRoutes(parts: Parts, page: (request: Request) => Promise<Response>): Route[] {
  const { options, keyring, guard, audit, addressOf } = parts;
  const { config, store, logger, now } = options;
  return [
    ...createLoginRoutes({
      issuer: parts.sessions,
      authenticate: keyring.authenticate,
      authenticatePassword: parts.authenticatePassword,
      passwordTransport: parts.passwordTransport,
      guard,
      audit,
      metrics: parts.metrics,
      addressOf,
      originPolicy: createOriginPolicy(config.allowedOrigins),
      page,
    }),
    ...createPasskeyRoutes({
      store,
      config: config.webauthn,
      issuer: parts.sessions,
      now,
      audit,
      guard,
      metrics: parts.metrics,
      addressOf,
      roleScopes: config.roleScopes,
      authenticatePassword: parts.authenticatePassword,
      passwordTransport: parts.passwordTransport,
      logger,
    }),
  ];
}

/** Every scope this deployment knows: the seed's, the routes file's, the admin API's, a program's and ROLE_SCOPES'. */
function listDeploymentScopes(parts: Parts): string[] {
  const { options } = parts;
  return listKnownScopes(options.config.roleScopes, [
    ...createSeedRoutes(),
    ...parts.routeTable.routes,
    { scope: ADMIN_SCOPE },
    { scope: METRICS_SCOPE },
    ...(options.programScopes?.() ?? []).map((scope) => ({ scope })),
  ]);
}

/** Device login (RFC 8628): the device's endpoint, the page's device view and the person's approvals. */
function buildDeviceRoutes(parts: Parts, page: (request: Request) => Promise<Response>): Route[] {
  const { options, guard, audit, addressOf, metrics } = parts;
  const { config, store, logger, now } = options;
  return createDeviceRoutes({
    store,
    clients: config.deviceClients,
    knownScopes: () => listDeploymentScopes(parts),
    publicUrl: config.publicUrl,
    secureTransport: parts.secureTransport,
    addressOf,
    guard,
    audit,
    metrics,
    logger,
    now,
    page,
    servesServiceHost: (host) => routesServeHost(parts.routeTable.routes, host),
  });
}

/** Every route the server answers: console, sign-in, seed routes, tickets, OAuth endpoints, forward auth, pairing. */
function buildRoutes(parts: Parts): Route[] {
  const { options, keyring, guard, audit, addressOf, passwordTransport, metrics } = parts;
  const { config, store, logger, now } = options;
  const consoleBundle = createConsole(consolePage);
  return [
    // The console page and its assets go through the gate like any route: Host check, headers.
    ...consoleBundle.routes,
    ...buildSessionRoutes(parts, consoleBundle.servePage),
    ...buildDeviceRoutes(parts, consoleBundle.servePage),
    ...createAdminRoutes({
      store,
      audit,
      now,
      version: packageVersion,
      // The change holds on the very next request: the keyring has read it, the guard's bans and the signing keys too.
      afterChange: async () => {
        await keyring.refreshAfterWrite();
        await guard.reload();
        await parts.keys.reload();
      },
      roleScopes: config.roleScopes,
      jwtAlg: config.jwt.alg,
      knownScopes: () => listDeploymentScopes(parts),
      servesServiceHost: (host) => routesServeHost(parts.routeTable.routes, host),
    }),
    ...createSeedRoutes(),
    createTicketRoute(parts.tickets, "/ws", SCOPES.wsConnect),
    ...createTokenRoutes({
      keys: parts.keys.current,
      settings: parts.tokenSettings,
      authenticatePassword: config.passwordGrant ? parts.authenticatePassword : undefined,
      authenticateKey: keyring.authenticate,
      store,
      roleScopes: config.roleScopes,
      refreshTtl: config.jwt.refreshTtl,
      afterRevocation: () => void keyring.refresh(),
      guard,
      audit,
      metrics,
      addressOf,
      passwordTransport,
      logger,
      now,
      device: { store, clients: config.deviceClients, afterKeyIssued: async () => void (await keyring.refreshAfterWrite()) },
    }),
    createForwardAuthRoute({
      table: parts.routeTable,
      authenticate: keyring.authenticate,
      trustedProxies: parts.trustedProxies,
      addressOf,
      guard,
      audit,
      metrics,
      recordUse: keyring.recordUse,
      secureTransport: parts.secureTransport,
      originPolicy: createOriginPolicy(config.allowedOrigins),
    }),
    ...buildOptionalRoutes(parts),
  ];
}

/** Routes that exist as configured: first-run pairing (PAIRING) and the Prometheus scrape (METRICS). */
function buildOptionalRoutes(parts: Parts): Route[] {
  const { options, keyring, guard, audit, addressOf, metrics } = parts;
  const { config, store, logger, now } = options;
  const afterPairing = async () => void (await keyring.refresh());
  return [
    ...(config.pairing ? createPairingRoutes({ store, addressOf, guard, audit, metrics, logger, now, afterPairing }) : []),
    ...(metrics === undefined ? [] : [createMetricsRoute({ metrics, allow: config.metrics.allow, addressOf })]),
  ];
}

function listenerOptions(parts: Parts): ListenerOptions {
  const { options, keyring, guard, audit, addressOf, passwordTransport } = parts;
  const { config, logger, now } = options;
  const authentication = {
    authenticate: keyring.authenticate,
    probe: keyring.probe,
    recordUse: keyring.recordUse,
    authenticatePassword: config.basicAuth ? parts.authenticatePassword : undefined,
    guard,
    audit,
    metrics: parts.metrics,
    addressOf,
    passwordTransport,
    secureTransport: parts.secureTransport,
    originPolicy: createOriginPolicy(config.allowedOrigins),
  };
  return {
    tickets: parts.tickets,
    port: config.port,
    host: config.host,
    ...authentication,
    revalidate: keyring.revalidate,
    revokedAt: keyring.revokedAt,
    syncBeforeTicket: keyring.refresh,
    checkForwarding: config.trustedProxies.length === 0 ? undefined : createForwardingCheck(parts.trustedProxies),
    now,
    reusePort: config.reusePort,
    tls: options.tls,
    hostPolicy: createHostPolicy({ machineHostname: options.machineHostname, patterns: config.allowedHosts }),
    routes: buildRoutes(parts),
    proxied:
      options.routeTable === undefined
        ? undefined
        : createProxiedRoutes({
            ...authentication,
            table: options.routeTable,
            trustedProxies: parts.trustedProxies,
            tls: options.tls !== undefined,
            logger,
          }),
    // Uploads to the user's services may be large; the gate's own routes keep their 64 KiB.
    maxRequestBody: options.routeTable === undefined ? undefined : MAX_BODY_BYTES,
    logger,
    accessLog: config.accessLog,
    wsMaxPayload: config.wsMaxPayload,
    wsIdleTimeout: config.wsIdleTimeout,
    httpIdleTimeout: config.httpIdleTimeout,
    shutdownTimeout: config.shutdownTimeout,
  };
}

/** Browser sessions: opened and ended with the keyring brought up to date, so they hold on the very next request. */
function openSessions(
  options: AppOptions,
  parts: Pick<Parts, "keyring" | "audit" | "addressOf" | "secureTransport" | "routeTable">,
): SessionIssuer {
  return new SessionIssuer({
    store: options.store,
    now: options.now,
    lifetimeMs: options.config.sessions.lifetimeMs,
    secureTransport: parts.secureTransport,
    addressOf: parts.addressOf,
    audit: parts.audit,
    afterChange: () => parts.keyring.refreshAfterWrite(),
    // A sign-in may send the browser back to a host a route of the routes file serves.
    servesHost: (host) => routesServeHost(parts.routeTable.routes, host),
  });
}

/** Everything but the socket: the parts every route shares, assembled from the options. */
async function assembleParts(options: AppOptions): Promise<Parts> {
  const { config, now } = options;
  const keys = await SigningKeys.load(options);
  const tokenSettings: TokenSettings = {
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    ttl: config.jwt.ttl,
    clockTolerance: CLOCK_TOLERANCE,
  };
  const audit = createAuditLog({ write: options.writeAudit, successSample: config.auditSuccessSample, now });
  const trustedProxies = createAddressList(config.trustedProxies);
  const addressOf = createAddressResolver(trustedProxies);
  // performance.now() counts from the process's start: the Clock minus it is when that was.
  const metrics = config.metrics.enabled
    ? createGateMetrics({ version: packageVersion, startTime: (now() - performance.now()) / 1000 })
    : undefined;
  const keyring = await openKeyring(options, audit, { keys: keys.current, settings: tokenSettings }, metrics);
  // One argon2id verification at a time keeps a core free for everything else; 8 may wait. Basic
  // auth and the password grant share the queue.
  const authenticatePassword = createPasswordAuthenticator({
    users: options.store,
    verifier: createPasswordVerifier({ concurrency: 1, queueLimit: 8 }, metrics),
    roleScopes: config.roleScopes,
  });
  const passwordTransport = config.allowInsecurePasswords ? undefined : createTransportCheck(trustedProxies, addressOf);
  const guard = await openGuard(options, audit, metrics);
  const tickets = createTicketBook({ now });
  const routeTable = options.routeTable ?? new RouteTable([]);
  const secureTransport = createSecureTransportCheck(trustedProxies);
  const sessions = openSessions(options, { keyring, audit, addressOf, secureTransport, routeTable });
  const common = { options, keys, keyring, guard, audit, tickets, trustedProxies, addressOf, passwordTransport };
  return { ...common, authenticatePassword, tokenSettings, routeTable, secureTransport, sessions, metrics };
}

/** Polls the store for other processes' changes; on one, open sockets are re-checked and the bans and signing keys reloaded. */
function startPolling(parts: Parts, revalidateSockets: () => number): Promise<void> {
  const { keyring, guard, keys, options } = parts;
  return keyring.start(() => {
    const closed = revalidateSockets();
    options.logger.info("keys reloaded", { closed_sockets: closed });
    guard.reload().catch(() => undefined);
    void keys.reload().catch(() => undefined);
  }, options.pollMs);
}

/** Throws what `Bun.serve` throws (EADDRINUSE, …) so the caller can explain it. */
export async function startApp(options: AppOptions): Promise<App> {
  const parts = await assembleParts(options);
  const listener = startListener(listenerOptions(parts));
  await startPolling(parts, listener.revalidateSockets);
  const stopSampling = parts.metrics === undefined ? undefined : startProcessSampler(parts.metrics);
  return {
    listener,
    keyring: parts.keyring,
    async shutdown() {
      stopSampling?.();
      await parts.keyring.stop();
      await parts.keyring.flushUsage();
      await listener.shutdown();
    },
  };
}

/** The application inside a program's own Bun.serve (tokengate as a library): no socket of its own. */
export interface EmbeddedApp {
  readonly serving: Serving;
  readonly keyring: Keyring;
  /** Stops polling, flushes usage and closes the gate's sockets with 1001 (the program stops its server). */
  close(): Promise<void>;
}

export async function openEmbeddedApp(options: AppOptions): Promise<EmbeddedApp> {
  const parts = await assembleParts(options);
  const serving = createServing(listenerOptions(parts));
  await startPolling(parts, serving.revalidateSockets);
  const stopSampling = parts.metrics === undefined ? undefined : startProcessSampler(parts.metrics);
  let closing: Promise<void> | undefined;
  return {
    serving,
    keyring: parts.keyring,
    close() {
      closing ??= (async () => {
        stopSampling?.();
        await parts.keyring.stop();
        await parts.keyring.flushUsage();
        await serving.closeSockets();
      })();
      return closing;
    },
  };
}
