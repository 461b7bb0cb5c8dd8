/**
 * `/admin/api/keys…`: list, create (the secret shown once), revoke and rotate API keys, through the
 * same operations as `bun run cli keys …` (keys.ts). An admin cannot revoke the key they are using
 * without `confirm: true`: a phone that locks itself out by accident is one click away.
 */
import { z } from "zod";
import { GateError } from "../core/errors.ts";
import { echoTyped } from "../core/redact.ts";
import type { Principal } from "../core/principal.ts";
import {
  DEFAULT_KEY_SCOPES,
  UNSHOWABLE_IN_NAME,
  judgeDuration,
  KEY_LIFETIME,
  parseDuration,
  parseScopes,
  ROTATION_OVERLAP,
  type DurationRange,
} from "../secrets/keys.ts";
import { findUnknownScopes } from "../http/scopes.ts";
import type { KeyStore } from "../store/store.ts";
import { endpoint, type AdminEndpoint } from "./endpoints.ts";
import { AdminProblem, createKey, describeKey, revokeKey, rotateKey, updateKey } from "./keys.ts";

const time = z.string().nullable().describe("ISO 8601, or null for never");

export const KeyView = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.string()),
    created_at: time,
    expires_at: time,
    revoked_at: time.describe("when it stops (or stopped) working by revocation; later than now during a rotation's overlap"),
    last_used_at: time,
    last_used_addr: z.string().nullable(),
    replaced_by: z.string().nullable(),
    state: z.enum(["active", "expired", "revoked"]),
  })
  .describe("An API key; its secret is never stored, so never shown here");

const duration = (range: DurationRange, example: string) =>
  z
    .string()
    .describe(`a duration ${range.words}, such as ${example} (s, m, h, d or w)`)
    .transform((text, context) => {
      const ms = parseDuration(text);
      if (ms === undefined || judgeDuration(ms, range) !== undefined) {
        context.addIssue({ code: "custom", message: `must be a duration ${range.words}, such as ${example}` });
        return z.NEVER;
      }
      return ms;
    });

const keyId = z
  .string()
  .regex(/^(?:tg_)?[0-9a-f]{12}$/, "must be a key id: 12 hex characters, as the list shows")
  .transform((id) => (id.startsWith("tg_") ? id.slice(3) : id));

const keyName = z
  .string()
  .trim()
  .min(1, "must not be empty")
  .max(200, "must be at most 200 characters")
  .refine((name) => !UNSHOWABLE_IN_NAME.test(name), "must not hold control or text-direction characters");

export interface KeyEndpointOptions {
  readonly store: KeyStore;
  /** Scopes a new key may be given unless `allow_new_scope` (see listKnownScopes). */
  readonly knownScopes: () => readonly string[];
}

const OWN_KEY_CHANGE = new GateError(
  "conflict",
  "This is the key you are signed in with: this change can sign you out here. Send confirm: true to make it anyway",
);

/** Whether the caller acts with this very key (itself, a session opened with it, or a token minted from it). */
const isOwnKey = (principal: Principal, id: string) => principal.kind === "key" && principal.id === id;

const SELF_REVOKE = new GateError(
  "conflict",
  "This is the key you are signed in with: revoking it signs you out here too. Send confirm: true to revoke it anyway",
);

function createEndpoint(options: KeyEndpointOptions) {
  const body = z.object({
    name: keyName,
    scopes: z
      .array(z.string())
      .min(1)
      .optional()
      .describe(`scopes granted (default ${DEFAULT_KEY_SCOPES.join(", ")}); * grants all`),
    expires: duration(KEY_LIFETIME, "30d").optional(),
    allow_new_scope: z.boolean().optional().describe("accept scopes nothing requires yet"),
  });
  return endpoint({
    method: "POST",
    path: "/keys",
    summary: "Create an API key; its secret is in this answer only",
    body,
    answer: z.object({ key: KeyView, secret: z.string().describe("the key itself: shown once, never stored") }),
    status: 201,
    audit: { action: "keys.create", detail: (output) => ({ key_id: output.key.id, name: output.key.name }) },
    async run({ input, now }) {
      const scopes =
        input.scopes === undefined
          ? [...DEFAULT_KEY_SCOPES]
          : judgeScopes(input.scopes, input.allow_new_scope === true, options.knownScopes());
      if (scopes instanceof AdminProblem) return scopes;
      const minted = await createKey(options.store, { name: input.name, scopes, expiresInMs: input.expires }, now);
      const created = await options.store.getKey(minted.record.id);
      return { key: describeKey(created!, now), secret: minted.token };
    },
  });
}

