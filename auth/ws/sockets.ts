/**
 * The WebSocket side of the gate: typed per-socket data, the handlers Bun calls after an
 * upgrade, a registry of open sockets so the server can close them (shutdown, revocation,
 * expiry), and in-band re-authentication so a JWT socket can outlive its first token.
 * `closeWithError` is the one place a GateError becomes a close code.
 */
import type { WebSocketHandler } from "bun";
import type { AppSocketHandlers, GateSocket, WsData } from "./data.ts";

export type { GateServer, GateSocket, WsData } from "./data.ts";
import { isTokenShaped } from "../secrets/tokens.ts";
import { GateError, tooManyAttempts } from "../core/errors.ts";
import type { Clock } from "../core/clock.ts";
import { parseApiKey } from "../secrets/keys.ts";
import { settleRefusal, type RefusalSinks } from "../guard/refusals.ts";
import type { Logger } from "../core/log.ts";
import type { SocketSeries } from "../core/gate-metrics.ts";
import { requireScope, type Authenticator, type Principal } from "../core/principal.ts";

/** A socket whose credential expires is told this long before it does. */
export const EXPIRY_WARNING_MS = 60_000;

export const CLOSE_GOING_AWAY = 1001;

export class SocketRegistry {
  readonly #open = new Set<GateSocket>();

  add(ws: GateSocket): void {
    this.#open.add(ws);
  }

  delete(ws: GateSocket): void {
    this.#open.delete(ws);
  }

  get size(): number {
    return this.#open.size;
  }

  /** Open sockets. Iterating a Set stays valid while closed sockets leave it, so no copy is made. */
  [Symbol.iterator](): IterableIterator<GateSocket> {
    return this.#open.values();
  }

