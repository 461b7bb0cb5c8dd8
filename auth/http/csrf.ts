/**
 * Cross-site request forgery: a browser attaches the session cookie to any request toward us,
 * whoever's page made it. A cookie-authenticated request that changes state (any method but
 * GET/HEAD/OPTIONS, and every WebSocket upgrade) must show it comes from a page we trust: an
 * allowed `Origin` (this host, or ALLOWED_ORIGINS), or `Sec-Fetch-Site: same-origin`. Token
 * credentials are not ambient, so they are not asked. SameSite=Lax alone does not cover a sibling
 * host on the same site, nor a WebSocket.
 */
import { GateError } from "../core/errors.ts";
import { createOriginPolicy, type OriginPolicy } from "../core/origins.ts";
import { isWebSocketUpgrade } from "./screening.ts";

export const CROSS_SITE_REQUEST = new GateError(
  "cross_site_request",
  "This request used the sign-in cookie without an allowed Origin (or Sec-Fetch-Site: same-origin); send it from the gate's own page, or use a token",
);

const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Without a configured policy, only the page's own host counts. */
const SAME_HOST_ONLY = createOriginPolicy([]);

/** What the rule looks at; forward auth describes the original request, not its own. */
export interface CookieUse {
  readonly method: string;
  readonly upgrade: boolean;
  readonly origin: string | null;
  /** The Host the browser addressed. */
  readonly host: string | null;
  readonly fetchSite: string | null;
  /** The browser reached us over TLS: then only an https:// page is our own (a page on port 80 of the same name is not). */
  readonly secure: boolean;
}

/**
 * Why a cookie-authenticated request may not proceed, or `undefined` when it may. An Origin that is
 * not ours refuses the cookie whatever the method: a browser sends Origin with every request that
 * could change state, so this holds even where the method is not known (forward auth behind a proxy
 * that asks with GET and does not say which method it holds).
 */
export function judgeCookieUse(use: CookieUse, originPolicy: OriginPolicy | undefined): GateError | undefined {
  if (use.origin !== null) {
    if (use.secure && !use.origin.startsWith("https:")) return CROSS_SITE_REQUEST;
    return (originPolicy ?? SAME_HOST_ONLY).allows(use.origin, use.host) ? undefined : CROSS_SITE_REQUEST;
  }
  if (SAFE_METHODS.has(use.method) && !use.upgrade) return undefined;
  return use.fetchSite === "same-origin" ? undefined : CROSS_SITE_REQUEST;
}

/** The rule for a request the gate itself received (`secure`: it came over TLS, directly or through a trusted proxy). */
export function judgeCookieRequest(request: Request, originPolicy: OriginPolicy | undefined, secure: boolean): GateError | undefined {
  const { headers } = request;
  return judgeCookieUse(
    {
      method: request.method,
      upgrade: isWebSocketUpgrade(request),
      origin: headers.get("origin"),
      host: headers.get("host"),
      fetchSite: headers.get("sec-fetch-site"),
      secure,
    },
    originPolicy,
  );
}
