/**
 * The OAuth 2.0 token endpoint (RFC 6749) and the JWKS document. `POST /auth/token` takes a form
 * (`application/x-www-form-urlencoded`) and issues short-lived JWT access tokens:
 *   grant_type=password            the seed's OAuth2PasswordRequestForm flow (first-party clients)
 *   grant_type=client_credentials  an API key as the client secret (HTTP Basic or form)
 *   grant_type=refresh_token       one-time refresh tokens (§6); a replay revokes the whole family
 * `scope` narrows what is granted. Errors follow §5.2. `POST /auth/revoke` is RFC 7009.
 */
import { BasicCredentials, parseAuthorization, parseBasicCredentials } from "../authn/credentials.ts";
import { GateError, INSECURE_PASSWORD, tooManyAttempts } from "../core/errors.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import type { AuditLog } from "../guard/audit.ts";
import { jsonResponse, readForm, toOAuthResponse, tokenResponse, withStoreFailures } from "../http/responses.ts";
import { issueAccessToken, looksLikeJwt, verifyAccessToken, type KeySet, type TokenSettings } from "../secrets/jwt.ts";
import { subjectOf } from "../authn/keyring.ts";
import { parseApiKey, parseScopes } from "../secrets/keys.ts";
import type { Logger } from "../core/log.ts";
import { hasScope, type Principal } from "../core/principal.ts";
import type { HttpRoute } from "../http/routes.ts";
import type { GateServer } from "../ws/data.ts";
import { generateFamilyId, generateRefreshToken, parseRefreshToken, REFRESH_GRACE_MS } from "../secrets/refresh.ts";
import type { StoreError, NewRefreshToken, RefreshStore, UserStore } from "../store/store.ts";
import { digestToken, tokenMatchesDigest } from "../secrets/tokens.ts";
import { scopesForRoles, type PasswordAuthenticator, type RoleScopes } from "../authn/users.ts";
import { preparePassword } from "../secrets/passwords.ts";

export interface TokenEndpointOptions {
  /** The current key set; replaced when the signing keys are rotated. */
  readonly keys: () => KeySet;
  readonly settings: TokenSettings;
  /** Verifies passwords for grant_type=password; undefined when that grant is disabled. */
  readonly authenticatePassword: PasswordAuthenticator | undefined;
  /** Verifies an API key presented as a client secret. */
  readonly authenticateKey: (token: string) => Principal | GateError | Promise<Principal | GateError>;
  readonly store: RefreshStore & UserStore;
  readonly roleScopes: RoleScopes;
  /** Refresh-token lifetime, seconds. */
  readonly refreshTtl: number;
  /** Runs after a revocation so open sockets and caches follow at once. */
  readonly afterRevocation: () => void;
  /** Counts guesses (wrong passwords, unknown refresh tokens, wrong client secrets) toward a ban. */
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
  readonly addressOf?: AddressResolver | undefined;
  /** Whether a password may be accepted on this request's transport; absent: always. */
  readonly passwordTransport?: TransportCheck | undefined;
  readonly logger: Logger;
  readonly now: () => number;
}

const CLIENT_CHALLENGE = { "www-authenticate": 'Basic realm="tokengate", charset="UTF-8"' };
const oauthError = (code: ConstructorParameters<typeof GateError>[0], description: string, headers?: Record<string, string>) =>
  new GateError(code, description, headers === undefined ? {} : { headers });

const NO_GRANT = oauthError("invalid_request", "grant_type is required");
const PASSWORD_GRANT_OFF = oauthError("unsupported_grant_type", "grant_type=password is disabled on this server");
const BAD_CLIENT = oauthError("wrong_client_secret", "Client authentication failed: client_id must be an API key id and client_secret that key", CLIENT_CHALLENGE);
const NO_CLIENT = oauthError("invalid_client", "Client authentication is required: HTTP Basic or client_id and client_secret", CLIENT_CHALLENGE);
const TWO_CLIENT_AUTHS = oauthError("invalid_request", "Use one client authentication method, not both HTTP Basic and form parameters");
const WRONG_PASSWORD_GRANT = oauthError("wrong_grant_secret", "Wrong username or password");
const BAD_SCOPE = oauthError("invalid_scope", "scope must be space-separated scope names such as data:read ws:connect");
const SCOPE_NOT_GRANTED = oauthError("invalid_scope", "The requested scope exceeds what this account may have");
const BAD_CLIENT_ID = oauthError("invalid_request", "client_id must be 1 to 100 visible ASCII characters");
const NO_REFRESH_TOKEN = oauthError("invalid_request", "grant_type=refresh_token needs refresh_token");
const BAD_REFRESH = oauthError("wrong_grant_secret", "The refresh token is not valid");
const REFRESH_EXPIRED = oauthError("invalid_grant", "The refresh token has expired; sign in again");
const REFRESH_REVOKED = oauthError("invalid_grant", "The refresh token has been revoked; sign in again");
const REFRESH_REUSED = oauthError("invalid_grant", "The refresh token was already used; the session has been revoked, sign in again");
const SUBJECT_GONE = oauthError("invalid_grant", "The account behind this refresh token is disabled or gone");
const WRONG_CLIENT = oauthError("invalid_grant", "The refresh token was issued to another client");
const NO_TOKEN_PARAM = oauthError("invalid_request", "token is required");