  /** Closes every open socket; returns how many. */
  closeAll(code: number, reason: string): number {
    const count = this.#open.size;
    for (const ws of this.#open) ws.close(code, reason);
    return count;
  }
}

/**
 * Closes every socket whose principal is no longer valid (revoked, expired, deleted), with the
 * refusal's close code, and warns those whose credential expires soon. Returns how many closed.
 */
export function closeInvalidated(
  registry: SocketRegistry,
  revalidate: (principal: Principal, scope?: string) => GateError | undefined,
  now: number,
  /** Why the socket's client may no longer be served (a ban started since it connected), or undefined. */
  refuseClient: (client: string) => GateError | undefined = () => undefined,
  /** Hears each socket closed because its principal was revoked (the revocation-to-close latency is measured there). */
  onRevoked?: (principal: Principal, now: number) => void,
): number {
  let closed = 0;
  for (const ws of registry) {
    const { principal } = ws.data;
    const error = refuseClient(ws.data.client) ?? revalidate(principal, ws.data.scope);
    if (error !== undefined) {
      closeWithError(ws, error);
      if (error.kind === "revoked_token") onRevoked?.(principal, now);
      closed += 1;
    } else if (
      // A proxied socket speaks the service's protocol: a warning there would be a frame the service
      // never sent (and a gate client would answer it with a fresh token, which would go to the service).
      ws.data.link === undefined &&
      principal.expiresAt !== null &&
      !ws.data.warned &&
      principal.expiresAt - now <= EXPIRY_WARNING_MS
    ) {
      ws.data.warned = true;
      ws.send(JSON.stringify({ type: "auth_expiring", expires_in: Math.max(0, Math.floor((principal.expiresAt - now) / 1000)) }));
    }
  }
  return closed;
}

export type ControlMessage = { readonly type: "auth"; readonly token: string | undefined };

/**
 * `{"type":"auth","token":"…"}` → the control message; anything else (including JSON of other
 * shapes) → `undefined`, i.e. an ordinary message to echo. Never throws.
 */
export function parseControlMessage(text: string): ControlMessage | undefined {
  if (!text.startsWith("{") || !text.includes('"auth"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || (value as { type?: unknown }).type !== "auth") return undefined;
  const token = (value as { token?: unknown }).token;
  return { type: "auth", token: typeof token === "string" && isTokenShaped(token) ? token : undefined };
}

const expiresIn = (principal: Principal, now: number) =>
  principal.expiresAt === null ? null : Math.max(0, Math.floor((principal.expiresAt - now) / 1000));

function authError(error: GateError): string {
  return JSON.stringify({ type: "auth_error", code: error.code, description: error.description });
}

/** In-band auth messages one socket may send per window; a client refreshing its JWT needs one every few minutes. */
export const REAUTH_LIMIT = { messages: 5, windowMs: 60_000 } as const;

const BAD_AUTH_MESSAGE = new GateError("invalid_request", 'An auth message needs a token: {"type":"auth","token":"…"}');
/**
 * Every refusal of an in-band token that is not a fresh credential of this socket's own principal
 * gets this one answer: telling "valid, but someone else's" from "not valid" would make the socket
 * an oracle for guessed tokens.
 */
export const NOT_FOR_THIS_SOCKET = new GateError("invalid_token", "The token is not valid for this connection");
/** A valid token of another principal, sent in-band: counted as a guess (nobody has a reason to). */
const FOREIGN_TOKEN = new GateError("unknown_token", "The token belongs to another principal");
const INBAND_FAILURE = new GateError("internal_error", "The token could not be checked; open a new connection");
const TOO_MANY_AUTH_MESSAGES = new GateError("too_many_requests", "Too many auth messages on this connection; open a new one");

/** What in-band re-authentication needs besides the authenticator: the same guard and audit as HTTP. */
export interface ReauthOptions {
  readonly authenticate: Authenticator;
  readonly refusals: RefusalSinks;
  readonly logger: Logger;
  readonly now: Clock;
}

/** Counts the socket's auth messages in a fixed window; false once it has sent too many. */
function allowAuthMessage(data: WsData, at: number): boolean {
  if (data.reauth === undefined || at - data.reauth.since >= REAUTH_LIMIT.windowMs) data.reauth = { since: at, count: 0 };
  data.reauth.count += 1;
  return data.reauth.count <= REAUTH_LIMIT.messages;
}

/**
 * The verdict on an in-band token: the fresh principal, or what was refused (its policy counts and
 * audits it) and what the client is told.
 */
function judgeInBand(verdict: Principal | GateError, data: WsData): Principal | { error: GateError; answer: GateError } {
  const current = data.principal;
  if (verdict instanceof GateError) {
    // The store being away says nothing about the token; anything else is answered alike.
    return { error: verdict, answer: verdict.kind === "temporarily_unavailable" ? verdict : NOT_FOR_THIS_SOCKET };
  }
  if (verdict.kind !== current.kind || verdict.id !== current.id) return { error: FOREIGN_TOKEN, answer: NOT_FOR_THIS_SOCKET };
  const scope = requireScope(verdict, data.scope);
  return scope === undefined ? verdict : { error: scope, answer: scope };
}

/**
 * Verifies a fresh token sent in-band and, if it is for the same principal, adopts it. Failures go
 * through the same guard and audit as HTTP refusals; a banned client's socket is closed (4429).
 */
export async function reauthenticate(ws: GateSocket, message: ControlMessage, options: ReauthOptions): Promise<void> {
  const { data } = ws;
  if (!allowAuthMessage(data, options.now())) return closeWithError(ws, TOO_MANY_AUTH_MESSAGES);
  const banned = options.refusals.guard?.retryAfter(data.client) ?? 0;
  if (banned > 0) return closeWithError(ws, tooManyAttempts(banned));
  if (message.token === undefined) return void ws.send(authError(BAD_AUTH_MESSAGE));
  const judged = judgeInBand(await options.authenticate(message.token), data);
  if (!("error" in judged)) return adoptPrincipal(ws, judged, options);
  const outcome = settleRefusal(options.refusals, {
    error: judged.error,
    answer: judged.answer,
    address: data.client,
    path: data.path,
    keyId: parseApiKey(message.token)?.id,
  });
  if (outcome.code === "too_many_requests") return closeWithError(ws, outcome);
  ws.send(authError(outcome));
}

function adoptPrincipal(ws: GateSocket, fresh: Principal, options: ReauthOptions): void {
  const previous = ws.data.principal;
  ws.data.principal = fresh;
  // Warn again only for a credential that really lives longer: re-sending the same one must not loop.
  if (fresh.expiresAt === null || (previous.expiresAt !== null && fresh.expiresAt > previous.expiresAt)) ws.data.warned = false;
  options.logger.info("ws.reauth", { conn: ws.data.connId, principal: fresh.id });
  ws.send(JSON.stringify({ type: "auth_ok", expires_in: expiresIn(fresh, options.now()) }));
}

/** Close reasons are limited to 123 bytes by RFC 6455 §5.5; ours are short fixed strings. */
export function closeWithError(ws: GateSocket, error: GateError): void {
  ws.close(error.policy.close, error.description.slice(0, 120));
}

/** A program's socket code failed: the class of the error in the log (never the message's data), and the socket closes 1011. */
const APP_FAILURE = 1011;

/** Runs a program's handler; what it throws or rejects closes that socket, never the process. */
function runApp(ws: GateSocket, logger: Logger, call: (app: AppSocketHandlers) => void | Promise<void>): void {
  const failed = (error: unknown) => {
    logger.error("socket handler failed", {
      conn: ws.data.connId,
      path: ws.data.path,
      error: error instanceof Error ? error.name : "unknown",
    });
    if (ws.readyState === 1) ws.close(APP_FAILURE, "internal error");
  };
  try {
    const done = call(ws.data.app!);
    if (done instanceof Promise) done.catch(failed);
  } catch (error) {
    failed(error);
  }
}

export interface SocketHandlerOptions {
  readonly logger: Logger;
  readonly registry: SocketRegistry;
  readonly maxPayload: number;
  readonly idleTimeout: number;
  /** Verifies tokens sent in-band (`{"type":"auth"}`); without it such messages are echoed. */
  readonly reauth?: ReauthOptions | undefined;
  /** Sockets opened, and closed by close code. */
  readonly metrics?: SocketSeries | undefined;
}

export function createSocketHandler(options: SocketHandlerOptions): WebSocketHandler<WsData> {
  const { logger, registry, metrics } = options;
  return {
    data: {} as WsData,
    maxPayloadLength: options.maxPayload,
    idleTimeout: options.idleTimeout,
    // A client that sends but never reads would otherwise make the server buffer echoes forever.
    backpressureLimit: Math.max(1024 * 1024, options.maxPayload * 4),
    closeOnBackpressureLimit: true,
    open(ws) {
      registry.add(ws);
      metrics?.opened.inc();
      if (ws.data.link !== undefined) ws.data.link.attach(ws);
      else if (ws.data.app !== undefined) runApp(ws, logger, (app) => app.open?.(ws));
      else ws.send(ws.data.greeting);
    },
    message(ws, message) {
      // A proxied socket speaks the service's protocol: nothing in it is the gate's to read.
      if (ws.data.link !== undefined) return ws.data.link.forward(ws, message);
      if (typeof message === "string" && options.reauth !== undefined) {
        const control = parseControlMessage(message);
        if (control !== undefined) {
          // A verification that throws must close this socket, never reach the process as an unhandled rejection.
          reauthenticate(ws, control, options.reauth).catch((error: unknown) => {
            options.logger.error("in-band authentication failed", { error: error instanceof Error ? error.name : "unknown" });
            closeWithError(ws, INBAND_FAILURE);
          });
          return;
        }
      }
      if (ws.data.app === undefined) ws.send(message);
      else runApp(ws, logger, (app) => app.message?.(ws, message));
    },
    drain(ws) {
      ws.data.link?.drained();
      if (ws.data.app !== undefined) runApp(ws, logger, (app) => app.drain?.(ws));
    },
    close(ws, code, reason) {
      registry.delete(ws);
      metrics?.closed(code).inc();
      ws.data.link?.closed(code, reason);
      if (ws.data.app !== undefined) runApp(ws, logger, (app) => app.close?.(ws, code, reason));
      logger.info("ws.close", {
        conn: ws.data.connId,
        path: ws.data.path,
        code,
        seconds: Math.round((performance.now() - ws.data.openedAt) / 10) / 100,
        principal: ws.data.principal.id,
        remote: ws.data.remote,
      });
    },
  };
}
