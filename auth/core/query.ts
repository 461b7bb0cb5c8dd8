/**
 * The one reading of a query string. Pure, never throws. The credential reader (`?token=`,
 * `?ticket=`) and the log redactor both use it, so they cannot disagree about what a parameter is
 * called: the disagreement is how `/ws??token=…` once got in while its key stayed in the log.
 */

export interface QueryParam {
  /** Decoded as application/x-www-form-urlencoded does (`+` is a space, %XX decoded). */
  readonly name: string;
  readonly value: string;
  /** The name as it was sent, for the log. */
  readonly rawName: string;
}

export const NO_PARAMS: readonly QueryParam[] = Object.freeze([]);

/** Form decoding; a malformed %-sequence leaves the text as sent rather than failing the request. */
function decodeComponent(text: string): string {
  const spaced = text.includes("+") ? text.replaceAll("+", " ") : text;
  if (!spaced.includes("%")) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/**
 * `a=1&b&c=` → its parameters, in order. Unlike URLSearchParams nothing is skipped or folded: a
 * leading `?` (from `/ws??token=`) stays part of the first name, so that name is not `token`.
 */
export function parseQuery(query: string): readonly QueryParam[] {
  if (query === "") return NO_PARAMS;
  const params: QueryParam[] = [];
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    params.push({ name: decodeComponent(rawName), value: eq === -1 ? "" : decodeComponent(pair.slice(eq + 1)), rawName });
  }
  return params;
}

/** Every value of the parameter whose decoded name is exactly `name`. */
export function valuesOf(params: readonly QueryParam[], name: string): string[] {
  const values: string[] = [];
  for (const param of params) if (param.name === name) values.push(param.value);
  return values;
}

// Compared with punctuation, case and spacing removed, so `?token`, `#token`, `TOKEN`, `access-token`
// and `to%6Ben` are all recognised as what they are.
const CREDENTIAL_NAMES = new Set([
  "token",
  "accesstoken",
  "refreshtoken",
  "idtoken",
  "authtoken",
  "xauthtoken",
  "apitoken",
  "ticket",
  "key",
  "apikey",
  "password",
  "passwd",
  "secret",
  "clientsecret",
  "code",
  "auth",
  "authorization",
  "bearer",
  "jwt",
  "session",
  "sessionid",
]);

/** Whether a decoded parameter name looks like it carries a credential, however it is spelled. */
export function isCredentialName(name: string): boolean {
  return CREDENTIAL_NAMES.has(name.toLowerCase().replace(/[^a-z0-9]/g, ""));
}
