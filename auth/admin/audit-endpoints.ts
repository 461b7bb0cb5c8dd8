/**
 * `/admin/api/audit`: the recent security events (sign-ins refused, keys revoked, bans, sessions,
 * admin actions) from this process's bounded ring, newest first, for the console's Activity page.
 * The ring holds what the audit log holds, never more (no secret is ever in an audit line); a
 * server restarted, or another instance, has its own.
 */
import { z } from "zod";
import type { AuditLog } from "../guard/audit.ts";
import { RECENT_EVENTS } from "../guard/audit.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";

const AuditEventView = z
  .object({ time: z.string(), audit: z.string() })
  .catchall(z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .describe("One audit line's fields: time, the event's name in audit, and what the event carries");

const EVENT_NAME = /^[a-z]+(?:[._][a-z]+)*\.?$/;

export function createAuditEndpoints(audit: AuditLog): AdminEndpoint[] {
  const latest = endpoint({
    method: "GET",
    path: "/audit",
    summary: "The last 100 security events of this server, newest first",
    answer: z.object({ events: z.array(AuditEventView) }),
    status: 200,
    run: async () => ({ events: audit.recent({ limit: 100 }) }),
  });
  const search = endpoint({
    method: "POST",
    path: "/audit",
    summary: `Recent security events, newest first, of one kind (auth.failure) or family (session.), at most ${RECENT_EVENTS}`,
    body: z.object({
      event: z
        .string()
        .regex(EVENT_NAME, "must be an event name such as auth.failure, or a family ending in a dot such as session.")
        .optional(),
      limit: z.number().int().min(1).max(RECENT_EVENTS).optional(),
    }),
    answer: z.object({ events: z.array(AuditEventView) }),
    status: 200,
    run: async ({ input }) => ({ events: audit.recent({ event: input.event, limit: input.limit }) }),
  });
  return [latest, search] as AdminEndpoint[];
}
