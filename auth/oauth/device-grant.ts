/**
 * grant_type=urn:ietf:params:oauth:grant-type:device_code (RFC 8628 §3.4–3.5): a device polls with
 * its device code until the person decides. The answers are §3.5's: authorization_pending,
 * slow_down (the device polled within its interval, which grows by 5 s), access_denied,
 * expired_token; a spent code is invalid_grant. Once approved, the device receives the person's
 * access and refresh tokens, or, when DEVICE_CLIENTS says so, an API key of its own, named after
 * it; the code is spent in the same transaction that stores the credential, so it works once.
 */
import { userPrincipal } from "../authn/users.ts";
import { GateError } from "../core/errors.ts";
import { BOOTSTRAP_PRINCIPAL, type Principal } from "../core/principal.ts";
import { deviceCredentialOf, parseDeviceCode } from "../secrets/device-codes.ts";
import { generateApiKey, keyState } from "../secrets/keys.ts";
import { generateFamilyId } from "../secrets/refresh.ts";
import { digestToken } from "../secrets/tokens.ts";
import type { DeviceAuthorizationRecord, DeviceCredentialRecord } from "../store/store.ts";
import {
  mayHave,
  newRefresh,
  readPublicClient,
  SUBJECT_GONE,
  UNSUPPORTED_GRANT,
  type DeviceGrantOptions,
  type Grant,
  type GrantHandler,
  type TokenContext,
} from "./token-shared.ts";

export const DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";
/** Wrong user codes, from everyone together, after which every waiting login is dead (odds: 100 in 20⁸). */
export const DEVICE_MAX_FAILURES = 100;

const NO_DEVICE_CODE = new GateError("invalid_request", "grant_type=urn:ietf:params:oauth:grant-type:device_code needs device_code");
const SCOPE_CHOSEN = new GateError("invalid_request", "A device's token request takes no scope: the person who approved chose it");
const NO_CLIENT_ID = new GateError("invalid_request", "A device's token request needs its client_id (RFC 8628 §3.4)");
const BAD_DEVICE_CODE = new GateError("wrong_grant_secret", "The device code is not valid");
const WRONG_CLIENT = new GateError("invalid_grant", "The device code was issued to another client");
const CODE_USED = new GateError("invalid_grant", "The device code was already used; start a new device login");
const PENDING = new GateError(
  "authorization_pending",
  "The person has not approved or denied this device yet; ask again after the interval",
);
const EXPIRED = new GateError("device_code_expired", "The device code has expired; start a new device login");
const DENIED = new GateError("device_denied", "The person denied this device");
const CLIENT_REMOVED = new GateError("invalid_grant", "This client may no longer log in as a device (DEVICE_CLIENTS)");
const LOST_SCOPES = new GateError("invalid_grant", "The person who approved no longer holds any of the scopes granted");
const NEEDS_PERSON = new GateError("invalid_grant", "Only a person's account can give a device tokens; it was approved by a key");

function slowDown(intervalSeconds: number): GateError {
  return new GateError("slow_down", `Polling too fast: wait ${intervalSeconds} seconds between requests from now on`);
}

/** What the approver can still give when the device polls: their current scopes, and when their own credential ends. */
interface Granter {
  readonly scopes: readonly string[];
  readonly expiresAt: number | null;
}

/**
 * The approver of a key-kind device as they are now: a person (enabled, their roles), the bootstrap
 * token, or a key still in force. A key's device key ends when that key does, so a short-lived key
 * cannot approve itself a permanent one.
 */
async function readGranter(context: TokenContext, record: DeviceAuthorizationRecord, now: number): Promise<Granter | GateError> {
  const approver = record.approver ?? "";
  if (approver === `key:${BOOTSTRAP_PRINCIPAL.id}`) return { scopes: BOOTSTRAP_PRINCIPAL.scopes, expiresAt: null };
  if (approver.startsWith("key:")) {
    const key = await context.store.getKey(approver.slice(4));
    if (key === undefined || keyState(key, now) !== "active") return SUBJECT_GONE;
    return { scopes: key.scopes, expiresAt: key.expiresAt };
  }
  const person = await readApprover(context, record);
  return person instanceof GateError ? person : { scopes: person.scopes, expiresAt: null };
}

