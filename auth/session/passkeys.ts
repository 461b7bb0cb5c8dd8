/**
 * Passkeys (WebAuthn): a signed-in user adds one, anyone signs in with one, a user lists and
 * removes their own. Verification is @simplewebauthn/server's; this module decides what is
 * checked around it: the page's Origin, single-use challenges, user verification, the signature
 * counter, disabled users, and who may register. A passkey sign-in ends like a password one, in
 * SessionIssuer.finishSignIn.
 *
 * - `POST /auth/passkeys/register/options` (signed in) → PublicKeyCredentialCreationOptionsJSON
 * - `POST /auth/passkeys/register` (signed in) `{ response, name? }` → 201 `{ passkey }`
 * - `POST /auth/passkeys/login/options` (public) → `{ challenge_id, options }`
 * - `POST /auth/passkeys/login` (public) `{ challenge_id, response, rd? }` → the session (JSON or 303)
 * - `GET /auth/passkeys` (signed in) → `{ passkeys: [...] }`
 * - `POST|DELETE /auth/passkeys/remove` (signed in) `{ id }` → `{ removed: id }`
 */
import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import { PASSKEY_REQUIRED, userPrincipal, type PasswordAuthenticator, type RoleScopes } from "../authn/users.ts";
import type { Clock } from "../core/clock.ts";
import { GateError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import { answerStoreFailures, jsonResponse, toResponse } from "../http/responses.ts";
import type { HttpRoute, ProtectedRoute, PublicRoute } from "../http/routes.ts";
import { type PasskeyRecord, type PasskeyStore, type UserRecord, type UserStore } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";
import { CHALLENGE_ID, CHALLENGE_TTL_MS, createChallengeBook, generateChallengeId } from "./passkey-challenges.ts";
import {
  BAD_CREDENTIAL,
  judgeOrigin,
  parseAuthenticationCredential,
  parsePasskeyName,
  parseRegistrationCredential,
  PASSKEYS_OFF,
  readJsonObject,
  userHandleOf,
  type WebAuthnSettings,
} from "./passkey-requests.ts";
import { checkPassword } from "./password-check.ts";
import type { SessionIssuer } from "./sessions.ts";
import { loadWebAuthn } from "./webauthn-library.ts";

export { PASSKEYS_OFF, type WebAuthnSettings } from "./passkey-requests.ts";

export const PASSKEYS_PATH = "/auth/passkeys";
export const PASSKEY_LOGIN_PATH = `${PASSKEYS_PATH}/login`;

export interface PasskeyRouteOptions {
  readonly store: PasskeyStore & UserStore;
  /** config.webauthn: null when no domain is configured, and every endpoint then says how to set one. */
  readonly config: WebAuthnSettings | null;
  readonly issuer: SessionIssuer;
  readonly now: Clock;
  readonly audit: AuditLog;
  readonly guard: Guard;
  /** Counts refusals by kind (METRICS). */
  readonly metrics?: GateMetrics | undefined;
  readonly addressOf: AddressResolver;
  readonly roleScopes: RoleScopes;
  /** Confirms the signed-in user's password before a passkey is added or removed. */
  readonly authenticatePassword: PasswordAuthenticator;
  /** Whether a password may travel on this request's transport (TLS or loopback); absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  /** Why a passkey was refused (the library's reason), for the operator; absent: not logged. */
  readonly logger?: Logger | undefined;
}

const USERS_ONLY = new GateError("access_denied", "Only a signed-in user can have passkeys; API keys and the bootstrap token cannot");
const NO_SUCH_USER = new GateError("access_denied", "This user does not exist or is disabled, so it cannot add a passkey");
const STALE_CHALLENGE = new GateError(
  "invalid_request",
  "The passkey challenge is unknown, expired (after 5 minutes) or used already; start again",
);
const BAD_CHALLENGE_ID = new GateError("invalid_request", "challenge_id must be the one /auth/passkeys/login/options returned");
const BAD_RD = new GateError("invalid_request", "rd must be a string (the address to return to)");
const REGISTRATION_REFUSED = new GateError(
  "invalid_request",
  "The new passkey could not be verified: it must be made on this site's page, for the challenge just given, with user verification",
);
const DUPLICATE = new GateError("invalid_request", "This passkey is registered already");
const UNKNOWN_PASSKEY = new GateError(
  "invalid_credentials",
  "This passkey is not registered here (it may have been removed); sign in another way",
);
const PASSKEY_REFUSED = new GateError("invalid_credentials", "The passkey's answer could not be verified (with user verification)");
const COUNTER_WENT_BACK = new GateError(
  "invalid_credentials",
  "The passkey's signature counter went backwards, so it may have been copied; it is refused. Sign in another way and check your passkeys",
);
const DISABLED_USER = new GateError("access_denied", "This user is disabled");
const BAD_ID = new GateError("invalid_request", "id must be the id of one of your passkeys (see GET /auth/passkeys)");
const NOT_YOURS = new GateError("not_found", "You have no passkey with that id");
const LAST_REQUIRED = new GateError(
  "access_denied",
  "An administrator requires a passkey for this account: add another passkey before removing the last one",
);

/** Pending registrations are keyed by who asked, per sign-in: one browser's answer cannot finish another's. */
const registrationKey = (principal: Principal) => `${principal.id}\n${principal.session ?? ""}`;

const describePasskey = (passkey: PasskeyRecord) => ({
  id: passkey.id,
  name: passkey.name,
  transports: passkey.transports,
  created_at: new Date(passkey.createdAt).toISOString(),
  last_used_at: passkey.lastUsedAt === null ? null : new Date(passkey.lastUsedAt).toISOString(),
});

export function createPasskeyRoutes(options: PasskeyRouteOptions): HttpRoute[] {
  const registration = createRegistration(options);
  const login = createLogin(options);
  const own = createOwnPasskeys(options);
  return [
    protectedRoute(`${PASSKEYS_PATH}/register/options`, ["POST"], registration.offer),
    protectedRoute(`${PASSKEYS_PATH}/register`, ["POST"], registration.finish),
    { kind: "http", path: `${PASSKEY_LOGIN_PATH}/options`, methods: ["POST"], scope: null, handle: answerStoreFailures(login.offer) },
    { kind: "http", path: PASSKEY_LOGIN_PATH, methods: ["POST"], scope: null, guarded: true, handle: answerStoreFailures(login.finish) },
    protectedRoute(PASSKEYS_PATH, ["GET", "HEAD"], own.list),
    protectedRoute(`${PASSKEYS_PATH}/remove`, ["POST", "DELETE"], own.remove),
  ];
}

/** Any signed-in principal reaches the handler (scope ""), which decides whether it may. */
function protectedRoute(path: string, methods: readonly string[], handle: ProtectedRoute["handle"]): ProtectedRoute {
  return { kind: "http", path, methods, scope: "", handle: answerStoreFailures(handle) };
}

/** The settings and the page origin a WebAuthn ceremony may go ahead with, or why not. */
function ceremonyGround(request: Request, config: WebAuthnSettings | null): { settings: WebAuthnSettings; origin: string } | GateError {
  if (config === null) return PASSKEYS_OFF;
  const origin = judgeOrigin(request, config);
  return origin instanceof GateError ? origin : { settings: config, origin };
}

const NO_PASSWORD = new GateError("invalid_request", "Send the account's password (password) to add or remove a passkey");

/**
 * Adding or removing a passkey changes how the account signs in, so the session alone is not
 * enough: a page that shares the gate's origin (a service under a path prefix, an XSS in one)
 * could ride the cookie. The account's password is asked again; a wrong one counts as a guess.
 */
async function confirmPassword(
  options: PasskeyRouteOptions,
  request: Request,
  server: GateServer,
  user: UserRecord,
  password: unknown,
  path: string,
): Promise<GateError | undefined> {
  if (typeof password !== "string" || password === "") return NO_PASSWORD;
  // A user who must use passkeys still has a password: it confirms, though it opens no session.
  const who = await checkPassword(options, request, server, { username: user.username, password, path }, PASSKEY_REQUIRED);
  return who instanceof GateError && who !== PASSKEY_REQUIRED ? who : undefined;
}

/** The signed-in user who may hold passkeys, or why not. */
async function findOwner(store: UserStore, principal: Principal): Promise<UserRecord | GateError> {
  if (principal.kind !== "user") return USERS_ONLY;
  const user = await store.getUser(principal.name);
  return user === undefined || user.disabledAt !== null ? NO_SUCH_USER : user;
}

/**
 * Creation options: a resident (discoverable) key, so sign-in needs no username; user verification,
 * so the passkey alone is two factors; no attestation (which authenticator it is does not matter
 * here); and never a second passkey on an authenticator that holds one of this user's already.
 */
async function offerCreation(settings: WebAuthnSettings, username: string, existing: readonly PasskeyRecord[]) {
  return (await loadWebAuthn()).generateRegistrationOptions({
    rpName: "tokengate",
    rpID: settings.rpId,
    userName: username,
    userID: userHandleOf(username),
    userDisplayName: username,
    timeout: CHALLENGE_TTL_MS,
    attestationType: "none",
    excludeCredentials: existing.map((passkey) => ({ id: passkey.id, transports: [...passkey.transports] })),
    authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: "required" },
  });
}

