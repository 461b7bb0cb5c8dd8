/**
 * Binding the gate to a socket: one Bun.serve that handles `fetch` and `websocket`, with the
 * limits set explicitly, and a graceful shutdown that closes WebSockets with 1001.
 */
import { GateError, tooManyAttempts } from "../core/errors.ts";
import type { WebSocketHandler } from "bun";
import { createGate, type Gate, type GateOptions } from "./gate.ts";
import type { Logger } from "../core/log.ts";
import type { Clock } from "../core/clock.ts";
import type { Principal } from "../core/principal.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { FORM_LIMIT, toResponse } from "./responses.ts";
import { CLOSE_GOING_AWAY, closeInvalidated, createSocketHandler, SocketRegistry, type GateServer, type WsData } from "../ws/sockets.ts";

/** Everything the gate takes, plus what binding a socket needs. */
export interface ListenerOptions extends GateOptions {
  readonly port: number;
  readonly host: string;
  /** The one clock (socket expiry, in-band re-authentication). */
  readonly now: Clock;
  /** Share the port with other processes (SO_REUSEPORT); off, a second server on the same port fails to start. */
  readonly reusePort?: boolean | undefined;
  /** PEM certificate and key: serve HTTPS and WSS. */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  readonly wsMaxPayload: number;
  readonly wsIdleTimeout: number;
  readonly httpIdleTimeout: number;
  readonly shutdownTimeout: number;
  /** Raised for proxied services (uploads); the gate's own routes then enforce MAX_REQUEST_BODY themselves. */
  readonly maxRequestBody?: number | undefined;
  /** When a principal's key was revoked or its user disabled (the stored time), for the revocation-to-close latency. */
  readonly revokedAt?: ((principal: Principal) => number | undefined) | undefined;
}

export interface Listener {
  readonly server: GateServer;
  readonly sockets: SocketRegistry;
  readonly url: URL;
  /** Closes sockets whose principal was revoked or expired; runs on a timer and on demand. */
  revalidateSockets(): number;
  /** Stops accepting, closes open sockets with 1001, waits for them (bounded), then stops. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The gate's own routes take small forms; anything larger is refused by Bun with 413 before `fetch`. */
const MAX_REQUEST_BODY = FORM_LIMIT;
const INTERNAL = new GateError("internal_error", "Internal Server Error");
/** How often open sockets are re-checked for expiry (revocations also trigger a check at once). */
const REVALIDATE_EVERY_MS = 250;

/** What a server needs to serve the gate, with or without binding a socket itself. */
export interface Serving {
  readonly gate: Gate;
  readonly websocket: WebSocketHandler<WsData>;
  readonly sockets: SocketRegistry;
  /** The body limit Bun.serve must enforce before `fetch` (the gate's own routes check theirs). */
  readonly maxRequestBodySize: number;
  /** Closes sockets whose principal was revoked or expired; runs on a timer and on demand. */
  revalidateSockets(): number;
  /** Stops the timer, closes open sockets with 1001 and waits for them (bounded). */
  closeSockets(): Promise<number>;
}

/** Observes, for a socket closed on revocation, how long after the stored revocation it closed. */
function createRevocationTimer(metrics: GateMetrics, options: Pick<ListenerOptions, "revokedAt">) {
  return (principal: Principal, now: number): void => {
    const at = options.revokedAt?.(principal);
    // Stored by whichever process revoked, with its clock: a clock slightly ahead must not read as negative.
    if (at !== undefined) metrics.sockets.revocationClose.observe(Math.max(0, now - at) / 1000);
  };
}

/**
 * The gate's `fetch`, its socket handlers and the registry of open sockets, re-checked on a
 * timer: everything but the socket. startListener binds it to one Bun.serve; a program of its
 * own (the library) passes the pieces to its Bun.serve.
 */
export function createServing(options: ListenerOptions): Serving {
  const sockets = new SocketRegistry();
  const bodyLimit = Math.max(MAX_REQUEST_BODY, options.maxRequestBody ?? 0);
  const gate = createGate(bodyLimit > MAX_REQUEST_BODY ? { ...options, ownBodyLimit: MAX_REQUEST_BODY } : options);
  const { metrics } = options;
  const websocket = createSocketHandler({
    logger: options.logger,
    registry: sockets,
    maxPayload: options.wsMaxPayload,
    idleTimeout: options.wsIdleTimeout,
    reauth:
      options.revalidate === undefined
        ? undefined
        : {
            authenticate: options.authenticate,
            refusals: { guard: options.guard, audit: options.audit, metrics },
            logger: options.logger,
            now: options.now,
          },
    metrics: metrics?.sockets,
  });
  metrics?.sample(() => metrics.sockets.open.set(sockets.size));
  const onRevoked = metrics === undefined ? undefined : createRevocationTimer(metrics, options);
  const { revalidate } = options;
  // A client banned since it connected (guessing in-band on one socket, say) loses its other sockets too.
  const refuseClient = (client: string) => {
    const wait = options.guard?.active === true ? options.guard.retryAfter(client) : 0;
    return wait > 0 ? tooManyAttempts(wait) : undefined;
  };
  const revalidateSockets = () =>
    revalidate === undefined ? 0 : closeInvalidated(sockets, revalidate, options.now(), refuseClient, onRevoked);
  const revalidateTimer = revalidate === undefined ? undefined : setInterval(revalidateSockets, REVALIDATE_EVERY_MS);
  revalidateTimer?.unref();
  const closeSockets = async () => {
    clearInterval(revalidateTimer);
    const closing = sockets.closeAll(CLOSE_GOING_AWAY, "server shutting down");
    const deadline = performance.now() + options.shutdownTimeout * 1000;
    while (sockets.size > 0 && performance.now() < deadline) await Bun.sleep(10);
    if (sockets.size > 0) options.logger.warn("shutdown timed out; dropping sockets", { open: sockets.size });
    return closing;
  };
  return { gate, websocket, sockets, maxRequestBodySize: bodyLimit, revalidateSockets, closeSockets };
}

/** Answers an error no handler caught: its class and message in the log (request data, and so any credential, is not in it). */
export function answerUnhandled(logger: Logger) {
  return (error: Error): Response => {
    logger.error("unhandled error", { error: error.name, message: error.message });
    return toResponse(INTERNAL);
  };
}

export function startListener(options: ListenerOptions): Listener {
  const serving = createServing(options);
  const server = Bun.serve({
    port: options.port,
    hostname: options.host,
    idleTimeout: options.httpIdleTimeout,
    maxRequestBodySize: serving.maxRequestBodySize,
    development: false,
    // Bun turns SO_REUSEPORT on in production mode unless told otherwise: a second tokengate on the
    // same port would start and answer every other request with its own data.
    reusePort: options.reusePort === true,
    ...(options.tls === undefined ? {} : { tls: { cert: options.tls.cert, key: options.tls.key } }),
    fetch: serving.gate.fetch,
    websocket: serving.websocket,
    error: answerUnhandled(options.logger),
  });

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      void server.stop(false);
      const closing = await serving.closeSockets();
      await server.stop(true);
      options.logger.info("stopped", { closed_sockets: closing });
    })();
    return stopping;
  };

  return {
    server,
    sockets: serving.sockets,
    url: server.url,
    revalidateSockets: serving.revalidateSockets,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
