/**
 * POST /auth/revoke (RFC 7009): revokes a refresh token (its whole family) or an access token (its
 * jti). Always 200, so the answer tells nobody whether a token existed.
 */
import { GateError } from "../core/errors.ts";
import { readForm, toOAuthResponse, tokenResponse } from "../http/responses.ts";
import { looksLikeJwt, verifyAccessToken } from "../secrets/jwt.ts";
import { parseRefreshToken } from "../secrets/refresh.ts";
import { findRefreshToken, NO_TOKEN_PARAM, type PresentedRefreshToken, type TokenContext } from "./token-shared.ts";

/** Ends the session a refresh token belongs to; a token nobody issued is ignored. */
async function revokeRefreshToken(context: TokenContext, presented: PresentedRefreshToken): Promise<void> {
  const record = await findRefreshToken(context.store, presented);
  if (record === undefined) return;
  await context.store.revokeFamily(record.familyId, context.now());
  context.logger.info("refresh.revoked", { family: record.familyId, sub: record.subject });
  context.afterRevocation();
}

/** Stops one access token; expired tokens need no revocation and anything that does not verify is ignored (§2.2). */
async function revokeAccessToken(context: TokenContext, token: string): Promise<void> {
  const claims = await verifyAccessToken(token, context.keys(), context.settings, context.now());
  if (claims instanceof GateError) return;
  await context.store.revokeAccessToken(claims.jti, claims.exp * 1000, context.now());
  context.logger.info("access_token.revoked", { jti: claims.jti, sub: claims.sub });
  context.afterRevocation();
}

export function createRevokeHandler(context: TokenContext): (request: Request) => Promise<Response> {
  return async (request) => {
    const params = await readForm(request);
    if (params instanceof GateError) return toOAuthResponse(params);
    const token = params.get("token");
    if (token === undefined || token === "") return toOAuthResponse(NO_TOKEN_PARAM);
    const refresh = parseRefreshToken(token);
    if (refresh !== undefined) await revokeRefreshToken(context, refresh);
    else if (looksLikeJwt(token)) await revokeAccessToken(context, token);
    return tokenResponse({});
  };
}
