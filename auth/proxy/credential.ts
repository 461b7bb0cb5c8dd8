/**
 * The gate's credential on a proxied request. The gate's own places come first (X-Auth-Token,
 * `?token=`, the `tokengate.bearer.` subprotocol on upgrades): when one of them holds it, an
 * Authorization header is the service's own (a Grafana API key, a Jupyter token) and passes
 * through untouched. Only when none does is Authorization read as the gate's (Bearer, or Basic
 * for a person's password), and then it is removed before forwarding. Pure.
 */
import { BasicCredentials, readCredential, readHeaderToken, UNSUPPORTED_SCHEME } from "../authn/credentials.ts";
import { GateError } from "../core/errors.ts";
import { valuesOf, type QueryParam } from "../core/query.ts";

const NO_TOKENS: readonly string[] = Object.freeze([]);

export interface ProxyCredential {
  readonly credential: string | BasicCredentials | GateError | undefined;
  /** Authorization carried the gate's credential: it must not reach the service. */
  readonly authorizationIsOurs: boolean;
}

/**
 * Whether an Authorization header carries this token in any form a service could read back: as
 * sent, percent-encoded, or base64 inside any of its parts (Basic credentials, padded or not, alone
 * or after another scheme's value). Such a header is the gate's credential again and is withheld.
 */
function carriesToken(authorization: string | null, token: string): boolean {
  if (authorization === null) return false;
  if (authorization.includes(token) || authorization.includes(encodeURIComponent(token))) return true;
  return authorization
    .split(/[\s,]+/)
    .some(
      (part) =>
        part.length >= 8 &&
        (Buffer.from(part, "base64").toString("latin1").includes(token) ||
          Buffer.from(part, "base64url").toString("latin1").includes(token)),
    );
}

/**
 * `gateTakesPasswords`: the gate accepts Basic (BASIC_AUTH); a Basic header is then the gate's
 * login, which a browser keeps sending once given, and never goes to the service.
 */
export function readProxyCredential(
  headers: Headers,
  params: readonly QueryParam[],
  upgrade: boolean,
  gateTakesPasswords = false,
): ProxyCredential {
  const ours = readCredential({
    xAuthToken: headers.get("x-auth-token"),
    authorization: null,
    queryTokens: params.length === 0 ? NO_TOKENS : valuesOf(params, "token"),
    subprotocols: upgrade ? headers.get("sec-websocket-protocol") : null,
  });
  if (ours instanceof GateError) return { credential: ours, authorizationIsOurs: false };
  // The same token sent in Authorization too is still the gate's: it must not reach the service.
  if (ours !== "none") {
    const authorization = headers.get("authorization");
    const ownLogin = gateTakesPasswords && authorization !== null && /^basic\b/i.test(authorization);
    return { credential: ours.token, authorizationIsOurs: ownLogin || carriesToken(authorization, ours.token) };
  }
  const authorization = headers.get("authorization");
  if (authorization === null) return { credential: undefined, authorizationIsOurs: false };
  const credential = readHeaderToken(null, authorization);
  // A password check is too slow to sit in front of an upgrade, as on /ws.
  if (upgrade && credential instanceof BasicCredentials) return { credential: UNSUPPORTED_SCHEME, authorizationIsOurs: true };
  return { credential, authorizationIsOurs: true };
}