function createRegistration(options: PasskeyRouteOptions) {
  const { store, now, audit } = options;
  const pending = createChallengeBook(now);

  /** Creation options for the signed-in user, remembered per sign-in until the answer comes back. */
  const offer: ProtectedRoute["handle"] = async (request, principal, server) => {
    const ground = ceremonyGround(request, options.config);
    if (ground instanceof GateError) return toResponse(ground);
    const user = await findOwner(store, principal);
    if (user instanceof GateError) return toResponse(user);
    const body = await readJsonObject(request);
    if (body instanceof GateError) return toResponse(body);
    const unconfirmed = await confirmPassword(options, request, server, user, body.password, `${PASSKEYS_PATH}/register/options`);
    if (unconfirmed !== undefined) return toResponse(unconfirmed);
    const creation = await offerCreation(ground.settings, user.username, await store.listPasskeys(user.username));
    pending.put(registrationKey(principal), creation.challenge);
    return jsonResponse(200, JSON.stringify(creation));
  };

  /** Verifies the new credential against the challenge this sign-in was given, then stores it. */
  const finish: ProtectedRoute["handle"] = async (request, principal) => {
    const ground = ceremonyGround(request, options.config);
    if (ground instanceof GateError) return toResponse(ground);
    const user = await findOwner(store, principal);
    if (user instanceof GateError) return toResponse(user);
    const body = await readJsonObject(request);
    if (body instanceof GateError) return toResponse(body);
    const response = parseRegistrationCredential(body.response);
    if (response === undefined) return toResponse(BAD_CREDENTIAL);
    const name = parsePasskeyName(body.name, now());
    if (name instanceof GateError) return toResponse(name);
    const challenge = pending.take(registrationKey(principal));
    if (challenge === undefined) return toResponse(STALE_CHALLENGE);
    const verified = await (
      await loadWebAuthn()
    )
      .verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: ground.origin,
        expectedRPID: ground.settings.rpId,
        requireUserVerification: true,
      })
      .catch((error: unknown) => noteRefusal(options, "registration", error));
    if (verified === undefined || !verified.verified) return toResponse(REGISTRATION_REFUSED);
    const { credential } = verified.registrationInfo;
    const record = {
      id: credential.id,
      username: user.username,
      publicKey: credential.publicKey,
      counter: credential.counter,
      transports: credential.transports ?? [],
      name,
      createdAt: now(),
    };
    if (!(await store.insertPasskey(record))) return toResponse(DUPLICATE);
    audit.record("passkey.added", { user: user.username, passkey: record.id, name });
    return jsonResponse(201, JSON.stringify({ passkey: describePasskey({ ...record, lastUsedAt: null }) }));
  };

  return { offer, finish };
}

