/**
 * What can be done to API keys, once, for both faces: the CLI (`keys …`) and the admin API
 * (`/admin/api/keys…`). Each operation takes values already read from its caller's input and
 * answers the result or an `AdminProblem` the caller words in its own way (an exit code, a status).
 */
import { iso, isoOrNull } from "../core/times.ts";
import { generateApiKey, judgeDuration, KEY_LIFETIME, keyState } from "../secrets/keys.ts";
import { digestToken } from "../secrets/tokens.ts";
import type { KeyRecord, KeyStore, NewKey } from "../store/store.ts";

/** Why an operation could not be done: no such record, or not in a state that allows it. */
export class AdminProblem {
  constructor(
    readonly kind: "not_found" | "conflict" | "invalid",
    /** A sentence for people, naming the record but never a secret. */
    readonly message: string,
    /** For `invalid`: the input field at fault. */
    readonly field?: string,
  ) {}
}

/** A key as lists and answers show it: never its secret (which is not stored). */
export function describeKey(record: KeyRecord, now: number) {
  return {
    id: record.id,
    name: record.name,
    scopes: [...record.scopes],
    created_at: isoOrNull(record.createdAt),
    expires_at: isoOrNull(record.expiresAt),
    revoked_at: isoOrNull(record.revokedAt),
    last_used_at: isoOrNull(record.lastUsedAt),
    last_used_addr: record.lastUsedAddr,
    replaced_by: record.replacedBy,
    state: keyState(record, now),
  };
}

export interface MintedKey {
  /** Shown once, to whoever asked; only its digest is stored. */
  readonly token: string;
  readonly record: NewKey;
}

function mintKey(name: string, scopes: readonly string[], expiresInMs: number | undefined, now: number): MintedKey {
  const key = generateApiKey();
  const record: NewKey = {
    id: key.id,
    name,
    scopes,
    secretHash: digestToken(key.secret),
    createdAt: now,
    expiresAt: expiresInMs === undefined ? null : now + expiresInMs,
  };
  return { token: key.token, record };
}

export interface NewKeyInput {
  readonly name: string;
  readonly scopes: readonly string[];
  readonly expiresInMs: number | undefined;
}

export async function createKey(store: Pick<KeyStore, "insertKey">, input: NewKeyInput, now: number): Promise<MintedKey> {
  const minted = mintKey(input.name, input.scopes, input.expiresInMs, now);
  await store.insertKey(minted.record);
  return minted;
}

const noSuchKey = (id: string) => new AdminProblem("not_found", `No key with id ${id}`);

/** Revokes a key now; a key revoked already is a conflict (its earlier end stays). */
export async function revokeKey(store: Pick<KeyStore, "getKey" | "revokeKey">, id: string, now: number): Promise<KeyRecord | AdminProblem> {
  const before = await store.getKey(id);
  if (before === undefined) return noSuchKey(id);
  if (keyState(before, now) === "revoked") {
    return new AdminProblem("conflict", `Key ${id} ("${before.name}") was already revoked at ${iso(before.revokedAt)}`);
  }
  return (await store.revokeKey(id, now)) ?? noSuchKey(id);
}

/** A rotated key inherits the old lifetime; one this version would refuse (an old typo) is not copied. */
function inheritedLifetime(old: KeyRecord): number | undefined | AdminProblem {
  if (old.expiresAt === null) return undefined;
  const lifetime = old.expiresAt - old.createdAt;
  const problem = judgeDuration(lifetime, KEY_LIFETIME);
  if (problem === undefined) return lifetime;
  return new AdminProblem(
    "invalid",
    `key ${old.id}'s stored lifetime is out of range (a key's lifetime ${problem}), so it is not copied; give the new key's lifetime`,
    "expires",
  );
}

export interface Rotation extends MintedKey {
  readonly old: KeyRecord;
  /** When the old key stops working. */
  readonly oldEndsAt: number;
}

/** A replacement with the same name and scopes; the old key works for `overlapMs` more. Only an active key rotates. */
export async function rotateKey(
  store: Pick<KeyStore, "getKey" | "rotateKey">,
  id: string,
  change: { readonly overlapMs: number; readonly expiresInMs: number | undefined },
  now: number,
): Promise<Rotation | AdminProblem> {
  const old = await store.getKey(id);
  if (old === undefined) return noSuchKey(id);
  const state = keyState(old, now);
  if (state !== "active") return new AdminProblem("conflict", `Key ${id} ("${old.name}") is ${state}; create a new key instead`);
  const lifetime = change.expiresInMs ?? inheritedLifetime(old);
  if (lifetime instanceof AdminProblem) return lifetime;
  const minted = mintKey(old.name, old.scopes, lifetime, now);
  const oldEndsAt = now + change.overlapMs;
  await store.rotateKey(id, minted.record, oldEndsAt);
  return { ...minted, old, oldEndsAt };
}

export interface KeyUpdate {
  readonly name?: string | undefined;
  readonly scopes?: readonly string[] | undefined;
  /** A new lifetime from now, or `null` for never. */
  readonly expiresInMs?: number | null | undefined;
}

/**
 * Renames a key, changes its scopes or its expiry. A revoked key stays as it ended. Narrowed scopes
 * hold on the next request and close the key's sockets that needed a scope it lost (4403).
 */
export async function updateKey(
  store: Pick<KeyStore, "getKey" | "updateKey">,
  id: string,
  update: KeyUpdate,
  now: number,
): Promise<KeyRecord | AdminProblem> {
  const before = await store.getKey(id);
  if (before === undefined) return noSuchKey(id);
  if (keyState(before, now) === "revoked")
    return new AdminProblem("conflict", `Key ${id} ("${before.name}") is revoked; it cannot be changed`);
  const expiresAt = update.expiresInMs === undefined ? undefined : update.expiresInMs === null ? null : now + update.expiresInMs;
  return (await store.updateKey(id, { name: update.name, scopes: update.scopes, expiresAt })) ?? noSuchKey(id);
}
