/**
 * The person's side of a device login (RFC 8628 §3.3), for the console's device view: JSON
 * endpoints for anyone signed in (the session cookie, with the gate's CSRF rule, or a token).
 * Refusals come in the token endpoint's shape (`error`, `error_description`, `code`, `detail`).
 *
 *   POST /auth/device/lookup   {user_code}            what the device asks for, from where, until when
 *   POST /auth/device/approve  {user_code, scopes?}   approve, narrowing the scopes if wished
 *   POST /auth/device/deny     {user_code}            deny
 *
 * Typed codes are guessable (20⁸), so they are guarded like pairing codes: a code that names no
 * waiting device counts toward the bans of the client's address and of the signed-in typist (10 a
 * minute each; the typist's own subject, `codes:…`, one lookup at a time) and against every waiting device, which dies after DEVICE_MAX_FAILURES of them from
 * anywhere. The approver grants at most what the
 * device asked for and what they hold themselves; decisions are audited.
 */
import { subjectOf } from "../authn/principals.ts";
import { GateError, tooManyAttempts } from "../core/errors.ts";
import { ADMIN_SCOPE, ANY_SCOPE, hasScope, type Principal } from "../core/principal.ts";
import { isoOrNull } from "../core/times.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal, TYPIST_PREFIX } from "../guard/refusals.ts";
import type { AddressResolver } from "../http/clients.ts";
import { answerStoreFailures, jsonResponse, readJsonObject, toOAuthResponse } from "../http/responses.ts";
import type { ProtectedRoute } from "../http/routes.ts";
import { completeVerificationUri, deviceCredentialOf, formatUserCode, parseUserCode, type DeviceClients } from "../secrets/device-codes.ts";
import { parseScopes } from "../secrets/keys.ts";
import { digestToken } from "../secrets/tokens.ts";
import type { DeviceAuthorizationRecord, DeviceDecision, DeviceStore } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";
import { DEVICE_MAX_FAILURES } from "./device-grant.ts";

export const DEVICE_LOOKUP_PATH = "/auth/device/lookup";
export const DEVICE_APPROVE_PATH = "/auth/device/approve";
export const DEVICE_DENY_PATH = "/auth/device/deny";

export interface ApprovalOptions {
  readonly store: DeviceStore;
  readonly clients: DeviceClients;
  readonly addressOf: AddressResolver;
  readonly guard: Guard;
  readonly audit: AuditLog;
  /** Counts the refusals of user-code entry (tokengate_refusals_total). */
  readonly metrics?: GateMetrics | undefined;
  readonly now: () => number;
  readonly servesServiceHost: (host: string | null) => boolean;
  /** verification_uri as this request names it (the QR code on the page carries it). */
  readonly pageUri: (request: Request, server: GateServer) => string;
}

const NOT_HERE = new GateError("not_found", "Not Found");
const SCOPE_SPELLING = new GateError("invalid_request", 'Send the scopes to grant as "scopes", a list such as ["data:read"]');
const BAD_USER_CODE = new GateError("invalid_request", "user_code must be the 8 letters the device shows, such as BDWP-HQPK");
const WRONG_USER_CODE = new GateError(
  "wrong_grant_secret",
  "That code is wrong, has expired or was already used: check the device's screen, or start again on the device",
);
const BAD_SCOPES = new GateError("invalid_request", 'scopes must be a list of scope names such as ["data:read"]');
const NO_SCOPES = new GateError("invalid_request", "Choose at least one scope, or deny the device");
const NOT_ASKED = new GateError("invalid_scope", "You can only narrow what the device asked for, not add to it");
const NOT_YOURS = new GateError("invalid_scope", "You can give a device only scopes you hold yourself; untick the others");
const ADMIN_NEEDED = new GateError(
  "access_denied",
  "This device receives an API key of its own, and only an admin may make keys: ask one to approve it",
);
const PERSON_NEEDED = new GateError(
  "access_denied",
  "This device receives a person's tokens: sign in with your own account (a username), not a key, to approve it",
);
const CLIENT_REMOVED = new GateError("access_denied", "This client may no longer log in as a device (DEVICE_CLIENTS)");
const DECIDED_MEANWHILE = new GateError("conflict", "The device was approved, denied or expired meanwhile");
// invalid_grant, as a wrong code is told, but no guess: it is not counted.
const CODE_ENDED = new GateError(
  "invalid_grant",
  "That code was already approved, denied or used, or it has expired: if the device still needs to log in, start again on it",
);

