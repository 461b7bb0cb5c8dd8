/**
 * `/admin/api/bans…`: list the guard's active bans and lift them, through the same operations as
 * `bun run cli bans …` (bans.ts). The framework refreshes the keyring after the change, and the
 * server reloads its guard's bans on that refresh, so a lifted ban lets the client in at once.
 */
import { z } from "zod";
import { isBanSubject } from "../guard/refusals.ts";
import type { BanStore } from "../store/store.ts";
import { BAN_SUBJECT_EXAMPLES, clearBans, describeBan, listActiveBans } from "./bans.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";

export const BanView = z
  .object({
    subject: z.string().describe("addr:<ip> (an IPv6 /64 as addr:<prefix>::/64), key:<id> or user:<name>"),
    started_at: z.string().nullable().describe("ISO 8601"),
    until: z.string().nullable().describe("ISO 8601"),
    level: z.number().int().describe("1 for a first ban; each ban soon after the previous one lasts twice as long, up to an hour"),
  })
  .describe("A ban the guard set for repeated failed attempts");

export interface BanEndpointOptions {
  readonly store: BanStore;
}

export function createBanEndpoints(options: BanEndpointOptions): AdminEndpoint[] {
  const { store } = options;
  const list = endpoint({
    method: "GET",
    path: "/bans",
    summary: "Active bans: addresses, key ids and usernames banned for failed attempts",
    answer: z.object({ bans: z.array(BanView) }),
    status: 200,
    run: async ({ now }) => ({ bans: (await listActiveBans(store, now)).map(describeBan) }),
  });
  const clear = endpoint({
    method: "POST",
    path: "/bans/clear",
    summary: "Lift every active ban, or one subject's; running servers follow at once",
    body: z.object({
      subject: z
        .string()
        .refine(isBanSubject, `must be a subject such as ${BAN_SUBJECT_EXAMPLES}, as the list shows`)
        .optional()
        .describe("omit to lift every ban"),
    }),
    answer: z.object({
      subject: z.string().nullable().describe("the subject lifted, or null for every ban"),
      cleared: z.number().int().describe("how many bans were active and are now lifted"),
    }),
    status: 200,
    audit: { action: "bans.clear", detail: (output) => ({ subject: output.subject, cleared: output.cleared }) },
    run: ({ input, now }) => clearBans(store, input.subject, now),
  });
  return [list, clear] as AdminEndpoint[];
}
