/**
 * The admin API (`/admin/api/…`) and the account API (`/auth/account/…`) as the pages call them:
 * the answers' shapes as the OpenAPI document gives them, and the refusals in plain words.
 */
import { getJson, postJson, type Answer } from "./requests.ts";
import type { Refusal } from "./words.ts";

export type KeyView = {
  id: string;
  name: string;
  scopes: string[];
  created_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  last_used_addr: string | null;
  replaced_by: string | null;
  state: "active" | "expired" | "revoked";
};

export type UserView = {
  username: string;
  roles: string[];
  scopes: string[];
  created_at: string | null;
  disabled: boolean;
  disabled_at: string | null;
  passkey_required: boolean;
  passkeys: number;
};

export type SessionView = {
  id: string;
  subject: string;
  method: "password" | "passkey" | "key";
  scopes: string[];
  created_at: string | null;
  last_seen_at: string | null;
  expires_at: string | null;
  created_from: string;
  current?: boolean;
};

export type RefreshFamilyView = {
  family_id: string;
  subject: string;
  client_id: string;
  scopes: string[];
  created_at: string | null;
  last_rotated_at: string | null;
  expires_at: string | null;
  revoked: boolean;
};

export type BanView = { subject: string; started_at: string | null; until: string | null; level: number };
export type SigningKeyView = { kid: string; alg: string; created_at: string | null; retired_at: string | null; state: string };
export type AuditEvent = { time: string; audit: string } & Record<string, string | number | boolean | null>;
export type ScopeChoices = { scopes: string[]; roles: Array<{ name: string; scopes: string[] }> };

const ADMIN = "/admin/api";

export const admin = {
  keys: () => getJson<{ keys: KeyView[] }>(`${ADMIN}/keys`),
  createKey: (body: { name: string; scopes: string[]; expires?: string }) =>
    postJson<{ key: KeyView; secret: string }>(`${ADMIN}/keys`, body),
  revokeKey: (id: string, confirm: boolean) => postJson<{ key: KeyView }>(`${ADMIN}/keys/revoke`, { id, confirm }),
  rotateKey: (id: string, confirm: boolean) =>
    postJson<{ key: KeyView; secret: string; old: KeyView }>(`${ADMIN}/keys/rotate`, { id, confirm, overlap: "1h" }),
  scopes: () => getJson<ScopeChoices>(`${ADMIN}/scopes`),
  users: () => getJson<{ users: UserView[] }>(`${ADMIN}/users`),
  addUser: (body: { username: string; password: string; roles: string[] }) => postJson<{ user: UserView }>(`${ADMIN}/users`, body),
  setDisabled: (username: string, disabled: boolean, confirm: boolean) =>
    postJson<{ user: UserView }>(`${ADMIN}/users/${disabled ? "disable" : "enable"}`, disabled ? { username, confirm } : { username }),
  setRoles: (username: string, roles: string[]) => postJson<{ user: UserView }>(`${ADMIN}/users/roles`, { username, roles }),
  resetPassword: (username: string, password: string) =>
    postJson<{ user: UserView; sessions_ended: number }>(`${ADMIN}/users/password`, { username, password }),
  sessions: () => getJson<{ sessions: SessionView[] }>(`${ADMIN}/sessions`),
  revokeSession: (id: string, confirm: boolean) => postJson<{ session: SessionView }>(`${ADMIN}/sessions/revoke`, { id, confirm }),
  refreshFamilies: () => getJson<{ families: RefreshFamilyView[] }>(`${ADMIN}/refresh-families`),
  revokeFamily: (familyId: string, confirm: boolean) =>
    postJson<{ family: RefreshFamilyView }>(`${ADMIN}/refresh-families/revoke`, { family_id: familyId, confirm }),
  bans: () => getJson<{ bans: BanView[] }>(`${ADMIN}/bans`),
  clearBan: (subject: string) => postJson<{ cleared: number }>(`${ADMIN}/bans/clear`, { subject }),
  signingKeys: () => getJson<{ signing_keys: SigningKeyView[] }>(`${ADMIN}/signing-keys`),
  rotateSigningKey: () => postJson<{ signing_key: SigningKeyView }>(`${ADMIN}/signing-keys/rotate`, {}),
  audit: (event: string | undefined) =>
    postJson<{ events: AuditEvent[] }>(`${ADMIN}/audit`, event === undefined ? { limit: 100 } : { event, limit: 100 }),
};

export const account = {
  sessions: () => getJson<{ sessions: SessionView[] }>("/auth/account/sessions"),
  revokeSession: (id: string) => postJson<{ ended: string }>("/auth/account/sessions/revoke", { id }),
  passkeys: () =>
    getJson<{ passkeys: Array<{ id: string; name: string; created_at: string | null; last_used_at: string | null }> }>("/auth/passkeys"),
  removePasskey: (id: string, password: string) => postJson<{ removed: string }>("/auth/passkeys/remove", { id, password }),
};

/** Why the gate said no, as one sentence for the status line. */
export function explainAdminRefusal(refusal: Refusal): string {
  switch (refusal.status) {
    case 401:
      return "Your sign-in has ended. Sign in again.";
    case 403:
      return refusal.code === "insufficient_scope"
        ? "Your account may not do this: it needs the admin role."
        : `Refused: ${refusal.description || "this browser's request was not accepted."}`;
    case 429:
      return "Too many attempts. Wait a moment and try again.";
    case 503:
      return "The gate's store is not answering. Try again in a moment.";
    default:
      return refusal.description.replace(/^Invalid request: /, "") || "The gate refused this.";
  }
}

export const UNREACHABLE = "The gate cannot be reached. Check the network and try again.";

/** The answer's body, or the sentence to show instead. */
export function bodyOr<T>(answer: Answer<T>): T | { problem: string } {
  if (answer === undefined) return { problem: UNREACHABLE };
  if (!answer.ok) return { problem: explainAdminRefusal(answer.refusal) };
  return answer.body;
}

export const isProblem = <T>(value: T | { problem: string }): value is { problem: string } =>
  typeof value === "object" && value !== null && "problem" in value;
