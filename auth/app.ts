/**
 * The assembled application: signing keys, the keyring, the password queue, the routes and the
 * listener, wired from a validated config and an open store. server.ts calls it with the real
 * environment; tests call it with their own config, so both run exactly the same wiring.
 */
import type { Config } from "./config/config.ts";
import { fingerprintOf, generateSigningKey, importKeySet, looksLikeJwt, usableKeys, type KeySet } from "./secrets/jwt.ts";
import { createKeyring, type Keyring } from "./authn/keyring.ts";
import { startListener, type Listener } from "./http/listener.ts";
import type { Logger } from "./core/log.ts";
import { createTokenRoutes } from "./oauth/token-endpoint.ts";
import { createHostPolicy, createOriginPolicy } from "./core/origins.ts";
import { createAddressList } from "./core/addresses.ts";
import { createGuard, createMemoryAttemptStore, type AttemptStore } from "./guard/guard.ts";
import { createAddressResolver, createForwardingCheck, createTransportCheck } from "./http/clients.ts";
import type { Clock } from "./core/clock.ts";
import { createAuditLog } from "./guard/audit.ts";
import { createPasswordVerifier } from "./secrets/passwords.ts";
import { createPairingRoutes } from "./oauth/pairing.ts";
import { createSeedRoutes, createTicketRoute, SCOPES } from "./http/routes.ts";
import { createTicketBook } from "./secrets/tickets.ts";
import consolePage from "../console/index.html";
import { createConsoleRoutes } from "./http/console-assets.ts";
import type { Store } from "./store/store.ts";
import { digestToken } from "./secrets/tokens.ts";
import { createPasswordAuthenticator } from "./authn/users.ts";

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
}

/** Clock tolerance for JWT exp/nbf/iat, seconds. */
const CLOCK_TOLERANCE = 5;