/** The library's reason for a refusal goes to the log (it may quote what the client sent; the client never sees it). */
function noteRefusal(options: PasskeyRouteOptions, ceremony: string, error: unknown): undefined {
  // The text may quote the expected challenge or the client's values: long base64url runs are cut out.
  const reason = (error instanceof Error ? error.message : "unknown").replace(/[A-Za-z0-9_+/=-]{16,}/g, "…").slice(0, 200);
  options.logger?.info(`passkey ${ceremony} refused`, { reason });
  return undefined;
}

/**
 * WebAuthn §6.1.1: a counter that does not move forward (where either side counts at all) may be a
 * cloned authenticator. Judged here on the verified value rather than from the library's error text.
 */
const counterWentBack = (stored: number, presented: number) => (stored > 0 || presented > 0) && presented <= stored;

function createLogin(options: PasskeyRouteOptions) {
  const { store, now, issuer } = options;
  const pending = createChallengeBook(now);

  const refuse = (request: Request, server: GateServer, error: GateError, username?: string) =>
    toResponse(settleRefusal(options, { error, address: options.addressOf(request, server), path: PASSKEY_LOGIN_PATH, username }));

  /** Request options for a discoverable credential: no list of credentials, so the browser offers the passkeys it has. */
  const offer: PublicRoute["handle"] = async (request) => {
    const ground = ceremonyGround(request, options.config);
    if (ground instanceof GateError) return toResponse(ground);
    const request_ = await (
      await loadWebAuthn()
    ).generateAuthenticationOptions({
      rpID: ground.settings.rpId,
      allowCredentials: [],
      userVerification: "required",
      timeout: CHALLENGE_TTL_MS,
    });
    const challengeId = generateChallengeId();
    pending.put(challengeId, request_.challenge);
    return jsonResponse(200, JSON.stringify({ challenge_id: challengeId, options: request_ }));
  };

  /** The passkey's assertion, verified against its stored key and counter; then a session, like any sign-in. */
  const finish: PublicRoute["handle"] = async (request, _principal, server) => {
    const ground = ceremonyGround(request, options.config);
    if (ground instanceof GateError) return toResponse(ground);
    const body = await readJsonObject(request);
    if (body instanceof GateError) return toResponse(body);
    if (typeof body.challenge_id !== "string" || !CHALLENGE_ID.test(body.challenge_id)) return toResponse(BAD_CHALLENGE_ID);
    if (body.rd !== undefined && body.rd !== null && typeof body.rd !== "string") return toResponse(BAD_RD);
    const response = parseAuthenticationCredential(body.response);
    if (response === undefined) return toResponse(BAD_CREDENTIAL);
    const challenge = pending.take(body.challenge_id);
    if (challenge === undefined) return toResponse(STALE_CHALLENGE);
    const found = await findPasskeyOwner(store, response);
    if (found instanceof GateError) return refuse(request, server, found);
    const { passkey, user } = found;
    if (user.disabledAt !== null) return refuse(request, server, DISABLED_USER, user.username);
    const outcome = await verifyAssertion(options, { response, challenge, origin: ground.origin, settings: ground.settings, passkey });
    if (outcome instanceof GateError) return refuse(request, server, outcome, user.username);
    // The store refuses a counter that another sign-in moved meanwhile: two replays cannot both pass.
    if (!(await store.recordPasskeyUse(passkey.id, outcome, now()))) return refuse(request, server, COUNTER_WENT_BACK, user.username);
    const rd = typeof body.rd === "string" ? body.rd : undefined;
    return issuer.finishSignIn(request, server, userPrincipal(user, options.roleScopes), "passkey", rd);
  };

  return { offer, finish };
}