/** A device's own API key, named after it, with what the approver granted and still holds. */
async function mintKey(context: TokenContext, record: DeviceAuthorizationRecord, now: number) {
  const granter = await readGranter(context, record, now);
  if (granter instanceof GateError) return granter;
  const scopes = (record.approvedScopes ?? []).filter((scope) => mayHave(granter.scopes, scope));
  if (scopes.length === 0) return LOST_SCOPES;
  const { expiresAt } = granter;
  const key = generateApiKey();
  const name = `${record.clientId} (device login)`;
  const principal: Principal = { id: key.id, kind: "key", name, scopes, expiresAt, roles: [], session: null, tokenId: null };
  const credential: DeviceCredentialRecord = {
    kind: "key",
    key: { id: key.id, name, scopes, secretHash: digestToken(key.secret), createdAt: now, expiresAt },
  };
  // RFC 6749 §5.1's shape, so any OAuth client takes it: the key is a bearer token (ending only with its approver's key).
  const answer = { access_token: key.token, token_type: "Bearer", scope: scopes.join(" "), key_id: key.id, name };
  const grant: Grant = { principal, clientId: record.clientId, ceiling: scopes, answer };
  return { credential, grant };
}

/** The person who approved, as they are now: still enabled, their current roles capping what they granted. */
async function readApprover(context: TokenContext, record: DeviceAuthorizationRecord): Promise<Principal | GateError> {
  const approver = record.approver ?? "";
  if (!approver.startsWith("user:")) return NEEDS_PERSON;
  const user = await context.store.getUser(approver.slice(5));
  if (user === undefined || user.disabledAt !== null) return SUBJECT_GONE;
  return userPrincipal(user, context.roleScopes);
}

/** The person's tokens for the device: a new refresh-token family under the device's client_id. */
async function mintTokens(context: TokenContext, record: DeviceAuthorizationRecord) {
  const principal = await readApprover(context, record);
  if (principal instanceof GateError) return principal;
  const scopes = (record.approvedScopes ?? []).filter((scope) => mayHave(principal.scopes, scope));
  if (scopes.length === 0) return LOST_SCOPES;
  const familyId = generateFamilyId();
  const refresh = newRefresh(context, familyId, principal, scopes, record.clientId);
  const credential: DeviceCredentialRecord = { kind: "refresh", token: refresh.record };
  const grant: Grant = { principal, clientId: record.clientId, ceiling: scopes, session: { familyId, refresh: refresh.token } };
  return { credential, grant };
}

/** An approved login, spent: the device's credential is stored with it, or nothing is. */
async function redeem(context: TokenContext, device: DeviceGrantOptions, record: DeviceAuthorizationRecord, now: number) {
  const kind = deviceCredentialOf(device.clients, record.clientId);
  if (kind === undefined) return CLIENT_REMOVED;
  const minted = kind === "key" ? await mintKey(context, record, now) : await mintTokens(context, record);
  if (minted instanceof GateError) return minted;
  if (!(await device.store.redeemDeviceAuthorization(record.id, now, minted.credential))) return CODE_USED;
  if (kind === "key") await device.afterKeyIssued();
  context.logger.info("device login completed", { device: record.id, client_id: record.clientId, credential: kind });
  return minted.grant;
}

export const deviceCodeGrant: GrantHandler = async (context, { request, params, scopes }) => {
  const { device } = context;
  if (device === undefined) return UNSUPPORTED_GRANT;
  if (scopes !== undefined) return SCOPE_CHOSEN;
  const presented = params.get("device_code");
  if (presented === undefined || presented === "") return NO_DEVICE_CODE;
  const clientId = readPublicClient(request, params);
  if (clientId instanceof GateError) return clientId;
  if (clientId === undefined) return NO_CLIENT_ID;
  const code = parseDeviceCode(presented);
  if (code === undefined) return BAD_DEVICE_CODE;
  // One reading of the clock judges expiry, the interval and the spending.
  const now = context.now();
  const outcome = await device.store.pollDeviceAuthorization(digestToken(code), clientId, now, DEVICE_MAX_FAILURES);
  switch (outcome.kind) {
    case "approved":
      return redeem(context, device, outcome.record, now);
    case "pending":
      return PENDING;
    case "slow_down":
      return slowDown(outcome.intervalSeconds);
    case "denied":
      return DENIED;
    case "expired":
      return EXPIRED;
    case "consumed":
      return CODE_USED;
    case "wrong_client":
      return WRONG_CLIENT;
    case "missing":
      return BAD_DEVICE_CODE;
  }
};
