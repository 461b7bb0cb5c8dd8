/**
 * The keyring's copy of the store's records: keys, users and revocations, read together and
 * swapped in as one snapshot, so a request never sees the keys of one reload with the users of
 * another. Reads are synchronous map lookups: this is what the hot path consults.
 */
import type { Clock } from "../core/clock.ts";
import type { Principal } from "../core/principal.ts";
import type { KeyRecord, KeyStore, RefreshStore, UserStore } from "../store/store.ts";
import { keyPrincipal } from "./principals.ts";

export interface KeyEntry {
  readonly record: KeyRecord;
  /** Built once per reload, so authenticating with the key allocates nothing. */
  readonly principal: Principal;
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
}

export interface StoreView {
  readonly marker: () => string;
  readonly findKey: (id: string) => KeyEntry | undefined;
  /** When the user was disabled (null: active), or `undefined` for no such user. */
  readonly userDisabledAt: (username: string) => number | null | undefined;
  readonly isSessionRevoked: (familyId: string) => boolean;
  readonly isTokenRevoked: (tokenId: string) => boolean;
  /** Reads everything again at `marker`, swaps it in and reports what happened to keys meanwhile. */
  readonly reload: (marker: string) => Promise<void>;
}

type ViewStore = KeyStore & UserStore & RefreshStore;

async function readSnapshot(store: ViewStore, now: Clock, marker: string): Promise<Snapshot> {
  const [keys, users, families, tokenIds] = await Promise.all([
    store.listKeys(),
    store.listUsers(),
    // Access tokens live at most a day (ACCESS_TOKEN_TTL_SECONDS ≤ 86400): older revocations no longer matter.
    store.revokedFamilies(now() - 86_400_000),
    store.revokedAccessTokens(now()),
  ]);
  return {
    marker,
    keys: new Map(keys.map((record) => [record.id, { record, principal: keyPrincipal(record) }])),
    users: new Map(users.map((user) => [user.username, user.disabledAt])),
    revokedSessions: new Set(families),
    revokedTokenIds: new Set(tokenIds),
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
    isSessionRevoked: (familyId) => current.revokedSessions.has(familyId),
    isTokenRevoked: (tokenId) => current.revokedTokenIds.has(tokenId),
    async reload(marker) {
      const before = current;
      current = await readSnapshot(store, now, marker);
      if (onKeyEvent !== undefined) reportKeyChanges(before, current, onKeyEvent);
    },
  };
}
