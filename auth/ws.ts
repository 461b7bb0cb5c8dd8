/**
 * The WebSocket side of the gate: typed per-socket data, the handlers Bun calls after an
 * upgrade, and a registry of open sockets so the server can close them (shutdown now,
 * revocation later). `closeWithError` is the one place a GateError becomes a close code.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { codeSpecs, type GateError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Principal } from "./principal.ts";

export interface WsData {
  readonly principal: Principal;
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

  /** Calls `visit` on each open socket (a snapshot, so closing inside is safe). */
  closeEach(visit: (ws: GateSocket) => boolean): void {
    for (const ws of [...this.#open]) visit(ws);
  }

  /** Closes every socket matching `predicate` (all of them by default); returns how many. */
  closeWhere(code: number, reason: string, predicate: (ws: GateSocket) => boolean = () => true): number {
    let closed = 0;
    for (const ws of [...this.#open]) {
      if (!predicate(ws)) continue;
      ws.close(code, reason);
      closed += 1;
    }
    return closed;
  }
}

/**
 * Closes every socket whose principal is no longer valid (revoked, expired, deleted), with the
 * refusal's close code. Returns how many were closed.
 */
export function closeInvalidated(registry: SocketRegistry, revalidate: (principal: Principal) => GateError | undefined): number {
  let closed = 0;
  registry.closeEach((ws) => {
    const error = revalidate(ws.data.principal);
    if (error === undefined) return false;
    closeWithError(ws, error);
    closed += 1;
    return true;
  });
  return closed;
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
