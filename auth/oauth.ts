/**
 * The OAuth 2.0 token endpoint (RFC 6749) and the JWKS document. `POST /auth/token` takes a form
 * (`application/x-www-form-urlencoded`) and issues short-lived JWT access tokens:
 *   grant_type=password            the seed's OAuth2PasswordRequestForm flow (first-party clients)
 *   grant_type=client_credentials  an API key as the client secret (HTTP Basic or form)
 * `scope` narrows what is granted. Errors follow §5.2.
 */
import { BasicCredentials, parseAuthorization, parseBasicCredentials } from "./credentials.ts";
import { GateError } from "./errors.ts";
import { jsonResponse, toOAuthResponse, tokenResponse } from "./http.ts";
import { issueAccessToken, type KeySet, type TokenSettings } from "./jwt.ts";
import { subjectOf } from "./keyring.ts";
import { parseApiKey, parseScopes } from "./keys.ts";
import type { Logger } from "./log.ts";
import { hasScope, type Principal } from "./principal.ts";
import type { HttpRoute } from "./routes.ts";
import type { PasswordAuthenticator } from "./users.ts";

export interface TokenEndpointOptions {
  readonly keys: KeySet;
  readonly settings: TokenSettings;
  /** Verifies passwords for grant_type=password; undefined when that grant is disabled. */
  readonly authenticatePassword: PasswordAuthenticator | undefined;
  /** Verifies an API key presented as a client secret. */
  readonly authenticateKey: (token: string) => Principal | GateError | Promise<Principal | GateError>;
  readonly logger: Logger;
  readonly now: () => number;
}

const CLIENT_CHALLENGE = { "www-authenticate": 'Basic realm="tokengate", charset="UTF-8"' };
const oauthError = (code: ConstructorParameters<typeof GateError>[0], description: string, headers?: Record<string, string>) =>
  new GateError(code, description, headers === undefined ? {} : { headers });

const WRONG_CONTENT_TYPE = oauthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded");
const NO_GRANT = oauthError("invalid_request", "grant_type is required");
const PASSWORD_GRANT_OFF = oauthError("unsupported_grant_type", "grant_type=password is disabled on this server");
const BAD_CLIENT = oauthError("invalid_client", "Client authentication failed: client_id must be an API key id and client_secret that key", CLIENT_CHALLENGE);
const NO_CLIENT = oauthError("invalid_client", "Client authentication is required: HTTP Basic or client_id and client_secret", CLIENT_CHALLENGE);
const TWO_CLIENT_AUTHS = oauthError("invalid_request", "Use one client authentication method, not both HTTP Basic and form parameters");
const WRONG_PASSWORD_GRANT = oauthError("invalid_grant", "Wrong username or password");
const BAD_SCOPE = oauthError("invalid_scope", "scope must be space-separated scope names such as data:read ws:connect");
const SCOPE_NOT_GRANTED = oauthError("invalid_scope", "The requested scope exceeds what this account may have");
const BAD_CLIENT_ID = oauthError("invalid_request", "client_id must be 1 to 100 visible ASCII characters");

/** Form parameters, refusing repeats (RFC 6749 §3.2: a parameter must not be sent twice). */
function parseForm(body: string): Map<string, string> | GateError {
  const params = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (params.has(name)) return oauthError("invalid_request", `The ${name.slice(0, 40).replace(/[^\x21-\x7e]/g, "?")} parameter was sent more than once`);
    params.set(name, value);
  }
  return params;
}

function isFormContentType(header: string | null): boolean {
  return header !== null && header.split(";")[0]!.trim().toLowerCase() === "application/x-www-form-urlencoded";
}

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

export function createTokenRoutes(options: TokenEndpointOptions): HttpRoute[] {
  const { keys, settings, logger } = options;

  async function grantFor(request: Request, params: Map<string, string>, grant: string): Promise<{ principal: Principal; clientId: string } | GateError> {
    if (grant === "password") {
      if (options.authenticatePassword === undefined) return PASSWORD_GRANT_OFF;
      const username = params.get("username");
      const password = params.get("password");
      if (username === undefined || password === undefined || username === "") {
        return oauthError("invalid_request", "grant_type=password needs username and password");
      }
      const clientId = params.get("client_id") ?? "tokengate";
      if (!/^[\x21-\x7e]{1,100}$/.test(clientId)) return BAD_CLIENT_ID;
      const who = await options.authenticatePassword(new BasicCredentials(username.normalize("NFC"), password.normalize("NFC")));
      if (who instanceof GateError) return who.code === "temporarily_unavailable" ? who : WRONG_PASSWORD_GRANT;
      return { principal: who, clientId };
    }
    if (grant === "client_credentials") {
      const client = readClient(request, params);
      if (client instanceof GateError) return client;
      const key = parseApiKey(client.secret);
      if (key === undefined || key.id !== client.clientId) return BAD_CLIENT;
      const who = await options.authenticateKey(client.secret);
      if (who instanceof GateError) {
        return who.code === "invalid_token" && who.description !== "The token is not valid"
          ? oauthError("invalid_client", `Client authentication failed: ${who.description.toLowerCase()}`, CLIENT_CHALLENGE)
          : BAD_CLIENT;
      }
      if (who.kind !== "key") return BAD_CLIENT;
      return { principal: who, clientId: who.id };
    }
    return oauthError("unsupported_grant_type", "Supported grant types: password, client_credentials");
  }

  async function handleToken(request: Request): Promise<Response> {
    if (!isFormContentType(request.headers.get("content-type"))) return toOAuthResponse(WRONG_CONTENT_TYPE);
    const params = parseForm(await request.text());
    if (params instanceof GateError) return toOAuthResponse(params);
    const grant = params.get("grant_type");
    if (grant === undefined || grant === "") return toOAuthResponse(NO_GRANT);

    const requested = params.get("scope");
    const scopes = requested === undefined ? undefined : parseScopes(requested);
    if (requested !== undefined && scopes === undefined) return toOAuthResponse(BAD_SCOPE);

    const granted = await grantFor(request, params, grant);
    if (granted instanceof GateError) return toOAuthResponse(granted);
    const { principal, clientId } = granted;
    if (scopes !== undefined && !scopes.every((scope) => hasScope(principal, scope))) return toOAuthResponse(SCOPE_NOT_GRANTED);
    const scope = scopes ?? principal.scopes;

    const issued = await issueAccessToken(keys, settings, { sub: subjectOf(principal), scope, roles: principal.roles, clientId }, options.now());
    logger.info("token.issued", { grant, sub: subjectOf(principal), client_id: clientId, scope: scope.join(" "), jti: issued.jti });
    return tokenResponse({ access_token: issued.token, token_type: "Bearer", expires_in: settings.ttl, scope: scope.join(" ") });
  }

  const jwksBody = JSON.stringify(keys.jwks);
  return [
    { kind: "http", path: "/auth/token", methods: ["POST"], scope: null, handle: handleToken },
    {
      kind: "http",
      path: "/.well-known/jwks.json",
      methods: ["GET", "HEAD"],
      scope: null,
      handle: () => jsonResponse(200, jwksBody, { "cache-control": "public, max-age=300" }),
    },
  ];
}
