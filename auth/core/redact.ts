/**
 * Making request targets safe to log. Pure. Credentials may travel in the query string (the
 * seed's `/ws?token=…`), however oddly spelled, so no query value reaches a log line unless it is
 * on a short allow-list.
 */

import type { QueryParam } from "./query.ts";

/** Parameters whose values are logged: paging words that never carry a secret. Every other value is not. */
const LOGGED_VALUES = new Set(["page", "limit", "offset", "sort", "order"]);
/** A name is logged as sent only when it is short and plain; a long one could itself be a token. */
const LOGGABLE_NAME = /^[A-Za-z0-9_.:-]{1,24}$/;

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

function describeParam(param: QueryParam): string {
  const name = LOGGABLE_NAME.test(param.rawName) ? param.rawName : "…";
  return LOGGED_VALUES.has(param.name) && LOGGABLE_NAME.test(param.value) ? `${name}=${param.value}` : `${name}=${REDACTED}`;
}

/**
 * `path?query` for a log line: parameter names (when plain) with every value REDACTED except a few
 * paging words, capped in length. Takes the parameters the request was judged by (`parseQuery`).
 */
export function redactTarget(path: string, params: readonly QueryParam[]): string {
  const target = params.length === 0 ? path : `${path}?${params.map(describeParam).join("&")}`;
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
