/**
 * Forward auth: `/auth/verify` for a reverse proxy that already fronts the user's services (nginx
 * `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth). The proxy asks about the request it
 * holds; tokengate judges it like any protected request (every token form, scopes, bans, audit) and
 * answers 200 with identity headers, or the usual 401/403/429 with its challenge.
 */
import { readCredential, readSessionCookie } from "../authn/credentials.ts";
import { judgeCookieUse } from "../http/csrf.ts";
import { isNavigation, loginLocation, loginRedirect } from "../http/navigation.ts";
import { clearedSessionCookie, mayHoldSessionCookie, withoutSessionCookies } from "../secrets/sessions.ts";
import type { AddressList } from "../core/addresses.ts";
import { isTrustedPeer } from "../http/clients.ts";
import { GateError, MISSING_TOKEN } from "../core/errors.ts";
import { setIdentityHeaders } from "./identity.ts";
import type { Principal } from "../core/principal.ts";
import { NO_PARAMS, parseQuery, valuesOf } from "../core/query.ts";
import { redactPath } from "../core/redact.ts";
import { findServiceRoute, type RouteTable, type ServiceRoute } from "../config/routes-file.ts";
import { parseScopes } from "../secrets/keys.ts";
import { authorizeToken, Authorizer, type AuthorizerOptions, type Verdict } from "../http/authorizer.ts";
import { Exchange } from "../http/exchange.ts";
import { toResponse } from "../http/responses.ts";
import type { PublicRoute } from "../http/routes.ts";
import type { GateServer } from "../ws/data.ts";

export const VERIFY_PATH = "/auth/verify";

export interface ForwardAuthOptions extends AuthorizerOptions {
  /** The user's routes (ROUTES_FILE, as currently loaded): the one that matches the original request gives the scope. */
  readonly table: RouteTable;
  /** Only these peers may describe the original request (X-Forwarded-*, X-Original-*). */
  readonly trustedProxies: AddressList;
}

/** The request the proxy holds, as it describes it (origin-form only). */
interface Original {
  readonly host: string | null;
  readonly path: string;
  readonly query: string;
  /** Its method: Caddy and Traefik ask with GET and name the original in X-Forwarded-Method. */
  readonly method: string;
}

const METHOD = /^[A-Z]{3,10}$/;

/** X-Forwarded-Method (Caddy, Traefik) or X-Original-Method (nginx, by convention), else the verify request's own. */
function originalMethod(request: Request): string | undefined {
  const forwarded = request.headers.get("x-forwarded-method");
  const original = request.headers.get("x-original-method");
  // nginx passes a client's own X-Forwarded-Method on beside the X-Original-Method it sets: two that differ are refused.
  if (forwarded !== null && original !== null && forwarded !== original) return undefined;
  const named = forwarded ?? original;
  if (named === null) return request.method;
  return METHOD.test(named) ? named : undefined;
}

const NO_SCOPE = new GateError(
  "access_denied",
  "No route in ROUTES_FILE matches this request and the verify URL names no scope; add a route, or ?scope= to the verify URL",
);
const BAD_ORIGINAL = new GateError(
  "invalid_request",
  "The proxy's X-Forwarded-Uri / X-Original-URI must be one path (origin-form, no dot segments or encoded slashes), and the two must agree, as must X-Forwarded-Method and X-Original-Method",
);
const BAD_SCOPE = new GateError("invalid_request", "?scope= on the verify URL must be one scope such as grafana or camera:view");

/**
 * An origin-form request target → path and query; `undefined` for anything a proxy and tokengate
 * could read differently (dot segments, encoded dots or slashes, backslashes, an absolute URL), so
 * a route cannot be matched by a path the upstream resolves elsewhere.
 */
