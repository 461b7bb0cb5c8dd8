/**
 * grant_type=password (RFC 6749 §4.3): the seed's OAuth2PasswordRequestForm flow for first-party
 * clients. A sign-in starts a session: a new refresh-token family.
 */
import { BasicCredentials } from "../authn/credentials.ts";
import { PASSKEY_REQUIRED } from "../authn/users.ts";
import { GateError, INSECURE_PASSWORD, tooManyAttempts } from "../core/errors.ts";
import { hasScope } from "../core/principal.ts";
import { preparePassword } from "../secrets/passwords.ts";
import { generateFamilyId } from "../secrets/refresh.ts";
import {
  newRefresh,
  NO_PASSWORD,
  PASSWORD_GRANT_OFF,
  readPublicClient,
  SCOPE_NOT_GRANTED,
  WRONG_PASSWORD_GRANT,
  type GrantHandler,
} from "./token-shared.ts";

export const passwordGrant: GrantHandler = async (context, { request, server, params, scopes }) => {
  if (context.authenticatePassword === undefined) return PASSWORD_GRANT_OFF;
  if (context.passwordTransport !== undefined && !context.passwordTransport(request, server)) return INSECURE_PASSWORD;
  const username = params.get("username");
  const password = params.get("password");
  if (username === undefined || password === undefined || username === "") return NO_PASSWORD;
  const client = readPublicClient(request, params);
  if (client instanceof GateError) return client;
  const clientId = client ?? "tokengate";
  const address = context.addressOf(request, server);
  // A locked account answers 429 before any argon2 work; its owner's refresh tokens and keys still work.
  const locked = context.guard?.retryAfter(address, `user:${username}`) ?? 0;
  if (locked > 0) return tooManyAttempts(locked);
  const who = await context.authenticatePassword(new BasicCredentials(username.normalize("NFC"), preparePassword(password)), address);
  // Every other refusal is one answer, so the response does not tell which part was wrong.
  // A user who must use passkeys gave the right password: refused as such, never counted as a guess.
  if (who instanceof GateError) return who.kind === "temporarily_unavailable" || who === PASSKEY_REQUIRED ? who : WRONG_PASSWORD_GRANT;
  if (scopes !== undefined && !scopes.every((scope) => hasScope(who, scope))) return SCOPE_NOT_GRANTED;
  const familyId = generateFamilyId();
  const refresh = newRefresh(context, familyId, who, scopes ?? who.scopes, clientId);
  await context.store.insertRefreshToken(refresh.record);
  return { principal: who, clientId, ceiling: who.scopes, session: { familyId, refresh: refresh.token } };
};
