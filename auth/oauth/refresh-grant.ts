/**
 * grant_type=refresh_token (RFC 6749 §6): one-time refresh tokens. Each use returns a new one in
 * the same family; a replay after the grace window revokes the whole family.
 */
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import { parseRefreshToken, REFRESH_GRACE_MS } from "../secrets/refresh.ts";
import { scopesForRoles } from "../authn/users.ts";
import type { RefreshTokenRecord } from "../store/store.ts";
import {
  BAD_REFRESH,
  findRefreshToken,
  mayHave,
  newRefresh,
  NO_REFRESH_TOKEN,
  readPublicClient,
  REFRESH_EXPIRED,
  REFRESH_REUSED,
  REFRESH_REVOKED,
  SCOPE_NOT_GRANTED,
  SUBJECT_GONE,
  WRONG_CLIENT,
  type Grant,
  type GrantHandler,
  type GrantRequest,
  type TokenContext,
} from "./token-shared.ts";

/** The presented token's record, if it is genuine, still valid and presented by the client it was issued to. */
async function readRefreshRecord(
  context: TokenContext,
  { request, params }: GrantRequest,
  now: number,
): Promise<RefreshTokenRecord | GateError> {
  const presented = params.get("refresh_token");
  if (presented === undefined || presented === "") return NO_REFRESH_TOKEN;
  const parsed = parseRefreshToken(presented);
  const record = parsed === undefined ? undefined : await findRefreshToken(context.store, parsed);
  if (record === undefined) return BAD_REFRESH;
  const clientId = readPublicClient(request, params);
  if (clientId instanceof GateError) return clientId;
  if (clientId !== undefined && clientId !== record.clientId) return WRONG_CLIENT;
  if (record.revokedAt !== null) return REFRESH_REVOKED;
  if (record.expiresAt <= now) return REFRESH_EXPIRED;
  return record;
}

/** The account behind the token, as it is now: it must still exist and be enabled, and its current roles cap the scopes. */
async function readRefreshSubject(context: TokenContext, record: RefreshTokenRecord): Promise<Principal | GateError> {
  const username = record.subject.startsWith("user:") ? record.subject.slice(5) : undefined;
  const user = username === undefined ? undefined : await context.store.getUser(username);
  if (user === undefined || user.disabledAt !== null) return SUBJECT_GONE;
  const current = scopesForRoles(user.roles, context.roleScopes);
  const ceiling = record.scopes.filter((scope) => mayHave(current, scope));
  return {
    id: record.subject,
    kind: "user",
    name: user.username,
    scopes: ceiling,
    expiresAt: null,
    roles: user.roles,
    session: null,
    tokenId: null,
  };
}

export const refreshGrant: GrantHandler = async (context, grant): Promise<Grant | GateError> => {
  // One reading of the clock judges expiry and stamps the use, so the two cannot disagree.
  const now = context.now();
  const record = await readRefreshRecord(context, grant, now);
  if (record instanceof GateError) return record;
  const principal = await readRefreshSubject(context, record);
  if (principal instanceof GateError) return principal;
  const { scopes } = grant;
  const ceiling = principal.scopes;
  if (scopes !== undefined && !scopes.every((scope) => mayHave(ceiling, scope))) return SCOPE_NOT_GRANTED;

  const next = newRefresh(context, record.familyId, principal, scopes ?? ceiling, record.clientId);
  const outcome = await context.store.consumeRefreshToken(record.id, next.record, now, REFRESH_GRACE_MS);
  if (outcome === "reused") {
    const details = { family: record.familyId, sub: record.subject, client_id: record.clientId };
    context.logger.warn("refresh.reuse_detected", details);
    context.audit?.record("refresh.reuse_detected", details);
    context.afterRevocation();
    return REFRESH_REUSED;
  }
  if (outcome === "revoked") return REFRESH_REVOKED;
  if (outcome === "missing") return BAD_REFRESH;
  return { principal, clientId: record.clientId, ceiling, session: { familyId: record.familyId, refresh: next.token } };
};
