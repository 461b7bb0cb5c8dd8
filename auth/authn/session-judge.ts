/**
 * A presented browser session (`tgs_…`) → its principal, or why not: its digest, the principal's
 * own state (key revoked, user disabled, absolute end), idleness, a session opened a moment ago on
 * another instance, and one that has ended (not a guess: a browser keeps an old cookie).
 */
import type { Clock } from "../core/clock.ts";
import { GateError, INVALID_TOKEN, STORE_UNAVAILABLE } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import type { ParsedSessionToken } from "../secrets/sessions.ts";
import { tokenMatchesDigest } from "../secrets/tokens.ts";
import type { SessionStore } from "../store/store.ts";
import type { Poller } from "./poller.ts";
import type { Revalidate } from "./revalidation.ts";
import type { SessionActivity } from "./session-activity.ts";
import type { StoreHealth } from "./store-health.ts";
import type { SessionEntry, StoreView } from "./store-view.ts";

export interface SessionJudgeParts {
  readonly view: StoreView;
  readonly health: StoreHealth;
  readonly poller: Pick<Poller, "refresh" | "allowMissRecheck">;
  readonly revalidate: Revalidate;
  readonly now: Clock;
  readonly activity: SessionActivity;
  /** A session unused this long ends (SESSION_IDLE_TIMEOUT). */
  readonly idleMs: number;
  /** Where an idle-looking or unknown session is looked up before it is refused. */
  readonly store: Pick<SessionStore, "getSession">;
}

const SESSION_ENDED = new GateError("revoked_token", "This sign-in session has ended; sign in again");
const SESSION_EXPIRED = new GateError("expired_token", "This sign-in session has expired; sign in again");
export const SESSION_IDLE = new GateError("expired_token", "The sign-in session was not used for too long; sign in again");

export type SessionJudge = (session: ParsedSessionToken) => Principal | GateError | Promise<Principal | GateError>;

/** The store did not answer (as opposed to: no such session). */
const STORE_AWAY = Symbol("store away");

export function createSessionJudge(parts: SessionJudgeParts): SessionJudge {
  const { view, health, poller, revalidate, now, activity, idleMs, store } = parts;
  const readStored = (id: string) => store.getSession(id).catch((): typeof STORE_AWAY => STORE_AWAY);

  /**
   * Idle by what this instance knows: another instance may have seen the session since, so the
   * store has the last word (a rare path: a session left alone for days).
   */
  const confirmIdle = async (entry: SessionEntry, principal: Principal): Promise<Principal | GateError> => {
    const stored = await readStored(entry.record.id);
    // A store that does not answer says nothing about the session: 503, never a sign-out.
    if (stored === STORE_AWAY) return STORE_UNAVAILABLE;
    if (stored === undefined || stored.revokedAt !== null || stored.lastSeenAt + idleMs <= now()) return SESSION_IDLE;
    activity.adopt(stored.id, stored.lastSeenAt);
    activity.noteUse(stored.id);
    return principal;
  };

  const judgeLive = (entry: SessionEntry, secret: string): Principal | GateError | Promise<Principal | GateError> => {
    const { principal } = entry;
    if (!tokenMatchesDigest(secret, entry.record.secretHash) || principal === undefined) return INVALID_TOKEN;
    const refused = revalidate(principal);
    if (refused !== undefined) return refused;
    if (activity.lastUse(entry.record) + idleMs <= now()) return confirmIdle(entry, principal);
    activity.noteUse(entry.record.id);
    return principal;
  };

  /**
   * A browser keeps an ended session's cookie until it is told otherwise: that is not a guess (no
   * ban for reloading a page after signing out elsewhere). Only a secret that matches a stored
   * session says so; anything else is an unknown token.
   */
  const judgeStored = async (session: ParsedSessionToken): Promise<Principal | GateError> => {
    const stored = await readStored(session.id);
    // Not a guess when the store cannot say: 503, never counted toward a ban.
    if (stored === STORE_AWAY) return STORE_UNAVAILABLE;
    if (stored === undefined || !tokenMatchesDigest(session.secret, stored.secretHash)) return INVALID_TOKEN;
    if (stored.revokedAt !== null) return SESSION_ENDED;
    if (stored.expiresAt <= now()) return SESSION_EXPIRED;
    // Live, with the right secret, yet not loaded (another instance opened it while the recheck was
    // throttled): not a guess, so the view is brought up to date for it.
    await poller.refresh();
    const entry = view.findSession(session.id);
    return entry === undefined ? STORE_UNAVAILABLE : judgeLive(entry, session.secret);
  };

  /** A session opened a moment ago on another instance may not be loaded yet: look again (throttled) first. */
  const judgeMissed = async (session: ParsedSessionToken): Promise<Principal | GateError> => {
    const found = poller.allowMissRecheck() && (await poller.refresh()) ? view.findSession(session.id) : undefined;
    return found === undefined ? judgeStored(session) : judgeLive(found, session.secret);
  };

  return (session) => {
    const entry = view.findSession(session.id);
    if (entry !== undefined) return judgeLive(entry, session.secret);
    return health.isStale() ? STORE_UNAVAILABLE : judgeMissed(session);
  };
}