/** The stored passkey the browser named and its user, when both exist and the user handle agrees. */
async function findPasskeyOwner(
  store: PasskeyStore & UserStore,
  response: AuthenticationResponseJSON,
): Promise<{ passkey: PasskeyRecord; user: UserRecord } | GateError> {
  const passkey = await store.getPasskey(response.id);
  const user = passkey === undefined ? undefined : await store.getUser(passkey.username);
  if (passkey === undefined || user === undefined) return UNKNOWN_PASSKEY;
  // A discoverable credential says whose it is; it must be the account the passkey was stored for.
  const handle = response.response.userHandle;
  if (typeof handle === "string" && handle !== Buffer.from(userHandleOf(user.username)).toString("base64url")) return UNKNOWN_PASSKEY;
  return { passkey, user };
}

interface Assertion {
  readonly response: AuthenticationResponseJSON;
  readonly challenge: string;
  readonly origin: string;
  readonly settings: WebAuthnSettings;
  readonly passkey: PasskeyRecord;
}

/** The new signature counter of a verified assertion, or the refusal. */
async function verifyAssertion(options: PasskeyRouteOptions, assertion: Assertion): Promise<number | GateError> {
  const { passkey } = assertion;
  try {
    const verified = await (
      await loadWebAuthn()
    ).verifyAuthenticationResponse({
      response: assertion.response,
      expectedChallenge: assertion.challenge,
      expectedOrigin: assertion.origin,
      expectedRPID: assertion.settings.rpId,
      // Counter 0 here: the library then never refuses for the counter, and counterWentBack decides below.
      credential: { id: passkey.id, publicKey: new Uint8Array(passkey.publicKey), counter: 0, transports: [] },
      requireUserVerification: true,
    });
    if (!verified.verified) return PASSKEY_REFUSED;
    const presented = verified.authenticationInfo.newCounter;
    return counterWentBack(passkey.counter, presented) ? COUNTER_WENT_BACK : presented;
  } catch (error) {
    noteRefusal(options, "sign-in", error);
    return PASSKEY_REFUSED;
  }
}