/** RFC 6749 §2.3.1: client id and secret are form-encoded before they go into Basic. */
function formDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

interface ClientCredentials {
  readonly clientId: string;
  readonly secret: string;
}

function readClient(request: Request, params: Map<string, string>): ClientCredentials | GateError {
  const header = request.headers.get("authorization");
  const formId = params.get("client_id");
  const formSecret = params.get("client_secret");
  if (header !== null) {
    if (formSecret !== undefined) return TWO_CLIENT_AUTHS;
    const parsed = parseAuthorization(header);
    const basic = parsed?.scheme === "basic" ? parseBasicCredentials(parsed.value) : undefined;
    if (basic === undefined) return BAD_CLIENT;
    const clientId = formDecode(basic.username);
    const secret = formDecode(basic.password);
    return clientId === undefined || secret === undefined ? BAD_CLIENT : { clientId, secret };
  }
  if (formId === undefined || formSecret === undefined) return NO_CLIENT;
  return { clientId: formId, secret: formSecret };
}

const PUBLIC_CLIENT_SECRET = oauthError(
  "invalid_client",
  "Public clients have no secret here: send client_id alone (HTTP Basic with an empty password, or the client_id form field)",
  CLIENT_CHALLENGE,
);
const CLIENT_ID_MISMATCH = oauthError("invalid_request", "client_id differs between HTTP Basic and the form; send one client_id");

/**
 * The `client_id` of a public client (password and refresh grants), from HTTP Basic with an empty
 * secret (RFC 6749 §2.3.1; what requests-oauthlib sends by default) or from the form: `undefined`
 * when neither names one, the refusal when they disagree or carry a secret.
 */
function readPublicClient(request: Request, params: Map<string, string>): string | GateError | undefined {
  const header = request.headers.get("authorization");
  const formId = params.get("client_id");
  let clientId = formId;
  if (header !== null) {
    const parsed = parseAuthorization(header);
    const basic = parsed?.scheme === "basic" ? parseBasicCredentials(parsed.value) : undefined;
    const fromBasic = basic === undefined ? undefined : formDecode(basic.username);
    if (basic === undefined || fromBasic === undefined) return BAD_CLIENT;
    if (formDecode(basic.password) !== "" || params.has("client_secret")) return PUBLIC_CLIENT_SECRET;
    if (formId !== undefined && formId !== fromBasic) return CLIENT_ID_MISMATCH;
    clientId = fromBasic;
  }
  if (clientId !== undefined && !/^[\x21-\x7e]{1,100}$/.test(clientId)) return BAD_CLIENT_ID;
  return clientId;
}

interface Grant {
  readonly principal: Principal;
  readonly clientId: string;
  /** Scopes the grant may give at most (the principal's, or the refresh token's). */
  readonly ceiling: readonly string[];
  /** For password and refresh grants: the session the tokens belong to. */
  readonly session?: { readonly familyId: string; readonly refresh: string };
}

