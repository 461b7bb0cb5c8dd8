/**
 * The WebAuthn challenges the gate handed out and has not seen come back. A challenge is what makes
 * a passkey's signature fresh: each one works once and for 5 minutes, so a recorded answer cannot be
 * played again. They live in this process's memory only (a sign-in is finished where it started),
 * in a bounded map: anyone may ask for sign-in options, and a flood of asks must not grow memory.
 */
import type { Clock } from "../core/clock.ts";

/** How long a challenge may wait for the browser's answer (the prompt's timeout too). */
export const CHALLENGE_TTL_MS = 5 * 60_000;
/** Pending challenges kept at most; past it the oldest one is dropped. */
export const CHALLENGE_LIMIT = 10_000;

export interface ChallengeBook {
  /** Keeps `challenge` under `key` (replacing an earlier one there) until it is taken or expires. */
  put(key: string, challenge: string): void;
  /** The challenge under `key`, once: it is removed even when expired. `undefined` when unknown, used or expired. */
  take(key: string): string | undefined;
  readonly size: number;
}

interface Pending {
  readonly challenge: string;
  readonly expiresAt: number;
}

export function createChallengeBook(now: Clock, limit = CHALLENGE_LIMIT, ttlMs = CHALLENGE_TTL_MS): ChallengeBook {
  // A Map iterates in insertion order and every entry lives equally long: the oldest is the first.
  const pending = new Map<string, Pending>();

  /** Drops expired entries from the front: cheap, since it stops at the first live one. */
  const dropExpired = (at: number) => {
    for (const [key, entry] of pending) {
      if (entry.expiresAt > at) return;
      pending.delete(key);
    }
  };

  return {
    put(key, challenge) {
      const at = now();
      pending.delete(key);
      dropExpired(at);
      // Still full of live ones: the oldest goes (a flood can cost a pending sign-in, never memory).
      if (pending.size >= limit) pending.delete(pending.keys().next().value!);
      pending.set(key, { challenge, expiresAt: at + ttlMs });
    },
    take(key) {
      const entry = pending.get(key);
      if (entry === undefined) return undefined;
      pending.delete(key);
      return entry.expiresAt > now() ? entry.challenge : undefined;
    },
    get size() {
      return pending.size;
    },
  };
}

/** A sign-in challenge's id: 128 random bits, base64url (22 characters). */
export function generateChallengeId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
}

export const CHALLENGE_ID = /^[A-Za-z0-9_-]{22}$/;
