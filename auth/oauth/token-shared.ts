/**
 * What the token endpoint's grants and its revocation share: the endpoint's options, its refusals
 * (RFC 6749 §5.2 wording, one constant each), reading the client from HTTP Basic or the form, and
 * minting refresh tokens.
 */
import { parseAuthorization, parseBasicCredentials } from "../authn/credentials.ts";
import { subjectOf } from "../authn/principals.ts";
import type { PasswordAuthenticator, RoleScopes } from "../authn/users.ts";
import { GateError, type GateErrorKind } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { peerAddress, type AddressResolver, type TransportCheck } from "../http/clients.ts";
import { looksLikeJwt, type KeySet, type TokenSettings } from "../secrets/jwt.ts";
import { parseApiKey } from "../secrets/keys.ts";
import { CLIENT_NAME } from "../secrets/device-codes.ts";
import { generateRefreshToken, type parseRefreshToken } from "../secrets/refresh.ts";
import { digestToken, tokenMatchesDigest } from "../secrets/tokens.ts";
import type { DeviceClients } from "../secrets/device-codes.ts";
import type { DeviceStore, KeyStore, NewRefreshToken, RefreshStore, RefreshTokenRecord, UserStore } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";

export interface TokenEndpointOptions {
  /** The current key set; replaced when the signing keys are rotated. */
  readonly keys: () => KeySet;
  readonly settings: TokenSettings;
  /** Verifies passwords for grant_type=password; undefined when that grant is disabled. */
  readonly authenticatePassword: PasswordAuthenticator | undefined;
  /** Verifies an API key presented as a client secret. */
  readonly authenticateKey: (token: string) => Principal | GateError | Promise<Principal | GateError>;
  /** Keys are read only to judge a key that approved a device login (device-grant.ts). */
  readonly store: RefreshStore & UserStore & Pick<KeyStore, "getKey">;
  readonly roleScopes: RoleScopes;
  /** Refresh-token lifetime, seconds. */
  readonly refreshTtl: number;
  /** Runs after a revocation so open sockets and caches follow at once. */
  readonly afterRevocation: () => void;
  /** Counts guesses (wrong passwords, unknown refresh tokens, wrong client secrets) toward a ban. */
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
  /** Counts refusals by kind (METRICS). */
  readonly metrics?: GateMetrics | undefined;
  readonly addressOf?: AddressResolver | undefined;
  /** Whether a password may be accepted on this request's transport; absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  readonly logger: Logger;
  readonly now: () => number;
  /** The device_code grant (RFC 8628); absent: refused as an unsupported grant type. */
  readonly device?: DeviceGrantOptions | undefined;
}

/** What the device_code grant needs besides the endpoint's own options. */
export interface DeviceGrantOptions {
  readonly store: DeviceStore;
  readonly clients: DeviceClients;
  /** Makes a device's new API key usable on this instance before the device receives it. */
  readonly afterKeyIssued: () => Promise<void>;
}

/** The options with their defaults filled in, once: what every grant and handler reads. */
export interface TokenContext extends TokenEndpointOptions {
  readonly addressOf: AddressResolver;
}

export function createTokenContext(options: TokenEndpointOptions): TokenContext {
  return { ...options, addressOf: options.addressOf ?? peerAddress };
}

/** One token request, read once and handed to the grant it names. */
export interface GrantRequest {
  readonly request: Request;
  readonly server: GateServer;
  readonly params: Map<string, string>;
  /** The `scope` asked for, already parsed; `undefined` when the client asked for none. */
  readonly scopes: readonly string[] | undefined;
}

/** What a grant vouches for: the token endpoint turns it into an access token (and a refresh token). */
export interface Grant {
  readonly principal: Principal;
  readonly clientId: string;
  /** Scopes the grant may give at most (the principal's, or the refresh token's). */
  readonly ceiling: readonly string[];
  /** For password and refresh grants: the session the tokens belong to. */
  readonly session?: { readonly familyId: string; readonly refresh: string };
  /** A grant that issued its own credential (a device's API key): the token response's body, answered as it is. */
  readonly answer?: Readonly<Record<string, unknown>>;
}

