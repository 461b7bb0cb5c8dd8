/**
 * tokengate inside a program's own Bun.serve: `openGate()` assembles the same application the
 * server runs (keys, users, JWTs, sessions, bans, audit, live revocation) without binding a
 * socket, and hands the program the pieces: `protect` for its own routes, `websocket` for its own
 * socket handlers, `fetch` for the gate's routes (/auth/*, /ws, the console), `serveOptions` for
 * the listening settings of the configuration.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { openEmbeddedApp, type EmbeddedApp } from "../app.ts";
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import { answerUnhandled } from "../http/listener.ts";
import { toResponse } from "../http/responses.ts";
import type { ProtectedRoute } from "../http/routes.ts";
import type { AppSocketHandlers, GateServer } from "../ws/data.ts";
import { openParts, type Opened } from "./open.ts";

export type { Principal } from "../core/principal.ts";
export { GateConfigError } from "./open.ts";

/** How {@link openGate} finds its configuration and where it writes. */
export interface GateOptions {
  /** Where the SQLite store and the generated bootstrap token live (DATA_DIR); overrides `env.DATA_DIR`. */
  readonly dataDir?: string | undefined;
  /** Environment variables exactly as the server reads them (README, Configuration); default: none. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Where log and audit lines go, one call per line; default: standard output. */
  readonly log?: ((line: string) => void) | undefined;
  /** The clock every part of the gate reads (milliseconds); default `Date.now`. Tests move it. */
  readonly now?: (() => number) | undefined;
}

/** A program's handler behind the gate: it runs only for a principal holding the route's scope. */
export type ProtectedHandler<R extends Request> = (request: R, principal: Principal) => Response | Promise<Response>;

/** What a socket of the program carries: the verified principal (kept current by in-band re-authentication) and the program's own fields. */
export type GateSocketData<T extends object = object> = { readonly principal: Principal } & T;

/** A WebSocket of the program's own route. */
export type GateWebSocket<T extends object = object> = ServerWebSocket<GateSocketData<T>>;

/** The program's WebSocket route: where, which scope, its own fields and handlers. */
export interface GateSocketOptions<T extends object = object> {
  /** The path that upgrades to these handlers; default `/ws` (the gate's echo then gives way). */
  readonly path?: string | undefined;
  /** The scope a credential needs to open it; default `ws:connect`. */
  readonly scope?: string | undefined;
  /** The program's own fields of `ws.data`, made at the upgrade; a name the gate uses (principal…) stays the gate's. */
  data?(request: Request, principal: Principal): T;
  open?(ws: GateWebSocket<T>): void | Promise<void>;
  message?(ws: GateWebSocket<T>, message: string | Buffer): void | Promise<void>;
  drain?(ws: GateWebSocket<T>): void;
  close?(ws: GateWebSocket<T>, code: number, reason: string): void | Promise<void>;
}

/** The listening settings of the configuration (HOST, PORT, TLS_*, limits), to spread into `Bun.serve`. */
export interface GateServeOptions {
  readonly hostname: string;
  readonly port: number;
  /** Present only with TLS_CERT_FILE and TLS_KEY_FILE. */
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly maxRequestBodySize: number;
  readonly idleTimeout: number;
  readonly development: false;
  readonly error: (error: Error) => Response;
}

const PROGRAM_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
const HANDLER_FAILED = new GateError("internal_error", "Internal Server Error");

/** A principal as handlers receive it: frozen, so no handler can widen another's view of it. */
function frozen(principal: Principal): Principal {
  if (!Object.isFrozen(principal)) {
    Object.freeze(principal.scopes);
    Object.freeze(principal.roles);
    Object.freeze(principal);
  }
  return principal;
}

/** The gate as a program holds it. Open one with {@link openGate}; close it with `close()` or `await using`. */
export class Gate implements AsyncDisposable {
  readonly #app: EmbeddedApp;
  readonly #opened: Opened;
  readonly #scopes: Set<string>;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link openGate}. */
  constructor(app: EmbeddedApp, opened: Opened, scopes: Set<string>) {
    this.#app = app;
    this.#opened = opened;
    this.#scopes = scopes;
    this.fetch = this.fetch.bind(this);
  }

  /**
   * The gate's own routes: `/auth/*` (tokens, sign-in, pairing, verify), `/ws`, `/admin/api/*`,
   * the console. Pass it as `Bun.serve`'s `fetch`; a path nobody serves answers 404 JSON.
   */
  fetch<D>(request: Request, server: Server<D>): Response | Promise<Response | undefined> | undefined {
    return this.#app.serving.gate.fetch(request, server as unknown as GateServer);
  }