function createOwnPasskeys(options: PasskeyRouteOptions) {
  const { store, audit } = options;

  const list: ProtectedRoute["handle"] = async (_request, principal) => {
    if (principal.kind !== "user") return toResponse(USERS_ONLY);
    const passkeys = await store.listPasskeys(principal.name);
    return jsonResponse(200, JSON.stringify({ passkeys: passkeys.map(describePasskey) }));
  };

  /** Removes one of the caller's own passkeys; never the last one of an account that must use passkeys. */
  const remove: ProtectedRoute["handle"] = async (request, principal, server) => {
    const ground = ceremonyGround(request, options.config);
    if (ground instanceof GateError && ground !== PASSKEYS_OFF) return toResponse(ground);
    const owner = await findOwner(store, principal);
    if (owner instanceof GateError) return toResponse(owner);
    const body = await readJsonObject(request);
    if (body instanceof GateError) return toResponse(body);
    const unconfirmed = await confirmPassword(options, request, server, owner, body.password, `${PASSKEYS_PATH}/remove`);
    if (unconfirmed !== undefined) return toResponse(unconfirmed);
    if (typeof body.id !== "string" || !/^[A-Za-z0-9_-]{1,1400}$/.test(body.id)) return toResponse(BAD_ID);
    // The store judges the last-passkey rule in the removal's own transaction (one rule with the admin's removal).
    const outcome = await store.removePasskeyUnlessLastRequired(body.id, principal.name);
    if (outcome === "missing") return toResponse(NOT_YOURS);
    if (outcome === "last_required") return toResponse(LAST_REQUIRED);
    audit.record("passkey.removed", { user: principal.name, passkey: body.id, by: "user" });
    return jsonResponse(200, JSON.stringify({ removed: body.id }));
  };

  return { list, remove };
}
