/**
 * The WebSocket side of the gate: typed per-socket data, the handlers Bun calls after an
 * upgrade, a registry of open sockets so the server can close them (shutdown, revocation,
 * expiry), and in-band re-authentication so a JWT socket can outlive its first token.
 * `closeWithError` is the one place a GateError becomes a close code.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { isTokenShaped } from "./credentials.ts";
import { codeSpecs, GateError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { requireScope, type Authenticator, type Principal } from "./principal.ts";

/** A socket whose credential expires is told this long before it does. */
export const EXPIRY_WARNING_MS = 60_000;

export interface WsData {
  /** Replaced when the client re-authenticates in-band with a fresh token. */
  principal: Principal;
  /** Whether `auth_expiring` was sent for the current principal. */
  warned: boolean;
  /** Scope the socket's route needs; a fresh token must still grant it. */
  readonly scope: string;
  readonly connId: string;
  readonly remote: string;
  readonly path: string;
  readonly greeting: string;
  readonly openedAt: number;
}

export type GateSocket = ServerWebSocket<WsData>;

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
  revalidate: (principal: Principal) => GateError | undefined,
  now: number = Date.now(),
): number {
  let closed = 0;
  for (const ws of registry) {
    const { principal } = ws.data;
    const error = revalidate(principal);
    if (error !== undefined) {
      closeWithError(ws, error);
      closed += 1;
    } else if (principal.expiresAt !== null && !ws.data.warned && principal.expiresAt - now <= EXPIRY_WARNING_MS) {
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

const expiresIn = (principal: Principal) =>
  principal.expiresAt === null ? null : Math.max(0, Math.floor((principal.expiresAt - Date.now()) / 1000));

function authError(error: GateError): string {
  return JSON.stringify({ type: "auth_error", code: error.code, description: error.description });
}

const BAD_AUTH_MESSAGE = new GateError("invalid_request", "An auth message needs a token: {\"type\":\"auth\",\"token\":\"…\"}");
const OTHER_PRINCIPAL = new GateError("invalid_request", "The new token belongs to another principal; open a new socket for it");

/** Verifies a fresh token sent in-band and, if it is for the same principal, adopts it. */
async function reauthenticate(ws: GateSocket, message: ControlMessage, authenticate: Authenticator, logger: Logger): Promise<void> {
  if (message.token === undefined) {
    ws.send(authError(BAD_AUTH_MESSAGE));
    return;
  }
  const verdict = await authenticate(message.token);
  const current = ws.data.principal;
  const refusal =
    verdict instanceof GateError
      ? verdict
      : verdict.kind !== current.kind || verdict.id !== current.id
        ? OTHER_PRINCIPAL
        : requireScope(verdict, ws.data.scope);
  if (refusal !== undefined) {
    ws.send(authError(refusal));
    return;
  }
  const fresh = verdict as Principal;
  ws.data.principal = fresh;
  ws.data.warned = false;
  logger.info("ws.reauth", { conn: ws.data.connId, principal: fresh.id });
  ws.send(JSON.stringify({ type: "auth_ok", expires_in: expiresIn(fresh) }));
}

/** Close reasons are limited to 123 bytes by RFC 6455 §5.5; ours are short fixed strings. */
export function closeWithError(ws: GateSocket, error: GateError): void {
  ws.close(error.close ?? codeSpecs[error.code].close, error.description.slice(0, 120));
}

export interface SocketHandlerOptions {
  readonly logger: Logger;
  readonly registry: SocketRegistry;
  readonly maxPayload: number;
  readonly idleTimeout: number;
  /** Verifies tokens sent in-band (`{"type":"auth"}`); without it such messages are echoed. */
  readonly authenticate?: Authenticator | undefined;
}

export function createSocketHandler(options: SocketHandlerOptions): WebSocketHandler<WsData> {
  const { logger, registry } = options;
  return {
    data: {} as WsData,
    maxPayloadLength: options.maxPayload,
    idleTimeout: options.idleTimeout,
    // A client that sends but never reads would otherwise make the server buffer echoes forever.
    backpressureLimit: Math.max(1024 * 1024, options.maxPayload * 4),
    closeOnBackpressureLimit: true,
    open(ws) {
      registry.add(ws);
      ws.send(ws.data.greeting);
    },
    message(ws, message) {
      if (typeof message === "string" && options.authenticate !== undefined) {
        const control = parseControlMessage(message);
        if (control !== undefined) {
          void reauthenticate(ws, control, options.authenticate, logger);
          return;
        }
      }
      ws.send(message);
    },
    close(ws, code) {
      registry.delete(ws);
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