export type GrantHandler = (context: TokenContext, grant: GrantRequest) => Promise<Grant | GateError>;

export const CLIENT_CHALLENGE = { "www-authenticate": 'Basic realm="tokengate", charset="UTF-8"' };

function oauthError(kind: GateErrorKind, description: string, headers?: Record<string, string>): GateError {
  return new GateError(kind, description, headers === undefined ? {} : { headers });
}

/** A client that authenticated as a key that was genuine once: it is told why (revoked, expired). */
export function clientRefusedFor(why: GateError): GateError {
  return oauthError("invalid_client", `Client authentication failed: ${why.description.toLowerCase()}`, CLIENT_CHALLENGE);
}

export const NO_GRANT = oauthError("invalid_request", "grant_type is required");
export const UNSUPPORTED_GRANT = oauthError(
  "unsupported_grant_type",
  "Supported grant types: password, client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:device_code",
);
export const PASSWORD_GRANT_OFF = oauthError("unsupported_grant_type", "grant_type=password is disabled on this server");
export const NO_PASSWORD = oauthError("invalid_request", "grant_type=password needs username and password");
export const BAD_CLIENT = oauthError(
  "wrong_client_secret",
  "Client authentication failed: client_id must be an API key id and client_secret that key",
  CLIENT_CHALLENGE,
);
const NO_CLIENT = oauthError(
  "invalid_client",
  "Client authentication is required: HTTP Basic or client_id and client_secret",
  CLIENT_CHALLENGE,
);
const TWO_CLIENT_AUTHS = oauthError("invalid_request", "Use one client authentication method, not both HTTP Basic and form parameters");
export const WRONG_PASSWORD_GRANT = oauthError("wrong_grant_secret", "Wrong username or password");
export const BAD_SCOPE = oauthError("invalid_scope", "scope must be space-separated scope names such as data:read ws:connect");
export const SCOPE_NOT_GRANTED = oauthError("invalid_scope", "The requested scope exceeds what this account may have");
/** Not Basic, or Basic that does not decode: a client bug, not a guessed secret. */
const MALFORMED_CLIENT_AUTH = oauthError(
  "invalid_client",
  "Client authentication must be HTTP Basic (client_id and an empty password) or the client_id form field",
  CLIENT_CHALLENGE,
);
const BAD_CLIENT_ID = oauthError(
  "invalid_request",
  "client_id must be a name of 1 to 64 letters, digits or . _ : - characters, not a key or token",
);
/** A public client's name: short and plain, so it can be logged and stored; a credential pasted here is refused. */
const isClientName = (text: string) => CLIENT_NAME.test(text) && parseApiKey(text) === undefined && !looksLikeJwt(text);
export const NO_REFRESH_TOKEN = oauthError("invalid_request", "grant_type=refresh_token needs refresh_token");
export const BAD_REFRESH = oauthError("wrong_grant_secret", "The refresh token is not valid");
export const REFRESH_EXPIRED = oauthError("invalid_grant", "The refresh token has expired; sign in again");
export const REFRESH_REVOKED = oauthError("invalid_grant", "The refresh token has been revoked; sign in again");
export const REFRESH_REUSED = oauthError(
  "invalid_grant",
  "The refresh token was already used; the session has been revoked, sign in again",
);
export const SUBJECT_GONE = oauthError("invalid_grant", "The account behind this refresh token is disabled or gone");
export const WRONG_CLIENT = oauthError("invalid_grant", "The refresh token was issued to another client");
export const NO_TOKEN_PARAM = oauthError("invalid_request", "token is required");
const PUBLIC_CLIENT_SECRET = oauthError(
  "invalid_client",
  "Public clients have no secret here: send client_id alone (HTTP Basic with an empty password, or the client_id form field)",
  CLIENT_CHALLENGE,
);
const CLIENT_ID_MISMATCH = oauthError("invalid_request", "client_id differs between HTTP Basic and the form; send one client_id");