  /**
   * Wraps a handler so the whole gate runs first: Host and Origin rules, every credential form
   * (key, bearer JWT, Basic, session cookie), bans, audit, refusal bodies and challenges. The
   * handler runs only for a principal holding `scope`; what it throws is logged (its class, no
   * request data) and answered 500 JSON. Usable as a `routes` entry (its params stay typed) or as
   * a plain `(request) => Response`.
   */
  protect<R extends Request>(
    scope: string,
    handler: ProtectedHandler<R>,
  ): <D>(request: R, server: Server<D>) => Response | Promise<Response> {
    this.#learnScope(scope);
    const logger = this.#opened.logger;
    const failed = (error: unknown) => {
      logger.error("route handler failed", { error: error instanceof Error ? error.name : "unknown" });
      return toResponse(HANDLER_FAILED);
    };
    const route: ProtectedRoute = {
      kind: "http",
      path: "(program route)",
      methods: PROGRAM_METHODS,
      scope,
      // A handler that answers at once stays synchronous: no Promise, no extra turn of the loop per request.
      handle: (request, principal) => {
        try {
          const answer = handler(request as R, frozen(principal));
          return answer instanceof Promise ? answer.catch(failed) : answer;
        } catch (error) {
          return failed(error);
        }
      },
    };
    const gate = this.#app.serving.gate;
    return (request, server) => gate.serveRoute(request, server as unknown as GateServer, route) as Response | Promise<Response>;
  }

  /**
   * The WebSocket handlers for `Bun.serve`. With options, the program's own handlers serve its
   * socket route (default `/ws`): authentication happened before the upgrade, `ws.data.principal`
   * is who connected, and revocation, expiry warnings, in-band re-authentication and close codes
   * (4401, 4403, 4429) behave exactly as on the gate's `/ws`. Without options, `/ws` is the echo.
   */
  websocket<T extends object = object>(options?: GateSocketOptions<T>): WebSocketHandler<GateSocketData<T>> {
    if (options !== undefined) this.#mountSocket(options);
    return this.#app.serving.websocket as unknown as WebSocketHandler<GateSocketData<T>>;
  }

  /** HOST, PORT, TLS and the limits of the configuration, for `Bun.serve({ ...gate.serveOptions(), … })`. */
  serveOptions(): GateServeOptions {
    const { config, appOptions, logger } = this.#opened;
    return {
      hostname: config.host,
      port: config.port,
      ...(appOptions.tls === undefined ? {} : { tls: appOptions.tls }),
      maxRequestBodySize: this.#app.serving.maxRequestBodySize,
      idleTimeout: config.httpIdleTimeout,
      development: false,
      error: answerUnhandled(logger),
    };
  }

  /** Stops polling the store, records pending key usage, closes the gate's sockets with 1001 and the store. Once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#app.close();
      await this.#opened.store.close().catch(() => undefined);
      this.#opened.attempts?.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #mountSocket<T extends object>(options: GateSocketOptions<T>): void {
    const scope = options.scope ?? "ws:connect";
    this.#learnScope(scope);
    // The program's handlers see the socket through its own type; the data is the gate's WsData with its fields added.
    // Called as methods of `options` (app.open?.(ws)), so `this` is what the program wrote.
    const handlers = options as unknown as AppSocketHandlers;
    const appData =
      options.data === undefined ? undefined : (request: Request, principal: Principal) => options.data!(request, frozen(principal));
    this.#app.serving.gate.mount({ kind: "websocket", path: options.path ?? "/ws", scope, greeting: "", app: handlers, appData });
  }

  /** A scope the program's routes require joins the known ones: here at once, for the CLI through the store. */
  #learnScope(scope: string): void {
    if (scope === "" || this.#scopes.has(scope)) return;
    this.#scopes.add(scope);
    const { store, logger, appOptions } = this.#opened;
    store.recordAppScopes([scope], appOptions.now()).catch((error: unknown) =>
      logger.warn("could not record a scope of the program's routes; the CLI needs --allow-new-scope for it", {
        scope,
        error: error instanceof Error ? error.name : "unknown",
      }),
    );
  }
}

const writeStdout = (line: string) => void process.stdout.write(line);

/**
 * Opens the gate: the configuration (the server's zod schema, from `options.env` and
 * `options.dataDir`), the store, the bootstrap token, the keyring and its polling. Throws a
 * {@link GateConfigError} naming each variable at fault and its fix.
 */
export async function openGate(options: GateOptions = {}): Promise<Gate> {
  const env = { ...options.env, ...(options.dataDir === undefined ? {} : { DATA_DIR: options.dataDir }) };
  const opened = await openParts({ env, log: options.log ?? writeStdout, now: options.now ?? Date.now });
  const scopes = new Set<string>();
  try {
    const app = await openEmbeddedApp({ ...opened.appOptions, programScopes: () => [...scopes] });
    return new Gate(app, opened, scopes);
  } catch (error) {
    await opened.store.close().catch(() => undefined);
    opened.attempts?.close();
    throw error;
  }
}

/** Opens the gate configured by environment variables alone (pass `Bun.env`), as `bun run server.ts` is. */
openGate.fromEnv = (env: Readonly<Record<string, string | undefined>>, options: Omit<GateOptions, "env"> = {}): Promise<Gate> =>
  openGate({ ...options, env });
