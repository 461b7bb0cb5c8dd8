/**
 * The identity headers the gate tells a service (forward auth's answer, the built-in proxy's
 * request): X-Auth-User, X-Auth-Id, X-Auth-Scopes, X-Auth-Kind. Only the gate sets them; a
 * client's own copies (and the identity headers other gates use) are removed before forwarding.
 */
import type { Principal } from "../core/principal.ts";

export const IDENTITY_HEADER_PREFIX = "x-auth-";
/** Identity headers other gates and apps trust (Authelia, oauth2-proxy, Grafana's auth proxy…): never from a client. */
export const FOREIGN_IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  "remote-user",
  "remote-groups",
  "remote-email",
  "remote-name",
  "x-remote-user",
  "x-webauth-user",
  "x-forwarded-user",
  "x-forwarded-email",
  "x-forwarded-preferred-username",
  "x-forwarded-groups",
  "x-forwarded-access-token",
  "x-webauth-email",
  "x-webauth-name",
  "x-webauth-groups",
  "x-remote-email",
  "x-remote-group",
  "tailscale-user-login",
  "tailscale-user-name",
  "cf-access-authenticated-user-email",
  "cf-access-jwt-assertion",
  "x-goog-authenticated-user-email",
  "x-goog-authenticated-user-id",
  "x-ms-client-principal-name",
  "x-ms-client-principal-id",
]);

/** Identity for the upstream: visible ASCII without `%` as sent, anything else percent-encoded. */
function headerValue(text: string, fallback: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  try {
    return encodeURIComponent(text);
  } catch {
    return fallback;
  }
}

/** The four values per principal: the keyring hands out the same principal object on every request. */
const valuesOf = new WeakMap<Principal, readonly [string, string, string, string]>();

function identityValues(principal: Principal): readonly [string, string, string, string] {
  let values = valuesOf.get(principal);
  if (values === undefined) {
    values = [headerValue(principal.name, principal.id), headerValue(principal.id, "-"), principal.scopes.join(" "), principal.kind];
    valuesOf.set(principal, values);
  }
  return values;
}

/** Sets the four identity headers on `headers` (always header-safe, whatever a key's name holds). */
export function setIdentityHeaders(headers: Headers, principal: Principal): Headers {
  const [user, id, scopes, kind] = identityValues(principal);
  headers.set("x-auth-user", user);
  headers.set("x-auth-id", id);
  headers.set("x-auth-scopes", scopes);
  headers.set("x-auth-kind", kind);
  return headers;
}
