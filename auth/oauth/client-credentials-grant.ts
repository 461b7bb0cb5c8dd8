/**
 * grant_type=client_credentials (RFC 6749 §4.4): an API key is the client secret, its id the
 * client id, by HTTP Basic or the form.
 */
import { GateError } from "../core/errors.ts";
import { parseApiKey } from "../secrets/keys.ts";
import { BAD_CLIENT, clientRefusedFor, readClient, type GrantHandler } from "./token-shared.ts";

export const clientCredentialsGrant: GrantHandler = async (context, { request, params }) => {
  const client = readClient(request, params);
  if (client instanceof GateError) return client;
  const key = parseApiKey(client.secret);
  if (key === undefined || key.id !== client.clientId) return BAD_CLIENT;
  const who = await context.authenticateKey(client.secret);
  if (who instanceof GateError) {
    if (who.kind === "temporarily_unavailable") return who;
    // A key that was genuine once is told why (revoked, expired); anything else is a wrong secret.
    return who.kind === "revoked_token" || who.kind === "expired_token" ? clientRefusedFor(who) : BAD_CLIENT;
  }
  if (who.kind !== "key") return BAD_CLIENT;
  // RFC 6749 §4.4.3: no refresh token for client credentials; the client can always ask again.
  return { principal: who, clientId: who.id, ceiling: who.scopes };
};
