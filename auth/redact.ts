/**
 * Making request targets safe to log. Pure. Credentials may travel in the query string (the
 * seed's `/ws?token=…`), so the values of credential-like parameters are replaced before a
 * target reaches any log line.
 */

const SENSITIVE_PARAMS = new Set([
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "ticket",
  "key",
  "api_key",
  "apikey",
  "password",
  "secret",
  "client_secret",
  "code",
  "auth",
]);

export const REDACTED = "REDACTED";
const MAX_LOGGED_TARGET = 512;

/** Splits an absolute request URL into its path and its query (without `?`), without allocating a URL. */
export function splitUrl(url: string): { path: string; query: string } {
  const schemeEnd = url.indexOf("://");
  const pathStart = schemeEnd === -1 ? 0 : url.indexOf("/", schemeEnd + 3);
  if (pathStart === -1) return { path: "/", query: "" };
  const queryStart = url.indexOf("?", pathStart);
  if (queryStart === -1) return { path: url.slice(pathStart), query: "" };
  return { path: url.slice(pathStart, queryStart), query: url.slice(queryStart + 1) };
}

function paramName(pair: string): string {
  const eq = pair.indexOf("=");
  const raw = eq === -1 ? pair : pair.slice(0, eq);
  try {
    return decodeURIComponent(raw.replace(/\+/g, " ")).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** `path?query` with credential values replaced by REDACTED, capped in length. */
export function redactTarget(path: string, query: string): string {
  if (query === "") return path.length > MAX_LOGGED_TARGET ? `${path.slice(0, MAX_LOGGED_TARGET)}…` : path;
  const pairs = query.split("&").map((pair) => {
    const name = paramName(pair);
    if (!SENSITIVE_PARAMS.has(name)) return pair;
    const eq = pair.indexOf("=");
    return `${eq === -1 ? pair : pair.slice(0, eq)}=${REDACTED}`;
  });
  const target = `${path}?${pairs.join("&")}`;
  return target.length > MAX_LOGGED_TARGET ? `${target.slice(0, MAX_LOGGED_TARGET)}…` : target;
}

/** A connection URL fit for a log line: scheme, host, port and database; never the user or password. */
export function describeUrl(text: string): string {
  try {
    const url = new URL(text);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return "(unparseable URL)";
  }
}
