/**
 * Which refusals a person's browser gets as a trip to the sign-in page. Per request, never per
 * route: a request that carries a credential is judged as one and never redirected, and only a
 * browser navigation (GET or HEAD that says `Sec-Fetch-Mode: navigate`, or whose `Accept` prefers
 * HTML) without a usable credential is sent to `/auth/login`. A script, an app or curl gets its
 * 401 JSON and challenge as before.
 */

export const LOGIN_PATH = "/auth/login";

/** Whether the request is a browser loading a page (the one kind of request a login page helps). */
export function isNavigation(method: string, headers: Headers): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  const mode = headers.get("sec-fetch-mode");
  if (mode !== null) return mode === "navigate";
  const accept = headers.get("accept");
  if (accept === null) return false;
  const html = accept.indexOf("text/html");
  if (html === -1) return false;
  const json = accept.indexOf("application/json");
  return json === -1 || html < json;
}

/** The sign-in page's address for a browser that asked for `target` (a path with its query, or a URL). */
export function loginLocation(target: string): string {
  return `${LOGIN_PATH}?rd=${encodeURIComponent(target)}`;
}

/** 302 to the sign-in page; `clearCookie` drops a sign-in cookie that no longer works, so the page starts clean. */
export function loginRedirect(target: string, clearCookie?: string): Response {
  const headers = new Headers({ location: loginLocation(target), "cache-control": "no-store", vary: "Accept, Sec-Fetch-Mode" });
  if (clearCookie !== undefined) headers.set("set-cookie", clearCookie);
  return new Response(null, { status: 302, headers });
}
