/**
 * Making request targets safe to log. Pure. Credentials may travel in the query string (the
 * seed's `/ws?token=…`), however oddly spelled, so no query value reaches a log line unless it is
 * on a short allow-list.
 */

import type { QueryParam } from "./query.ts";

/** Parameters whose values are logged: paging words that never carry a secret. Every other value is not. */
const LOGGED_VALUES = new Set(["page", "limit", "offset", "sort", "order"]);
/**
 * Parameter names logged as sent; any other shows as `…`, since a client may put a token where a
 * name goes (`/ws?<key>`). The credential names are here so a refusal's line says which one it was.
 */
const LOGGED_NAMES = new Set([...LOGGED_VALUES, "token", "ticket", "access_token", "code", "scope", "state", "format", "q"]);
/** A paging value is logged only when it is short and plain. */
const PLAIN_VALUE = /^[A-Za-z0-9_.:-]{1,24}$/;
/** A path segment logged as sent: short plain words, as every route of ours is; anything else (`;token=…`, a key) shows as `…`. */
const PLAIN_SEGMENT = /^[A-Za-z0-9._~-]{0,19}$/;

export const REDACTED = "REDACTED";
const MAX_LOGGED_TARGET = 512;

/** Every secret tokengate issues or accepts is 32 characters or more (AUTH_TOKEN's minimum); names, ids and roles are shorter. */
export const SECRET_MIN_LENGTH = 32;

/**
 * A value the caller typed, as a message may repeat it: itself, or `…` when it is as long as a
 * secret. A key or token pasted into a name's field (a username, a role, a passkey id) must not
 * come back in an answer, on the CLI's terminal or in a log.
 */
export function echoTyped(text: string): string {
  return text.length < SECRET_MIN_LENGTH ? text : "…";
}

/** Splits an absolute request URL into its path and its query (without `?`), without allocating a URL. */
export function splitUrl(url: string): { path: string; query: string } {
  const schemeEnd = url.indexOf("://");
  const pathStart = schemeEnd === -1 ? 0 : url.indexOf("/", schemeEnd + 3);
  if (pathStart === -1) return { path: "/", query: "" };
  const queryStart = url.indexOf("?", pathStart);
  if (queryStart === -1) return { path: url.slice(pathStart), query: "" };
  return { path: url.slice(pathStart, queryStart), query: url.slice(queryStart + 1) };
}

function describeParam(param: QueryParam): string {
  const name = LOGGED_NAMES.has(param.rawName) ? param.rawName : "…";
  return LOGGED_VALUES.has(param.rawName) && PLAIN_VALUE.test(param.value) ? `${name}=${param.value}` : `${name}=${REDACTED}`;
}

/** The path with every segment that is not a short plain word replaced by `…`. */
export function redactPath(path: string): string {
  if (PLAIN_SEGMENT.test(path.slice(1)) && path.startsWith("/")) return path;
  return path
    .split("/")
    .map((segment) => (PLAIN_SEGMENT.test(segment) ? segment : "…"))
    .join("/");
}

/**
 * `path?query` for a log line: parameter names (when plain) with every value REDACTED except a few
 * paging words, capped in length. Takes the parameters the request was judged by (`parseQuery`).
 */
export function redactTarget(path: string, params: readonly QueryParam[]): string {
  const safePath = redactPath(path);
  const target = params.length === 0 ? safePath : `${safePath}?${params.map(describeParam).join("&")}`;
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