export function parseOriginForm(uri: string): { path: string; query: string } | undefined {
  if (!uri.startsWith("/") || uri.startsWith("//") || /[\\\s#]/.test(uri)) return undefined;
  const mark = uri.indexOf("?");
  const path = mark === -1 ? uri : uri.slice(0, mark);
  if (/%2[ef]|%5c/i.test(path) || path.split("/").some((segment) => segment === "." || segment === "..")) return undefined;
  return { path, query: mark === -1 ? "" : uri.slice(mark + 1) };
}

/**
 * What the proxy says it holds: Caddy and Traefik send X-Forwarded-Uri/-Host, nginx X-Original-URI.
 * Believed only from a trusted proxy; two that disagree (a client may have sent one that nginx
 * passed on) are refused. From anyone else, only the verify request itself is judged.
 */
function readOriginal(request: Request, server: GateServer, trustedProxies: AddressList): Original | GateError {
  const { headers } = request;
  if (!isTrustedPeer(request, server, trustedProxies))
    return { host: headers.get("host"), path: VERIFY_PATH, query: "", method: request.method };
  const forwarded = headers.get("x-forwarded-uri");
  const original = headers.get("x-original-uri");
  if (forwarded !== null && original !== null && forwarded !== original) return BAD_ORIGINAL;
  const uri = forwarded ?? original;
  const host = headers.get("x-forwarded-host") ?? headers.get("host");
  const method = originalMethod(request);
  if (method === undefined) return BAD_ORIGINAL;
  if (uri === null) return { host, path: VERIFY_PATH, query: "", method };
  const target = parseOriginForm(uri);
  return target === undefined ? BAD_ORIGINAL : { host, ...target, method };
}

/** The verify URL's query → its `?scope=` judgement. A proxy sends the same few verify URLs every time. */
const askedScopes = new Map<string, string | GateError | undefined>();

function readAskedScope(query: string): string | GateError | undefined {
  let asked = askedScopes.get(query);
  if (asked !== undefined || askedScopes.has(query)) return asked;
  const value = valuesOf(parseQuery(query), "scope")[0];
  asked = value === undefined ? undefined : parseScopes(value)?.length === 1 ? value : BAD_SCOPE;
  if (askedScopes.size < 64) askedScopes.set(query, asked);
  return asked;
}

/** The scope to require: the verify URL's `?scope=` (the operator's per-location choice) wins over a route's. */
function chooseScope(request: Request, routes: readonly ServiceRoute[], original: Original): string | GateError {
  const mark = request.url.indexOf("?");
  const asked = mark === -1 ? undefined : readAskedScope(request.url.slice(mark + 1));
  if (asked !== undefined) return asked;
  return findServiceRoute(routes, original.host, original.path)?.scope ?? NO_SCOPE;
}

/** The 200's headers per principal (the keyring hands out the same principal object each time); Response copies them. */
const answers = new WeakMap<Principal, Headers>();

function identityAnswer(principal: Principal): Response {
  let headers = answers.get(principal);
  if (headers === undefined) {
    headers = setIdentityHeaders(new Headers({ "cache-control": "no-store" }), principal);
    answers.set(principal, headers);
  }
  return new Response(null, { status: 200, headers });
}

/** The original request's sign-in cookie and its CSRF verdict, judged with the original method and host. */
function readOriginalCookie(request: Request, server: GateServer, original: Original, options: ForwardAuthOptions) {
  const secure = options.secureTransport?.(request, server) ?? false;
  if (options.secureTransport === undefined) return { credential: undefined, forged: undefined, secure };
  const credential = readSessionCookie(request.headers.get("cookie"), secure);
  const use = {
    method: original.method,
    // nginx's auth_request drops Upgrade and Connection (hop-by-hop) but passes the handshake's own headers on.
    upgrade:
      request.headers.get("upgrade")?.toLowerCase() === "websocket" ||
      request.headers.has("sec-websocket-key") ||
      request.headers.get("sec-fetch-mode") === "websocket",
    secure,
    origin: request.headers.get("origin"),
    host: original.host,
    fetchSite: request.headers.get("sec-fetch-site"),
  };
  const forged = typeof credential === "string" ? judgeCookieUse(use, options.originPolicy) : undefined;
  return { credential, forged, secure };
}

/**
 * A navigation without a usable credential: 302 to the sign-in page on the same host (Caddy and
 * Traefik hand it to the browser). nginx's auth_request cannot pass a 302 on, so its verify URL
 * says `?login=header`: a 401 whose X-Tokengate-Login header its `error_page 401` location
 * turns into the redirect (README: Signing in from a browser).
 */
function answerLogin(request: Request, target: string, clearCookie: string | undefined): Response {
  if (!wantsLoginHeader(request)) return loginRedirect(target, clearCookie);
  const answer = toResponse(MISSING_TOKEN);
  answer.headers.set(LOGIN_HEADER, loginLocation(target));
  return answer;
}

export const LOGIN_HEADER = "x-tokengate-login";

/**
 * The original Cookie header without the gate's sign-in cookie, on every 200: the proxy sends it
 * to the service in place of the browser's (nginx `proxy_set_header Cookie`, Caddy `copy_headers
 * X-Tokengate-Cookie>Cookie`), so the session never reaches the service. Empty when nothing is left.
 */
export const COOKIE_HEADER = "x-tokengate-cookie";

function serviceCookies(header: string | null): string {
  if (header === null) return "";
  return mayHoldSessionCookie(header) ? (withoutSessionCookies(header) ?? "") : header;
}

function wantsLoginHeader(request: Request): boolean {
  const mark = request.url.indexOf("?");
  return mark !== -1 && valuesOf(parseQuery(request.url.slice(mark + 1)), "login")[0] === "header";
}

/** The verify endpoint's steps: the original request, its credential (token or cookie), the answer. */
class ForwardVerifier {
  readonly #authorizer: Authorizer;

  constructor(private readonly options: ForwardAuthOptions) {
    this.#authorizer = new Authorizer(options);
  }

  /** 200 with the identity (and the service's cookies), or the refusal; `judged` when the guard already saw it. */
  settle(exchange: Exchange, verdict: Verdict, token: unknown, judged = false): Response {
    const who = judged ? verdict : this.#authorizer.judge(exchange, verdict, token);
    if (who instanceof GateError) return toResponse(who);
    if (who.kind !== "bootstrap") this.options.recordUse?.(who, () => this.#authorizer.addressOf(exchange.request, exchange.server));
    const answer = identityAnswer(who);
    answer.headers.set(COOKIE_HEADER, serviceCookies(exchange.request.headers.get("cookie")));
    return answer;
  }

  verify(request: Request, server: GateServer): Response | Promise<Response> {
    const { options } = this;
    const original = readOriginal(request, server, options.trustedProxies);
    if (original instanceof GateError) return toResponse(original);
    const scope = chooseScope(request, options.table.routes, original);
    if (scope instanceof GateError) return toResponse(scope);
    // Audited under the original path, redacted like a log line: upstream paths can hold secrets too.
    const exchange = new Exchange(request, server, redactPath(original.path), NO_PARAMS, 0);
    const ban = this.#authorizer.findBan(exchange);
    if (ban !== undefined) return toResponse(ban);
    const credential = readCredential({
      xAuthToken: request.headers.get("x-auth-token"),
      authorization: request.headers.get("authorization"),
      queryTokens: original.query === "" ? [] : valuesOf(parseQuery(original.query), "token"),
      subprotocols: request.headers.get("sec-websocket-protocol"),
    });
    if (credential === "none") return this.verifyWithoutToken(exchange, original, scope);
    const token = credential instanceof GateError ? credential : credential.token;
    const who = authorizeToken(token, options.authenticate, scope);
    // With the sign-in cookie, a Bearer the gate never issued is the web app's own: the cookie decides, nobody is counted as guessing.
    const appsOwn = (verdict: Verdict) =>
      !(credential instanceof GateError) &&
      credential.source === "authorization" &&
      verdict instanceof GateError &&
      verdict.kind === "unknown_token" &&
      mayHoldSessionCookie(request.headers.get("cookie"));
    const answer = (verdict: Verdict) =>
      appsOwn(verdict) ? this.verifyWithoutToken(exchange, original, scope) : this.settle(exchange, verdict, token);
    return who instanceof Promise ? who.then(answer) : answer(who);
  }

  /**
   * No token: the sign-in cookie (with the CSRF rule, judged on the original request), else a
   * browser navigation goes to the sign-in page and everything else gets the 401.
   */
  verifyWithoutToken(exchange: Exchange, original: Original, scope: string): Response | Promise<Response> {
    const { request, server } = exchange;
    const cookie = readOriginalCookie(request, server, original, this.options);
    if (cookie.forged !== undefined) return this.settle(exchange, cookie.forged, undefined);
    const navigation = isNavigation(original.method, request.headers);
    const target = original.query === "" ? original.path : `${original.path}?${original.query}`;
    const toLogin = (clear: boolean) => answerLogin(request, target, clear ? clearedSessionCookie(cookie.secure) : undefined);
    if (cookie.credential === undefined) return navigation ? toLogin(false) : this.settle(exchange, MISSING_TOKEN, undefined);
    const credential = cookie.credential;
    const finish = (verdict: Verdict) => {
      const judged = this.#authorizer.judge(exchange, verdict, credential);
      // A cookie that no longer works is dropped, and the person signs in again.
      if (navigation && judged instanceof GateError && judged.policy.status === 401) return toLogin(true);
      return this.settle(exchange, judged, undefined, true);
    };
    const who = authorizeToken(credential, this.options.authenticate, scope);
    return who instanceof Promise ? who.then(finish) : finish(who);
  }
}

export function createForwardAuthRoute(options: ForwardAuthOptions): PublicRoute {
  const verifier = new ForwardVerifier(options);
  return {
    kind: "http",
    path: VERIFY_PATH,
    // The Origin a proxy passes on is the original request's, on the service's host: judged against that host (CSRF) here.
    judgesOriginItself: true,
    // A proxy may ask with any method (nginx's auth_request and Caddy ask with GET): the original one comes in X-Original-Method / X-Forwarded-Method.
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    scope: null,
    handle: (request, _principal, server) => verifier.verify(request, server),
  };
}