/** What the person sent: the code, and for an approval the scopes chosen (`undefined`: all that were asked). */
interface CodeRequest {
  readonly userCode: string;
  readonly scopes: readonly string[] | undefined;
}

/** A JSON list of scope names, or `undefined` when it is not one. */
function readScopeList(value: unknown): string[] | undefined {
  if (!Array.isArray(value) || value.length > 64 || !value.every((entry) => typeof entry === "string")) return undefined;
  if (value.length === 0) return [];
  const parsed = parseScopes(value.join(" "));
  return parsed !== undefined && parsed.length === new Set(value).size ? parsed : undefined;
}

async function readCodeRequest(request: Request): Promise<CodeRequest | GateError> {
  const body = await readJsonObject(request);
  if (body instanceof GateError) return body;
  const userCode = typeof body.user_code === "string" ? parseUserCode(body.user_code) : undefined;
  if (userCode === undefined) return BAD_USER_CODE;
  // `scope` (the OAuth spelling) would otherwise be ignored and grant all that was asked: say which name counts.
  if (body.scope !== undefined) return SCOPE_SPELLING;
  if (body.scopes === undefined) return { userCode, scopes: undefined };
  const scopes = readScopeList(body.scopes);
  return scopes === undefined ? BAD_SCOPES : { userCode, scopes };
}

/** One call of an approval endpoint, the login found: what the step works on. */
interface ApprovalCall {
  readonly request: Request;
  readonly server: GateServer;
  readonly principal: Principal;
  readonly asked: CodeRequest;
  readonly login: DeviceAuthorizationRecord;
}

type Step = (call: ApprovalCall) => Promise<Record<string, unknown> | GateError>;

/**
 * Who typed a code, as the guard counts them: `codes:key:<id>` or `codes:user:<name>` (the bootstrap
 * token: nobody, only its address). A subject of its own: others' wrong passwords for that person,
 * or wrong secrets for that key, do not shut them out of this page.
 */
function typistOf(principal: Principal): string | undefined {
  return principal.kind === "bootstrap" ? undefined : `${TYPIST_PREFIX}${subjectOf(principal)}`;
}

const ONE_AT_A_TIME = new GateError("too_many_requests", "One code at a time: wait for the answer to the last one", {
  headers: { "retry-after": "1" },
});

/**
 * The waiting login a typed code names, or the refusal. A miss counts toward the bans of the
 * address and of the typist (so more addresses buy no more guesses), and against every waiting
 * login. A banned typist is refused before the lookup, where a right code would not help; so is a
 * typist whose previous code is still being looked up (a burst would pass the ban check all at once).
 */
async function findLogin(options: ApprovalOptions, typing: Set<string>, call: Omit<ApprovalCall, "login">, path: string) {
  const address = options.addressOf(call.request, call.server);
  const typist = typistOf(call.principal);
  if (typist !== undefined) {
    const wait = options.guard.retryAfter(address, typist);
    if (wait > 0) return tooManyAttempts(wait);
    if (typing.has(typist)) return ONE_AT_A_TIME;
    typing.add(typist);
  }
  try {
    const found = await options.store.findDeviceAuthorization(digestToken(call.asked.userCode), options.now(), DEVICE_MAX_FAILURES);
    if (found === "ended") return CODE_ENDED;
    return found ?? settleRefusal(options, { error: WRONG_USER_CODE, address, path, account: typist });
  } finally {
    if (typist !== undefined) typing.delete(typist);
  }
}

/** A protected JSON endpoint of the device view: the code read and looked up, then its step. */
function approvalRoute(options: ApprovalOptions, typing: Set<string>, path: string, step: Step): ProtectedRoute {
  return {
    kind: "http",
    path,
    methods: ["POST"],
    scope: ANY_SCOPE,
    handle: answerStoreFailures(async (request, principal, server) => {
      if (options.servesServiceHost(request.headers.get("host"))) return toOAuthResponse(NOT_HERE);
      const asked = await readCodeRequest(request);
      if (asked instanceof GateError) return toOAuthResponse(asked);
      const login = await findLogin(options, typing, { request, server, principal, asked }, path);
      if (login instanceof GateError) return toOAuthResponse(login);
      const answer = await step({ request, server, principal, asked, login });
      return answer instanceof GateError ? toOAuthResponse(answer) : jsonResponse(200, JSON.stringify(answer));
    }),
  };
}