/** The scopes asked for, checked for shape and (unless allowed) against the known set: the list, or why not. */
function judgeScopes(asked: readonly string[], allowNew: boolean, known: readonly string[]): string[] | AdminProblem {
  const scopes = parseScopes(asked.join(" "));
  if (scopes === undefined)
    return new AdminProblem("invalid", "must be scopes such as data:read or ws:connect (lower case), or *", "scopes");
  const unknown = findUnknownScopes(scopes, allowNew ? scopes : known);
  if (unknown.length === 0) return scopes;
  return new AdminProblem("invalid", `unknown scope ${unknown.map(echoTyped).join(", ")}; known scopes: ${known.join(" ")}`, "scopes");
}

function updateEndpoint(options: KeyEndpointOptions) {
  const body = z
    .object({
      id: keyId,
      name: keyName.optional(),
      scopes: z.array(z.string()).min(1).optional(),
      expires: z
        .union([z.literal("never"), duration(KEY_LIFETIME, "30d")])
        .optional()
        .describe("a new lifetime from now, or never"),
      allow_new_scope: z.boolean().optional(),
      confirm: z.boolean().optional().describe("needed to change the scopes or expiry of the key you are using"),
    })
    .refine((input) => input.name !== undefined || input.scopes !== undefined || input.expires !== undefined, {
      message: "give at least one of name, scopes, expires",
    });
  return endpoint({
    method: "POST",
    path: "/keys/update",
    summary: "Rename a key, change its scopes or its expiry; narrowed scopes close its sockets that needed them",
    body,
    answer: z.object({ key: KeyView }),
    status: 200,
    audit: {
      action: "keys.update",
      detail: (output) => ({ key_id: output.key.id, scopes: output.key.scopes.join(" "), expires_at: output.key.expires_at }),
    },
    async run({ input, principal, now }) {
      const narrowsOwn = isOwnKey(principal, input.id) && (input.scopes !== undefined || input.expires !== undefined);
      if (narrowsOwn && input.confirm !== true) return OWN_KEY_CHANGE;
      const scopes =
        input.scopes === undefined ? undefined : judgeScopes(input.scopes, input.allow_new_scope === true, options.knownScopes());
      if (scopes instanceof AdminProblem) return scopes;
      const expiresInMs = input.expires === undefined ? undefined : input.expires === "never" ? null : input.expires;
      const updated = await updateKey(options.store, input.id, { name: input.name, scopes, expiresInMs }, now);
      return updated instanceof AdminProblem ? updated : { key: describeKey(updated, now) };
    },
  });
}

export function createKeyEndpoints(options: KeyEndpointOptions): AdminEndpoint[] {
  const { store } = options;
  const list = endpoint({
    method: "GET",
    path: "/keys",
    summary: "Every API key with its state, scopes, expiry and last use (when, from which address)",
    answer: z.object({ keys: z.array(KeyView) }),
    status: 200,
    run: async ({ now }) => ({ keys: (await store.listKeys()).map((record) => describeKey(record, now)) }),
  });
  const revoke = endpoint({
    method: "POST",
    path: "/keys/revoke",
    summary: "Revoke a key now: its sockets close with 4403 within a second",
    body: z.object({ id: keyId, confirm: z.boolean().optional().describe("needed to revoke the key you are using") }),
    answer: z.object({ key: KeyView }),
    status: 200,
    audit: { action: "keys.revoke", detail: (output) => ({ key_id: output.key.id }) },
    async run({ input, principal, now }) {
      if (isOwnKey(principal, input.id) && input.confirm !== true) return SELF_REVOKE;
      const revoked = await revokeKey(store, input.id, now);
      return revoked instanceof AdminProblem ? revoked : { key: describeKey(revoked, now) };
    },
  });
  const rotate = endpoint({
    method: "POST",
    path: "/keys/rotate",
    summary: "Replace a key (same name and scopes); the old one works for the overlap",
    body: z.object({
      id: keyId,
      confirm: z.boolean().optional().describe("needed to rotate the key you are using (it then ends after the overlap)"),
      overlap: duration(ROTATION_OVERLAP, "1h").optional(),
      expires: duration(KEY_LIFETIME, "30d").optional().describe("the new key's lifetime (default: the old key's)"),
    }),
    answer: z.object({ key: KeyView, secret: z.string(), old: KeyView }),
    status: 201,
    audit: { action: "keys.rotate", detail: (output) => ({ key_id: output.old.id, replaced_by: output.key.id }) },
    async run({ input, principal, now }) {
      if (isOwnKey(principal, input.id) && input.confirm !== true) return OWN_KEY_CHANGE;
      const rotation = await rotateKey(store, input.id, { overlapMs: input.overlap ?? 0, expiresInMs: input.expires }, now);
      if (rotation instanceof AdminProblem) return rotation;
      const [created, old] = await Promise.all([store.getKey(rotation.record.id), store.getKey(input.id)]);
      return { key: describeKey(created!, now), secret: rotation.token, old: describeKey(old!, now) };
    },
  });
  return [list, createEndpoint(options), revoke, rotate, updateEndpoint(options)] as AdminEndpoint[];
}
