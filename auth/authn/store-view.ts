/**
 * The keyring's copy of the store's records: keys, users and revocations, read together and
 * swapped in as one snapshot, so a request never sees the keys of one reload with the users of
 * another. Reads are synchronous map lookups: this is what the hot path consults.
 */
import type { Clock } from "../core/clock.ts";
import type { Principal } from "../core/principal.ts";
import type { KeyRecord, KeyStore, RefreshStore, SessionRecord, SessionStore, UserStore } from "../store/store.ts";
import { keyPrincipal, sessionPrincipal } from "./principals.ts";

export interface KeyEntry {
  readonly record: KeyRecord;
  /** Built once per reload, so authenticating with the key allocates nothing. */
  readonly principal: Principal;
}

export interface SessionEntry {
  readonly record: SessionRecord;
  /** Built once per reload, like a key's; `undefined` for a subject of no known kind. */
  readonly principal: Principal | undefined;
}

export type KeyEvent = "key.created" | "key.revoked" | "key.rotated";

interface Snapshot {
  /** The store's change marker this snapshot was read at. */
  readonly marker: string;
  readonly keys: ReadonlyMap<string, KeyEntry>;
  /** Username → disabled time (null when active); absent means no such user. */
  readonly users: ReadonlyMap<string, number | null>;
  readonly revokedSessions: ReadonlySet<string>;
  readonly revokedTokenIds: ReadonlySet<string>;
  /** Browser sessions neither revoked nor past their absolute end when read. */
  readonly liveSessions: ReadonlyMap<string, SessionEntry>;
}

export interface StoreView {
  readonly marker: () => string;
  readonly findKey: (id: string) => KeyEntry | undefined;
  /** When the user was disabled (null: active), or `undefined` for no such user. */
  readonly userDisabledAt: (username: string) => number | null | undefined;
  /**
   * Whether a refresh-token family, or a browser session (a 16-hex id, see secrets/sessions.ts),
   * no longer holds: a family is revoked; a browser session is no longer among the live ones.
   */
  readonly isSessionRevoked: (session: string) => boolean;
  readonly findSession: (id: string) => SessionEntry | undefined;
  readonly isTokenRevoked: (tokenId: string) => boolean;
  /** Reads everything again at `marker`, swaps it in and reports what happened to keys meanwhile. */
  readonly reload: (marker: string) => Promise<void>;
}

type ViewStore = KeyStore & UserStore & RefreshStore & SessionStore;

const BROWSER_SESSION_ID = /^[0-9a-f]{16}$/;

async function readSnapshot(store: ViewStore, now: Clock, marker: string): Promise<Snapshot> {
  const [keys, users, families, tokenIds, sessions] = await Promise.all([
    store.listKeys(),
    store.listUsers(),
    // Access tokens live at most a day (ACCESS_TOKEN_TTL_SECONDS ≤ 86400): older revocations no longer matter.
    store.revokedFamilies(now() - 86_400_000),
    store.revokedAccessTokens(now()),
    store.listSessions(now()),
  ]);
  const keyEntries = new Map(keys.map((record) => [record.id, { record, principal: keyPrincipal(record) }]));
  const keyOf = (id: string) => keyEntries.get(id)?.record;
  return {
    marker,
    keys: keyEntries,
    users: new Map(users.map((user) => [user.username, user.disabledAt])),
    revokedSessions: new Set(families),
    revokedTokenIds: new Set(tokenIds),
    liveSessions: new Map(sessions.map((record) => [record.id, { record, principal: sessionPrincipal(record, keyOf) }])),
  };
}

/** Lifecycle changes between two snapshots, as the CLI or another instance made them. */
function reportKeyChanges(before: Snapshot, after: Snapshot, onKeyEvent: (event: KeyEvent, key: KeyRecord) => void): void {
  for (const { record } of after.keys.values()) {
    const previous = before.keys.get(record.id)?.record;
    if (previous === undefined) onKeyEvent("key.created", record);
    else if (previous.replacedBy === null && record.replacedBy !== null) onKeyEvent("key.rotated", record);
    else if (previous.revokedAt === null && record.revokedAt !== null) onKeyEvent("key.revoked", record);
  }
}

/**
 * Reads the store once and returns the view. The first read reports no key events: keys that
 * existed before the server started were not created now.
 */
export async function openStoreView(
  store: ViewStore,
  now: Clock,
  onKeyEvent: ((event: KeyEvent, key: KeyRecord) => void) | undefined,
): Promise<StoreView> {
  let current = await readSnapshot(store, now, await store.changeMarker());
  return {
    marker: () => current.marker,
    findKey: (id) => current.keys.get(id),
    userDisabledAt: (username) => current.users.get(username),
    isSessionRevoked: (session) =>
      BROWSER_SESSION_ID.test(session) ? !current.liveSessions.has(session) : current.revokedSessions.has(session),
    findSession: (id) => current.liveSessions.get(id),
    isTokenRevoked: (tokenId) => current.revokedTokenIds.has(tokenId),
    async reload(marker) {
      const before = current;
      current = await readSnapshot(store, now, marker);
      if (onKeyEvent !== undefined) reportKeyChanges(before, current, onKeyEvent);
    },
  };
}