/** The scopes to grant: a narrowing of what the device asked for, within what the approver holds. */
function chooseScopes(login: DeviceAuthorizationRecord, principal: Principal, chosen: readonly string[] | undefined) {
  const scopes = chosen ?? login.scopes;
  if (scopes.length === 0) return NO_SCOPES;
  if (!scopes.every((scope) => login.scopes.includes(scope))) return NOT_ASKED;
  return scopes.every((scope) => hasScope(principal, scope)) ? scopes : NOT_YOURS;
}

/** Whether this approver can give the device what it receives: a person's tokens need a person. */
function approverFits(options: ApprovalOptions, login: DeviceAuthorizationRecord, principal: Principal): GateError | undefined {
  const credential = deviceCredentialOf(options.clients, login.clientId);
  if (credential === undefined) return CLIENT_REMOVED;
  // A key outlives whoever approved it (as a key made in the admin API does): only an admin may make one.
  if (credential === "key") return hasScope(principal, ADMIN_SCOPE) ? undefined : ADMIN_NEEDED;
  return principal.kind !== "user" ? PERSON_NEEDED : undefined;
}

function describeLogin(options: ApprovalOptions, { request, server, principal, asked, login }: ApprovalCall) {
  return {
    user_code: formatUserCode(asked.userCode),
    client_id: login.clientId,
    scopes: login.scopes,
    grantable: login.scopes.filter((scope) => hasScope(principal, scope)),
    credential: deviceCredentialOf(options.clients, login.clientId) ?? null,
    approvable: approverFits(options, login, principal) === undefined,
    requested_from: login.clientAddress,
    requested_at: isoOrNull(login.createdAt),
    expires_at: isoOrNull(login.expiresAt),
    verification_uri_complete: completeVerificationUri(options.pageUri(request, server), asked.userCode),
  };
}

/** Records a decision on a login that still waits, and audits it. */
async function recordDecision(options: ApprovalOptions, call: ApprovalCall, decision: DeviceDecision) {
  const decided = await options.store.decideDeviceAuthorization(call.login.id, decision, DEVICE_MAX_FAILURES);
  if (decided === undefined) return DECIDED_MEANWHILE;
  const { principal, login } = call;
  options.audit.record(decision.kind === "approve" ? "device.approved" : "device.denied", {
    device: login.id,
    client_id: login.clientId,
    scopes: decision.kind === "approve" ? decision.scopes.join(" ") : undefined,
    by: principal.id,
    by_kind: principal.kind,
    address: options.addressOf(call.request, call.server),
    requested_from: login.clientAddress,
  });
  return decided;
}

export function createApprovalRoutes(options: ApprovalOptions): ProtectedRoute[] {
  const approve: Step = async (call) => {
    const unfit = approverFits(options, call.login, call.principal);
    if (unfit !== undefined) return unfit;
    const scopes = chooseScopes(call.login, call.principal, call.asked.scopes);
    if (scopes instanceof GateError) return scopes;
    const approver = subjectOf(call.principal);
    const decided = await recordDecision(options, call, { kind: "approve", scopes, approver, at: options.now() });
    return decided instanceof GateError ? decided : { approved: true, client_id: decided.clientId, scopes };
  };
  const deny: Step = async (call) => {
    const decision: DeviceDecision = { kind: "deny", approver: subjectOf(call.principal), at: options.now() };
    const decided = await recordDecision(options, call, decision);
    return decided instanceof GateError ? decided : { denied: true, client_id: decided.clientId };
  };
  // Typists with a code being looked up now, on this instance: one at a time each.
  const typing = new Set<string>();
  return [
    approvalRoute(options, typing, DEVICE_LOOKUP_PATH, async (call) => describeLogin(options, call)),
    approvalRoute(options, typing, DEVICE_APPROVE_PATH, approve),
    approvalRoute(options, typing, DEVICE_DENY_PATH, deny),
  ];
}