/** Throws what `Bun.serve` throws (EADDRINUSE, …) so the caller can explain it. */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, store, logger, now } = options;

  // The first start generates the signing key; every later start (and every instance) reuses it.
  const records = await store.ensureSigningKey(await generateSigningKey(config.jwt.alg, now()));
  const initial = await importKeySet(records, config.jwt.alg, now());
  if (initial === undefined) throw new Error(`no usable ${config.jwt.alg} signing key in the database`);
  let keySet: KeySet = initial;
  const currentKeys = () => keySet;

  /** After `cli signing-keys rotate` (or a retirement aging out): re-import, keep the old set on failure. */
  const reloadSigningKeys = async () => {
    const stored = await store.listSigningKeys();
    if (fingerprintOf(usableKeys(stored, config.jwt.alg, now())) === keySet.fingerprint) return;
    const next = await importKeySet(stored, config.jwt.alg, now());
    if (next === undefined) {
      logger.error("signing keys changed but none can sign; keeping the previous set", { alg: config.jwt.alg });
      return;
    }
    keySet = next;
    logger.info("signing keys reloaded", { kid: next.signing.kid, published: next.jwks.keys.length });
  };
  const tokenSettings = { issuer: config.jwt.issuer, audience: config.jwt.audience, ttl: config.jwt.ttl, clockTolerance: CLOCK_TOLERANCE };

  const audit = createAuditLog({ write: options.writeAudit, successSample: config.auditSuccessSample, now });
  const trustedProxies = createAddressList(config.trustedProxies);
  const addressOf = createAddressResolver(trustedProxies);
  const passwordTransport = config.allowInsecurePasswords ? undefined : createTransportCheck(trustedProxies, addressOf);

  const keyring = await createKeyring({
    onStoreHealth: (error) =>
      error === undefined
        ? logger.info("store reachable again; authenticating from it")
        : logger.error("store unreachable; credentials from it are refused with 503 until it answers (the bootstrap token still works)", {
            error: error instanceof Error ? error.message : "unknown",
          }),
    onKeyEvent: (event, key) =>
      audit.record(event, { key_id: key.id, name: key.name, scopes: key.scopes.join(" "), replaced_by: key.replacedBy ?? undefined }),
    store,
    bootstrapDigest: digestToken(options.bootstrapToken),
    bootstrapLooksLikeJwt: looksLikeJwt(options.bootstrapToken),
    jwt: { keys: currentKeys, settings: tokenSettings },
    onFlushError: (error) => logger.warn("could not record key usage; will retry", { error: error instanceof Error ? error.message : "unknown" }),
    now,
  });

  // One argon2id verification at a time keeps a core free for everything else; 8 may wait. Basic
  // auth and the password grant share the queue.
  const authenticatePassword = createPasswordAuthenticator({
    users: store,
    verifier: createPasswordVerifier({ concurrency: 1, queueLimit: 8 }),
    roleScopes: config.roleScopes,
  });

  const exempt = createAddressList(config.banExempt);
  const guard = createGuard({
    attempts: options.attempts ?? createMemoryAttemptStore(),
    bans: store,
    exempt: (address) => exempt.has(address),
    now,
    onEvent: (event) => {
      switch (event.event) {
        case "ban.started":
          return audit.record(event.event, { subject: event.subject, until: new Date(event.until).toISOString(), level: event.level });
        case "ban.ended":
          return audit.record(event.event, { subject: event.subject });
        case "attempts.unavailable":
          return logger.error("attempt counter store unreachable; counting failed attempts in this process until it answers", {
            error: event.error instanceof Error ? event.error.message : "unknown",
          });
        case "attempts.available":
          return logger.info("attempt counter store reachable again");
      }
    },
    onBanError: (error) => logger.error("could not record a ban in the store; it holds in this process only", { error: error instanceof Error ? error.message : "unknown" }),
  });
  await guard.reload();

  const tickets = createTicketBook({ now });

  const listener = startListener({
    tickets,
    port: config.port,
    host: config.host,
    authenticate: keyring.authenticate,
    recordUse: keyring.recordUse,
    authenticatePassword: config.basicAuth ? authenticatePassword : undefined,
    revalidate: keyring.revalidate,
    guard,
    audit,
    addressOf,
    passwordTransport,
    checkForwarding: config.trustedProxies.length === 0 ? undefined : createForwardingCheck(trustedProxies),
    now,
    reusePort: config.reusePort,
    tls: options.tls,
    hostPolicy: createHostPolicy({ machineHostname: options.machineHostname, patterns: config.allowedHosts }),
    originPolicy: createOriginPolicy(config.allowedOrigins),
    routes: [
      // The console page and its assets go through the gate like any route: Host check, headers.
      ...createConsoleRoutes(consolePage),
      ...createSeedRoutes(),
      createTicketRoute(tickets, "/ws", SCOPES.wsConnect),
      ...createTokenRoutes({
        keys: currentKeys,
        settings: tokenSettings,
        authenticatePassword: config.passwordGrant ? authenticatePassword : undefined,
        authenticateKey: keyring.authenticate,
        store,
        roleScopes: config.roleScopes,
        refreshTtl: config.jwt.refreshTtl,
        afterRevocation: () => void keyring.refresh(),
        guard,
        audit,
        addressOf,
        passwordTransport,
        logger,
        now,
      }),
      ...(config.pairing
        ? createPairingRoutes({ store, addressOf, guard, audit, logger, now, afterPairing: async () => void (await keyring.refresh()) })
        : []),
    ],
    logger,
    accessLog: config.accessLog,
    wsMaxPayload: config.wsMaxPayload,
    wsIdleTimeout: config.wsIdleTimeout,
    httpIdleTimeout: config.httpIdleTimeout,
    shutdownTimeout: config.shutdownTimeout,
  });

  await keyring.start(() => {
    const closed = listener.revalidateSockets();
    logger.info("keys reloaded", { closed_sockets: closed });
    guard.reload().catch(() => undefined);
    void reloadSigningKeys().catch(() => undefined);
  }, options.pollMs);

  return {
    listener,
    keyring,
    async shutdown() {
      await keyring.stop();
      await keyring.flushUsage();
      await listener.shutdown();
    },
  };
}
