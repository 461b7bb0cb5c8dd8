/**
 * What every socket carries, and the server type that routes and handlers are given: types (and
 * the connection id counter) only, so the HTTP routes, the OAuth endpoints and the proxy name the
 * server and build socket data without importing the socket handlers.
 */
import type { Server, ServerWebSocket } from "bun";
import type { Principal } from "../core/principal.ts";

/**
 * The far side of a proxied socket (the proxy layer's upstream connection). The socket handlers
 * hand it the client's traffic and lifecycle instead of echoing; revocation and shutdown close
 * the client socket as for any other, and the link closes the upstream in turn.
 */
export interface SocketLink {
  /** The client socket is open: deliver what the upstream already sent. */
  attach(ws: GateSocket): void;
  /** A message from the client, for the upstream. */
  forward(ws: GateSocket, message: string | Buffer): void;
  /** The client's socket can take more (it had backpressure). */
  drained(): void;
  /** The client socket closed (by the client, or by the gate: revocation, ban, shutdown). */
  closed(code: number, reason: string): void;
}

/**
 * A program's own handlers for its sockets (tokengate as a library): they replace the echo. The
 * gate keeps what it does for every socket (the registry, revocation, expiry warnings, in-band
 * re-authentication, close codes); an in-band auth message never reaches them.
 */
export interface AppSocketHandlers {
  open?(ws: GateSocket): void | Promise<void>;
  message?(ws: GateSocket, message: string | Buffer): void | Promise<void>;
  drain?(ws: GateSocket): void;
  close?(ws: GateSocket, code: number, reason: string): void | Promise<void>;
}

export interface WsData {
  /** Replaced when the client re-authenticates in-band with a fresh token. */
  principal: Principal;
  /** Whether `auth_expiring` was sent for the current principal. */
  warned: boolean;
  /** Scope the socket's route needs; a fresh token must still grant it. */
  readonly scope: string;
  readonly connId: string;
  /** The peer's address, as the access log shows it. */
  readonly remote: string;
  /** The client's address with trusted proxies resolved: what the guard counts and bans. */
  readonly client: string;
  /** In-band auth messages counted in the current window (absent until the first). */
  reauth?: { since: number; count: number } | undefined;
  readonly path: string;
  readonly greeting: string;
  readonly openedAt: number;
  /** Set on a proxied socket: its traffic goes to the upstream, not to the echo. */
  readonly link?: SocketLink | undefined;
  /** Set on a program's own socket route: its handlers instead of the echo (no greeting). */
  readonly app?: AppSocketHandlers | undefined;
}

/** WsData's names: a program's own socket fields never take one of them. */
export const GATE_SOCKET_FIELDS: ReadonlySet<string> = new Set<keyof WsData>([
  "principal",
  "warned",
  "scope",
  "connId",
  "remote",
  "client",
  "reauth",
  "path",
  "greeting",
  "openedAt",
  "link",
  "app",
]);

export type GateSocket = ServerWebSocket<WsData>;
/** The server as routes and handlers see it: one name, so none of them imports Bun's generic for a type. */
export type GateServer = Server<WsData>;

let connectionCounter = 0;

/** A short id for a socket's log lines (`c1`, `c2`…), unique within this process. */
export function nextConnectionId(): string {
  connectionCounter += 1;
  return `c${connectionCounter.toString(36)}`;
}
