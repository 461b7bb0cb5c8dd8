/**
 * Upgrading to a WebSocket, only once the credential matched (the card: `server.upgrade` runs on
 * a match and never before). A socket route takes a single-use ticket, or a token from the headers,
 * the query (`?token=`) or the subprotocol list; the answer echoes only the plain marker.
 */
import { readCredential, SUBPROTOCOL } from "../authn/credentials.ts";
import { GateError } from "../core/errors.ts";
import { requireScope, type Principal } from "../core/principal.ts";
import { valuesOf } from "../core/query.ts";
import type { TicketBook } from "../secrets/tickets.ts";
import { GATE_SOCKET_FIELDS, nextConnectionId, type WsData } from "../ws/data.ts";
import { authorizeToken, type Authorizer, type Verdict } from "./authorizer.ts";
import { peerAddress } from "./clients.ts";
import type { Exchange } from "./exchange.ts";
import { toResponse } from "./responses.ts";
import type { SocketRoute } from "./routes.ts";
import { isWebSocketUpgrade, UPGRADE_REQUIRED } from "./screening.ts";

export const UPGRADE_FAILED = new GateError(
  "invalid_request",
  "The WebSocket handshake is invalid (needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13)",
);
const BAD_TICKET = new GateError(
  "invalid_token",
  "The WebSocket ticket is unknown, already used, expired or for another path; ask for a new one",
);
const TICKET_AND_TOKEN = new GateError("invalid_request", "Send either a ticket or a token, not both");
const FOREIGN_SUBPROTOCOL = new GateError(
  "invalid_request",
  "Unsupported WebSocket subprotocol; offer 'tokengate' (optionally with tokengate.bearer.<token>) or none",
);

export interface UpgradeOptions {
  /** Single-use WebSocket tickets (`?ticket=`); without it tickets are not accepted. */
  readonly tickets?: TicketBook | undefined;
  /**
   * Why an authenticated principal is no longer valid (revoked, expired, disabled), or undefined.
   * Re-checked when a ticket is redeemed, and for open sockets; without it sockets are never closed
   * for auth reasons.
   */
  readonly revalidate?: ((principal: Principal, scope?: string) => GateError | undefined) | undefined;
  /**
   * Brings the live keyring up to date with the store first, so a revocation made by another
   * process a moment ago counts (tickets are rare: one store check each costs nothing that matters).
   */
  readonly syncBeforeTicket?: (() => Promise<unknown>) | undefined;
}

export class SocketUpgrader {
  constructor(
    private readonly authorizer: Authorizer,
    private readonly options: UpgradeOptions,
  ) {}

  /** The upgrade, or the refusal as an HTTP answer (`undefined` once upgraded). */
  serve(exchange: Exchange, route: SocketRoute): Response | undefined | Promise<Response | undefined> {
    const { request } = exchange;
    if (!isWebSocketUpgrade(request)) return toResponse(UPGRADE_REQUIRED);
    const ticket = exchange.params.length === 0 ? undefined : valuesOf(exchange.params, "ticket")[0];
    if (ticket !== undefined && this.options.tickets !== undefined) {
      const redeem = () =>
        this.settle(exchange, route, this.authorizer.judge(exchange, this.redeemTicket(exchange, ticket, route), undefined));
      // Only a ticket the book holds is worth a store round trip: junk tickets cost nothing.
      const sync = this.options.tickets.holds(ticket) ? this.options.syncBeforeTicket : undefined;
      // A store that cannot be reached leaves the keyring as it was; its own staleness rule then decides.
      return sync === undefined ? redeem() : sync().then(redeem, redeem);
    }
    const credential = readCredential({
      xAuthToken: request.headers.get("x-auth-token"),
      authorization: request.headers.get("authorization"),
      queryTokens: exchange.params.length === 0 ? [] : valuesOf(exchange.params, "token"),
      subprotocols: request.headers.get("sec-websocket-protocol"),
    });
    let token = credential === "none" ? undefined : credential instanceof GateError ? credential : credential.token;
    if (credential === "none") {
      // A same-origin page opens its socket with the sign-in cookie; the Origin check is mandatory then.
      const cookie = this.authorizer.readCookie(exchange);
      token = cookie.forged ?? cookie.credential;
    }
    const who = authorizeToken(token, this.authorizer.options.authenticate, route.scope);
    const settle = (verdict: Verdict) => this.settle(exchange, route, this.authorizer.judge(exchange, verdict, token));
    return who instanceof Promise ? who.then(settle) : settle(who);
  }