export function createTokenRoutes(options: TokenEndpointOptions): HttpRoute[] {
  const { settings, logger, store } = options;
  const addressOf: AddressResolver = options.addressOf ?? ((request, server) => server.requestIP(request)?.address ?? "-");

  const mayHave = (ceiling: readonly string[], scope: string) => ceiling.includes("*") || ceiling.includes(scope);

  /** A new refresh token for `familyId`, stored hashed; the plain token goes to the client once. */
  function newRefresh(familyId: string, principal: Principal, scopes: readonly string[], clientId: string): { record: NewRefreshToken; token: string } {
    const fresh = generateRefreshToken();
    const now = options.now();
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
        expiresAt: now + options.refreshTtl * 1000,
      },
    };
  }

  async function passwordGrant(
    request: Request,
    server: GateServer,
    params: Map<string, string>,
    scopes: readonly string[] | undefined,
  ): Promise<Grant | GateError> {
    if (options.authenticatePassword === undefined) return PASSWORD_GRANT_OFF;
    if (options.passwordTransport !== undefined && !options.passwordTransport(request, server)) return INSECURE_PASSWORD;
    const username = params.get("username");
    const password = params.get("password");
    if (username === undefined || password === undefined || username === "") {
      return oauthError("invalid_request", "grant_type=password needs username and password");
    }
    const client = readPublicClient(request, params);
    if (client instanceof GateError) return client;
    const clientId = client ?? "tokengate";
    const address = addressOf(request, server);
    // A locked account answers 429 before any argon2 work; its owner's refresh tokens and keys still work.
    const locked = options.guard?.retryAfter(address, `user:${username}`) ?? 0;
    if (locked > 0) return tooManyAttempts(locked);
    const who = await options.authenticatePassword(new BasicCredentials(username.normalize("NFC"), preparePassword(password)), address);
    if (who instanceof GateError) return who.code === "temporarily_unavailable" ? who : WRONG_PASSWORD_GRANT;
    if (scopes !== undefined && !scopes.every((scope) => hasScope(who, scope))) return SCOPE_NOT_GRANTED;
    const familyId = generateFamilyId();
    const refresh = newRefresh(familyId, who, scopes ?? who.scopes, clientId);
    await store.insertRefreshToken(refresh.record);
    return { principal: who, clientId, ceiling: who.scopes, session: { familyId, refresh: refresh.token } };
  }

  async function clientCredentialsGrant(request: Request, params: Map<string, string>): Promise<Grant | GateError> {
    const client = readClient(request, params);
    if (client instanceof GateError) return client;
    const key = parseApiKey(client.secret);
    if (key === undefined || key.id !== client.clientId) return BAD_CLIENT;
    const who = await options.authenticateKey(client.secret);
    if (who instanceof GateError) {
      if (who.code === "temporarily_unavailable") return who;
      // A key that was genuine once is told why (revoked, expired); anything else is a wrong secret.
      return who.kind === "revoked_token" || who.kind === "expired_token"
        ? oauthError("invalid_client", `Client authentication failed: ${who.description.toLowerCase()}`, CLIENT_CHALLENGE)
        : BAD_CLIENT;
    }
    if (who.kind !== "key") return BAD_CLIENT;
    // RFC 6749 §4.4.3: no refresh token for client credentials; the client can always ask again.
    return { principal: who, clientId: who.id, ceiling: who.scopes };
  }

  async function refreshGrant(request: Request, params: Map<string, string>, scopes: readonly string[] | undefined): Promise<Grant | GateError> {
    const presented = params.get("refresh_token");
    if (presented === undefined || presented === "") return NO_REFRESH_TOKEN;
    const parsed = parseRefreshToken(presented);
    const record = parsed === undefined ? undefined : await store.getRefreshToken(parsed.id);
    if (record === undefined || !tokenMatchesDigest(parsed!.secret, record.secretHash)) return BAD_REFRESH;
    const clientId = readPublicClient(request, params);
    if (clientId instanceof GateError) return clientId;
    if (clientId !== undefined && clientId !== record.clientId) return WRONG_CLIENT;
    if (record.revokedAt !== null) return REFRESH_REVOKED;
    const now = options.now();
    if (record.expiresAt <= now) return REFRESH_EXPIRED;

    // The account must still exist and be enabled; its current roles cap the scopes.
    const username = record.subject.startsWith("user:") ? record.subject.slice(5) : undefined;
    const user = username === undefined ? undefined : await store.getUser(username);
    if (user === undefined || user.disabledAt !== null) return SUBJECT_GONE;
    const current = scopesForRoles(user.roles, options.roleScopes);
    const ceiling = record.scopes.filter((scope) => mayHave(current, scope));
    if (scopes !== undefined && !scopes.every((scope) => mayHave(ceiling, scope))) return SCOPE_NOT_GRANTED;

    const principal: Principal = { id: record.subject, kind: "user", name: user.username, scopes: ceiling, expiresAt: null, roles: user.roles, session: null, tokenId: null };
    const next = newRefresh(record.familyId, principal, scopes ?? ceiling, record.clientId);
    const outcome = await store.consumeRefreshToken(record.id, next.record, now, REFRESH_GRACE_MS);
    if (outcome === "reused") {
      logger.warn("refresh.reuse_detected", { family: record.familyId, sub: record.subject, client_id: record.clientId });
      options.audit?.record("refresh.reuse_detected", { family: record.familyId, sub: record.subject, client_id: record.clientId });
      options.afterRevocation();
      return REFRESH_REUSED;
    }
    if (outcome === "revoked") return REFRESH_REVOKED;
    if (outcome === "missing") return BAD_REFRESH;
    return { principal, clientId: record.clientId, ceiling, session: { familyId: record.familyId, refresh: next.token } };
  }

  /** Guesses count toward a ban; the answer turns into 429 once the client is over the limit. */
  function judge(request: Request, server: GateServer, error: GateError, aim: { keyId?: string | undefined; username?: string | undefined }): GateError {
    const { guard, audit } = options;
    if (guard === undefined && audit === undefined) return error;
    return settleRefusal(
      { guard, audit },
      {
        error,
        address: addressOf(request, server),
        path: "/auth/token",
        keyId: aim.keyId,
        username: aim.username,
      },
    );
  }

  async function handleToken(request: Request, _principal: Principal | undefined, server: GateServer): Promise<Response> {
    const params = await readForm(request);
    if (params instanceof GateError) return toOAuthResponse(params);
    const grant = params.get("grant_type");
    if (grant === undefined || grant === "") return toOAuthResponse(NO_GRANT);

    const requested = params.get("scope");
    const scopes = requested === undefined ? undefined : parseScopes(requested);
    if (requested !== undefined && scopes === undefined) return toOAuthResponse(BAD_SCOPE);

    const granted =
      grant === "password"
        ? await passwordGrant(request, server, params, scopes)
        : grant === "client_credentials"
          ? await clientCredentialsGrant(request, params)
          : grant === "refresh_token"
            ? await refreshGrant(request, params, scopes)
            : oauthError("unsupported_grant_type", "Supported grant types: password, client_credentials, refresh_token");
    if (granted instanceof GateError) {
      // The key id a client claimed, by form or by HTTP Basic: guesses against it count too.
      const client = grant === "client_credentials" ? readClient(request, params) : undefined;
      const keyId = client === undefined || client instanceof GateError ? undefined : client.clientId;
      const username = grant === "password" ? params.get("username")?.normalize("NFC") : undefined;
      return toOAuthResponse(judge(request, server, granted, { keyId, username }));
    }
    const { principal, clientId, ceiling, session } = granted;
    if (scopes !== undefined && !scopes.every((scope) => mayHave(ceiling, scope))) return toOAuthResponse(SCOPE_NOT_GRANTED);
    const scope = scopes ?? ceiling;

    const issued = await issueAccessToken(
      options.keys(),
      settings,
      { sub: subjectOf(principal), scope, roles: principal.roles, clientId, sid: session?.familyId },
      options.now(),
    );
    logger.info("token.issued", { grant, sub: subjectOf(principal), client_id: clientId, scope: scope.join(" "), jti: issued.jti, session: session?.familyId });
    const body: Record<string, unknown> = { access_token: issued.token, token_type: "Bearer", expires_in: settings.ttl, scope: scope.join(" ") };
    if (session !== undefined) body.refresh_token = session.refresh;
    return tokenResponse(body);
  }

  /** RFC 7009: revoke a refresh token (its whole family) or an access token (its jti). Always 200. */
  async function handleRevoke(request: Request): Promise<Response> {
    const params = await readForm(request);
    if (params instanceof GateError) return toOAuthResponse(params);
    const token = params.get("token");
    if (token === undefined || token === "") return toOAuthResponse(NO_TOKEN_PARAM);

    const refresh = parseRefreshToken(token);
    if (refresh !== undefined) {
      const record = await store.getRefreshToken(refresh.id);
      if (record !== undefined && tokenMatchesDigest(refresh.secret, record.secretHash)) {
        await store.revokeFamily(record.familyId, options.now());
        logger.info("refresh.revoked", { family: record.familyId, sub: record.subject });
        options.afterRevocation();
      }
    } else if (looksLikeJwt(token)) {
      // Expired tokens need no revocation; anything that does not verify is ignored (§2.2).
      const claims = await verifyAccessToken(token, options.keys(), settings, options.now());
      if (!(claims instanceof GateError)) {
        await store.revokeAccessToken(claims.jti, claims.exp * 1000, options.now());
        logger.info("access_token.revoked", { jti: claims.jti, sub: claims.sub });
        options.afterRevocation();
      }
    }
    return tokenResponse({});
  }

  const onStoreFailure = (error: StoreError) => logger.error("store unreachable at the token endpoint", { error: error.message });

  let jwks = { for: "", body: "" };
  const jwksBody = () => {
    const current = options.keys();
    if (jwks.for !== current.fingerprint) jwks = { for: current.fingerprint, body: JSON.stringify(current.jwks) };
    return jwks.body;
  };
  return [
    { kind: "http", path: "/auth/token", methods: ["POST"], scope: null, guarded: true, handle: withStoreFailures(handleToken, onStoreFailure) },
    { kind: "http", path: "/auth/revoke", methods: ["POST"], scope: null, guarded: true, handle: withStoreFailures(handleRevoke, onStoreFailure) },
    {
      kind: "http",
      path: "/.well-known/jwks.json",
      methods: ["GET", "HEAD"],
      scope: null,
      handle: () => jsonResponse(200, jwksBody(), { "cache-control": "public, max-age=300" }),
    },
  ];
}
