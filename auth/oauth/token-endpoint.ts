/**
 * The OAuth 2.0 token endpoint (RFC 6749) and the JWKS document. `POST /auth/token` takes a form
 * (`application/x-www-form-urlencoded`) and issues short-lived JWT access tokens:
 *   grant_type=password            the seed's OAuth2PasswordRequestForm flow (first-party clients)
 *   grant_type=client_credentials  an API key as the client secret (HTTP Basic or form)
 *   grant_type=refresh_token       one-time refresh tokens (§6); a replay revokes the whole family
 *   grant_type=urn:ietf:params:oauth:grant-type:device_code  a device's poll (RFC 8628; device.ts)
 * `scope` narrows what is granted. Errors follow §5.2. `POST /auth/revoke` is RFC 7009.
 * Each grant has its own file; this one reads the request, dispatches and issues the tokens.
 */
import { subjectOf } from "../authn/principals.ts";
import { GateError } from "../core/errors.ts";
import type { Principal } from "../core/principal.ts";
import { settleRefusal } from "../guard/refusals.ts";
import { readForm, toOAuthResponse, tokenResponse, withStoreFailures } from "../http/responses.ts";
import type { HttpRoute } from "../http/routes.ts";
import { issueAccessToken } from "../secrets/jwt.ts";
import { parseScopes } from "../secrets/keys.ts";
import type { StoreError } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";
import { clientCredentialsGrant } from "./client-credentials-grant.ts";
import { DEVICE_GRANT_TYPE, deviceCodeGrant } from "./device-grant.ts";
import { createJwksRoute } from "./jwks.ts";
import { passwordGrant } from "./password-grant.ts";
import { refreshGrant } from "./refresh-grant.ts";
import { createRevokeHandler } from "./revoke.ts";
import {
  BAD_SCOPE,
  createTokenContext,
  mayHave,
  NO_GRANT,
  readClient,
  SCOPE_NOT_GRANTED,
  UNSUPPORTED_GRANT,
  type Grant,
  type GrantHandler,
  type GrantRequest,
  type TokenContext,
  type TokenEndpointOptions,
} from "./token-shared.ts";

export type { TokenEndpointOptions } from "./token-shared.ts";

// A Map, not an object: a grant_type such as "constructor" must not find a prototype's member.
const GRANTS: ReadonlyMap<string, GrantHandler> = new Map([
  ["password", passwordGrant],
  ["client_credentials", clientCredentialsGrant],
  ["refresh_token", refreshGrant],
  [DEVICE_GRANT_TYPE, deviceCodeGrant],
]);

/**
 * A refused grant: guesses count toward a ban (against the key id or username the client aimed
 * at, too), and the answer turns into 429 once the client is over the limit.
 */
function settleGrantRefusal(
  context: TokenContext,
  grantType: string,
  { request, server, params }: GrantRequest,
  error: GateError,
): GateError {
  const { guard, audit, metrics } = context;
  if (guard === undefined && audit === undefined) return error;
  // The key id a client claimed, by form or by HTTP Basic: guesses against it count too.
  const client = grantType === "client_credentials" ? readClient(request, params) : undefined;
  const keyId = client === undefined || client instanceof GateError ? undefined : client.clientId;
  const username = grantType === "password" ? params.get("username")?.normalize("NFC") : undefined;
  return settleRefusal(
    { guard, audit, metrics },
    { error, address: context.addressOf(request, server), path: "/auth/token", keyId, username },
  );
}

/** The access token (and the refresh token, for a session) a grant earned, within the scope asked for. */
async function issueTokens(
  context: TokenContext,
  grantType: string,
  granted: Grant,
  scopes: readonly string[] | undefined,
): Promise<Response> {
  const { principal, clientId, ceiling, session } = granted;
  if (scopes !== undefined && !scopes.every((scope) => mayHave(ceiling, scope))) return toOAuthResponse(SCOPE_NOT_GRANTED);
  if (granted.answer !== undefined) return tokenResponse(granted.answer);
  const scope = scopes ?? ceiling;
  const sub = subjectOf(principal);
  const issued = await issueAccessToken(
    context.keys(),
    context.settings,
    { sub, scope, roles: principal.roles, clientId, sid: session?.familyId },
    context.now(),
  );
  context.logger.info("token.issued", {
    grant: grantType,
    sub,
    client_id: clientId,
    scope: scope.join(" "),
    jti: issued.jti,
    session: session?.familyId,
  });
  const body: Record<string, unknown> = {
    access_token: issued.token,
    token_type: "Bearer",
    expires_in: context.settings.ttl,
    scope: scope.join(" "),
  };
  if (session !== undefined) body.refresh_token = session.refresh;
  return tokenResponse(body);
}

function createTokenHandler(context: TokenContext) {
  return async (request: Request, _principal: Principal | undefined, server: GateServer): Promise<Response> => {
    const params = await readForm(request);
    if (params instanceof GateError) return toOAuthResponse(params);
    const grantType = params.get("grant_type");
    if (grantType === undefined || grantType === "") return toOAuthResponse(NO_GRANT);

    const requested = params.get("scope");
    const scopes = requested === undefined ? undefined : parseScopes(requested);
    if (requested !== undefined && scopes === undefined) return toOAuthResponse(BAD_SCOPE);

    const asked: GrantRequest = { request, server, params, scopes };
    const grant = GRANTS.get(grantType);
    const granted = grant === undefined ? UNSUPPORTED_GRANT : await grant(context, asked);
    if (granted instanceof GateError) return toOAuthResponse(settleGrantRefusal(context, grantType, asked, granted));
    return issueTokens(context, grantType, granted, scopes);
  };
}

export function createTokenRoutes(options: TokenEndpointOptions): HttpRoute[] {
  const context = createTokenContext(options);
  const onStoreFailure = (error: StoreError) => context.logger.error("store unreachable at the token endpoint", { error: error.message });
  return [
    {
      kind: "http",
      path: "/auth/token",
      methods: ["POST"],
      scope: null,
      guarded: true,
      handle: withStoreFailures(createTokenHandler(context), onStoreFailure),
    },
    {
      kind: "http",
      path: "/auth/revoke",
      methods: ["POST"],
      scope: null,
      guarded: true,
      handle: withStoreFailures(createRevokeHandler(context), onStoreFailure),
    },
    createJwksRoute(context.keys),
  ];
}
