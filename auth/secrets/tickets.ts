/**
 * WebSocket tickets: a browser cannot put a token in an upgrade's headers, and a refused upgrade
 * shows it only close code 1006. So it first asks `POST /auth/ws-ticket` with its token (any
 * refusal there is an ordinary, explained HTTP answer), then upgrades with `?ticket=`. A ticket
 * lasts 30 s, works once, only for the path it names, and only its hash is kept.
 */
import { generateToken } from "./tokens.ts";
import type { Principal } from "../core/principal.ts";
import type { Clock } from "../core/clock.ts";

export const TICKET_TTL_MS = 30_000;
const TICKET_SHAPE = /^[A-Za-z0-9_-]{43}$/;

interface Entry {
  readonly principal: Principal;
  readonly path: string;
  readonly expiresAt: number;
}

export interface TicketBook {
  issue(principal: Principal, path: string): { ticket: string; expiresIn: number };
  /** The ticket's principal if it is valid for `path`; it is spent either way. */
  redeem(ticket: string, path: string): Principal | undefined;
  /** Whether the book holds this ticket (live or not yet swept); it is not spent. */
  holds(ticket: string): boolean;
  readonly size: number;
}

export function createTicketBook(options: { now: Clock; limit?: number }): TicketBook {
  const { now } = options;
  const limit = options.limit ?? 10_000;
  const tickets = new Map<string, Entry>();
  const key = (ticket: string) => Bun.SHA256.hash(ticket, "base64url");
  const sweep = (at: number) => {
    for (const [hash, entry] of tickets) if (entry.expiresAt <= at) tickets.delete(hash);
  };
  return {
    issue(principal, path) {
      const at = now();
      if (tickets.size >= limit) sweep(at);
      // Still full of live tickets: drop the oldest rather than grow without bound.
      if (tickets.size >= limit) tickets.delete(tickets.keys().next().value!);
      const ticket = generateToken();
      tickets.set(key(ticket), { principal, path, expiresAt: at + TICKET_TTL_MS });
      return { ticket, expiresIn: TICKET_TTL_MS / 1000 };
    },
    holds: (ticket) => TICKET_SHAPE.test(ticket) && tickets.has(key(ticket)),
    redeem(ticket, path) {
      if (!TICKET_SHAPE.test(ticket)) return undefined;
      const hash = key(ticket);
      const entry = tickets.get(hash);
      if (entry === undefined) return undefined;
      tickets.delete(hash);
      return entry.expiresAt > now() && entry.path === path ? entry.principal : undefined;
    },
    get size() {
      return tickets.size;
    },
  };
}
