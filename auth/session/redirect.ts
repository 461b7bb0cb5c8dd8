/**
 * Where a sign-in may send the browser back to (`rd`): a path on this origin, or an absolute URL
 * whose host is this request's own or one a configured route serves. Anything else (another
 * site, `//evil.com`, backslashes, control characters, encoded tricks) falls back to `/`: a
 * login page that redirects anywhere is an open redirect. Pure.
 */

export const FALLBACK_TARGET = "/";

export interface RedirectRules {
  /** The Host header of the sign-in request: its own host is always fine. */
  readonly host: string | null;
  /** Whether a configured route (ROUTES_FILE) is served under this host. */
  readonly servesHost: (host: string) => boolean;
  /** The sign-in came over TLS: an `http:` target would send the fresh session's page over plain HTTP. */
  readonly secure?: boolean;
}

/**
 * A path browsers and the gate read alike: one leading slash, visible ASCII only (no backslash, no
 * space or control character, nothing a Location header cannot carry; a browser percent-encodes
 * the rest before it sends a URL anyway).
 */
function isPlainPath(target: string): boolean {
  return target.startsWith("/") && !target.startsWith("//") && /^[\x21-\x5b\x5d-\x7e]+$/.test(target) && target.length <= 2048;
}

/** The target to send the browser to after sign-in: `rd` when it stays on a host we serve, else `/`. */
export function safeRedirect(rd: string | null | undefined, rules: RedirectRules): string {
  if (rd === null || rd === undefined || rd === "") return FALLBACK_TARGET;
  if (isPlainPath(rd)) {
    // `/%2F%2Fevil.com` decodes to `//evil.com` in some routers: refuse encoded slashes and backslashes at the front.
    return /^\/(?:%2f|%5c)/i.test(rd) ? FALLBACK_TARGET : rd;
  }
  if (/[\\\x00-\x20\x7f]/.test(rd) || rd.length > 2048) return FALLBACK_TARGET;
  let url: URL;
  try {
    url = new URL(rd);
  } catch {
    return FALLBACK_TARGET;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username !== "" || url.password !== "") return FALLBACK_TARGET;
  if (rules.secure === true && url.protocol === "http:") return FALLBACK_TARGET;
  const own = rules.host !== null && url.host === rules.host.trim().toLowerCase();
  return own || rules.servesHost(url.hostname) ? url.href : FALLBACK_TARGET;
}