/** RFC 6749 §2.3.1: client id and secret are form-encoded before they go into Basic. */
function formDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

/** The Basic credentials of an `Authorization` header, form-decoded; `undefined` when it holds none. */
function readBasicClient(header: string): { readonly clientId: string | undefined; readonly secret: string | undefined } | undefined {
  const parsed = parseAuthorization(header);
  const basic = parsed?.scheme === "basic" ? parseBasicCredentials(parsed.value) : undefined;
  return basic === undefined ? undefined : { clientId: formDecode(basic.username), secret: formDecode(basic.password) };
}

export interface ClientCredentials {
  readonly clientId: string;
  readonly secret: string;
}

/** A confidential client (client_credentials): its id and secret from HTTP Basic or the form, never both. */
export function readClient(request: Request, params: Map<string, string>): ClientCredentials | GateError {
  const header = request.headers.get("authorization");
  const formId = params.get("client_id");
  const formSecret = params.get("client_secret");
  if (header !== null) {
    if (formSecret !== undefined) return TWO_CLIENT_AUTHS;
    const basic = readBasicClient(header);
    if (basic === undefined) return MALFORMED_CLIENT_AUTH;
    const { clientId, secret } = basic;
    // Basic that does not decode is a client bug, not a guessed secret: refused, never counted.
    return clientId === undefined || secret === undefined ? MALFORMED_CLIENT_AUTH : { clientId, secret };
  }
  if (formId === undefined || formSecret === undefined) return NO_CLIENT;
  return { clientId: formId, secret: formSecret };
}

/**
 * The `client_id` of a public client (password and refresh grants), from HTTP Basic with an empty
 * secret (RFC 6749 §2.3.1; what requests-oauthlib sends by default) or from the form: `undefined`
 * when neither names one, the refusal when they disagree or carry a secret.
 */
export function readPublicClient(request: Request, params: Map<string, string>): string | GateError | undefined {
  const header = request.headers.get("authorization");
  const formId = params.get("client_id");
  let clientId = formId;
  if (header !== null) {
    const basic = readBasicClient(header);
    if (basic?.clientId === undefined) return MALFORMED_CLIENT_AUTH;
    if (basic.secret !== "" || params.has("client_secret")) return PUBLIC_CLIENT_SECRET;
    if (formId !== undefined && formId !== basic.clientId) return CLIENT_ID_MISMATCH;
    clientId = basic.clientId;
  }
  if (header === null && params.has("client_secret")) return PUBLIC_CLIENT_SECRET;
  if (clientId !== undefined && !isClientName(clientId)) return BAD_CLIENT_ID;
  return clientId;
}

/** Whether a scope is within a ceiling (`*` is every scope). */
export function mayHave(ceiling: readonly string[], scope: string): boolean {
  return ceiling.includes("*") || ceiling.includes(scope);
}

/** A new refresh token for `familyId`, stored hashed; the plain token goes to the client once. */
export function newRefresh(
  context: TokenContext,
  familyId: string,
  principal: Principal,
  scopes: readonly string[],
  clientId: string,
): { record: NewRefreshToken; token: string } {
  const fresh = generateRefreshToken();
  const now = context.now();
  return {
    token: fresh.token,
    record: {
      id: fresh.id,
      familyId,
      secretHash: digestToken(fresh.secret),
      subject: subjectOf(principal),
      scopes,
      roles: principal.roles,
      clientId,
      createdAt: now,
      expiresAt: now + context.refreshTtl * 1000,
    },
  };
}

/** A refresh token as presented: its id (to look it up by) and its secret (to compare with the stored hash). */
export type PresentedRefreshToken = NonNullable<ReturnType<typeof parseRefreshToken>>;

/** The stored record of a presented refresh token, if its secret matches; `undefined` for a token nobody issued. */
export async function findRefreshToken(store: RefreshStore, presented: PresentedRefreshToken): Promise<RefreshTokenRecord | undefined> {
  const record = await store.getRefreshToken(presented.id);
  return record !== undefined && tokenMatchesDigest(presented.secret, record.secretHash) ? record : undefined;
}
