/**
 * What every socket carries, and the server type that routes and handlers are given: types only,
 * so the HTTP routes and the OAuth endpoints name the server without importing the socket code.
 */
import type { Server, ServerWebSocket } from "bun";
import type { Principal } from "../core/principal.ts";

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
}

export type GateSocket = ServerWebSocket<WsData>;
/** The server as routes and handlers see it: one name, so none of them imports Bun's generic for a type. */
export type GateServer = Server<WsData>;