  /** A ticket's principal, re-checked: a key revoked since the ticket was minted must not open a socket. */
  private redeemTicket(exchange: Exchange, ticket: string, route: SocketRoute): Verdict {
    const { params, request } = exchange;
    const mixed =
      valuesOf(params, "ticket").length > 1 ||
      valuesOf(params, "token").length > 0 ||
      request.headers.has("authorization") ||
      request.headers.has("x-auth-token");
    if (mixed) return TICKET_AND_TOKEN;
    const principal = this.options.tickets?.redeem(ticket, route.path);
    if (principal === undefined) return BAD_TICKET;
    return this.options.revalidate?.(principal, route.scope) ?? requireScope(principal, route.scope) ?? principal;
  }

  private settle(exchange: Exchange, route: SocketRoute, who: Verdict): Response | undefined {
    const outcome = who instanceof GateError ? who : this.upgrade(exchange, route, who);
    return outcome instanceof GateError ? toResponse(outcome) : undefined;
  }

  private upgrade(exchange: Exchange, route: SocketRoute, who: Principal): GateError | undefined {
    const { request, server } = exchange;
    // Bun echoes the first offered subprotocol unless told otherwise; that could be the entry
    // carrying the token. Answer with the plain marker, and refuse protocols we do not speak.
    const subprotocols = request.headers.get("sec-websocket-protocol");
    let headers: Headers | undefined;
    if (subprotocols !== null) {
      if (!subprotocols.split(",").some((name) => name.trim() === SUBPROTOCOL)) return FOREIGN_SUBPROTOCOL;
      headers = new Headers({ "sec-websocket-protocol": SUBPROTOCOL });
    }
    const data = this.socketData(exchange, route, who);
    const upgraded = headers === undefined ? server.upgrade(request, { data }) : server.upgrade(request, { data, headers });
    if (!upgraded) return UPGRADE_FAILED;
    this.authorizer.options.recordUse?.(who, () => data.remote);
    // After the upgrade Bun no longer knows the request's peer: hand the address to the access log.
    exchange.actAs(who, data.remote);
    return undefined;
  }

  private socketData(exchange: Exchange, route: SocketRoute, who: Principal): WsData {
    const data = createSocketData(exchange, this.authorizer, who, {
      scope: route.scope,
      path: route.path,
      greeting: route.greeting,
      app: route.app,
    });
    if (route.appData === undefined) return data;
    // The program's fields join the gate's; a name the gate uses stays the gate's (its principal above all).
    const own = Object.entries(route.appData(exchange.request, who)).filter(([name]) => !GATE_SOCKET_FIELDS.has(name));
    return Object.assign(data, Object.fromEntries(own));
  }
}

/** What a socket carries from its upgrade on: the gate's echo socket and a proxied one alike. */
export function createSocketData(
  exchange: Exchange,
  authorizer: Authorizer,
  who: Principal,
  socket: Pick<WsData, "scope" | "path" | "greeting" | "link" | "app">,
): WsData {
  return {
    principal: who,
    warned: false,
    connId: nextConnectionId(),
    remote: peerAddress(exchange.request, exchange.server),
    client: authorizer.addressOf(exchange.request, exchange.server),
    openedAt: performance.now(),
    ...socket,
  };
}
