/**
 * The built-in reverse proxy: the routes file's services as the gate looks them up. A request that
 * matches a route is screened by the gate like any other (Host, Origin, forwarding, misspelt
 * `?token=`), then judged here exactly like a protected route (every credential form, the route's
 * scope, bans, audit) and only then forwarded, HTTP or WebSocket. An unauthenticated client gets
 * its 401 before any service is contacted.
 */
import { CONFLICTING_TOKENS, parseBearerToken, type BasicCredentials } from "../authn/credentials.ts";
import { normalizeAddress, type AddressList } from "../core/addresses.ts";
import { GateError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Principal } from "../core/principal.ts";
import { redactPath, splitUrl } from "../core/redact.ts";
import { findServiceRoute, routesServeHost, type RouteTable, type ServiceRoute } from "../config/routes-file.ts";
import { authorizeToken, Authorizer, type AuthorizerOptions, type Verdict } from "../http/authorizer.ts";
import { peerAddress } from "../http/clients.ts";
import type { Exchange } from "../http/exchange.ts";
import { toResponse } from "../http/responses.ts";
import type { ProtectedRoute, ProxiedRoute, ProxiedRoutes } from "../http/routes.ts";
import { isWebSocketUpgrade } from "../http/screening.ts";
import { isNavigation, loginRedirect } from "../http/navigation.ts";
import { clearedSessionCookie, mayHoldSessionCookie } from "../secrets/sessions.ts";
import { createSocketData, UPGRADE_FAILED } from "../http/upgrades.ts";
import type { WsData } from "../ws/data.ts";
import { readProxyCredential, type ProxyCredential } from "./credential.ts";
import { rewriteRequestHeaders, serviceSubprotocols, upstreamRequestHeaders, type ForwardingFacts } from "./forwarding.ts";
import { describeFailures, forwardHttp, type HttpTarget } from "./http-proxy.ts";
import { openUpstreamSocket } from "./socket-proxy.ts";
import { gateLocation, parseUpstream, upstreamTarget, type Upstream } from "./target.ts";

export interface ProxyOptions extends AuthorizerOptions {
  /** The routes file as currently loaded (replaced whole on a valid edit). */
  readonly table: RouteTable;
  /** Peers whose X-Forwarded-* chain is kept and extended. */
  readonly trustedProxies: AddressList;
  /** The gate serves HTTPS: X-Forwarded-Proto and Forwarded say so. */
  readonly tls: boolean;
  /** Where a service that cannot be reached is reported (at most once a second per route). */
  readonly logger?: Logger | undefined;
}

/** The error's code (ECONNREFUSED, ENOTFOUND, a TLS code…) or its class: never its message, which may hold a URL. */
function describeFailure(error: unknown): string {
  const code = typeof error === "object" && error !== null && "code" in error ? (error as { code: unknown }).code : undefined;
  if (typeof code === "string" && /^[A-Za-z0-9_]{1,60}$/.test(code)) return code;
  return error instanceof Error ? error.name : "unknown";
}

/** Logs a route's unreachable service once a second at most: a page of 50 assets is one line, not 50. */
function createDownReporter(route: ServiceRoute, logger: Logger | undefined): (error: unknown) => void {
  let lastAt = Number.NEGATIVE_INFINITY;
  return (error) => {
    const at = performance.now();
    if (logger === undefined || at - lastAt < 1000) return;
    lastAt = at;
    logger.warn("service cannot be reached; answering 502", { route: route.name, upstream: route.upstream, error: describeFailure(error) });
  };
}

const NO_SOCKETS = new GateError(
  "invalid_request",
  "This service's route does not proxy WebSocket connections; the operator can set websocket = true on it in the routes file",
);
const BAD_SUBPROTOCOLS = new GateError(
  "invalid_request",
  "Sec-WebSocket-Protocol must list distinct protocol names (letters, digits and !#$%&'*+-.^_`|~), separated by commas",
);

/** One route of the routes file, prepared once: its upstream parsed, its refusals built. */
class ServiceProxy implements ProxiedRoute {
  readonly kind = "proxied";
  readonly name: string;
  readonly #upstream: Upstream;
  readonly #target: HttpTarget;

  constructor(
    readonly route: ServiceRoute,
    private readonly authorizer: Authorizer,
    private readonly options: ProxyOptions,
  ) {
    this.name = route.name;
    this.#upstream = parseUpstream(route);
    const timeoutMs = route.timeout_seconds * 1000;
    const upstream = this.#upstream;
    this.#target = {
      quietSeconds: route.timeout_seconds + 2,
      relocate: (location) => gateLocation(location, route, upstream),
      reportDown: createDownReporter(route, options.logger),
      upstream: options.metrics?.upstreamSeries(route.name),
      name: route.name,
      timeoutMs,
      maxBodyBytes: route.max_body_bytes,
      ...describeFailures(route.name, route.timeout_seconds, route.max_body_bytes),
    };
  }

  serve(exchange: Exchange): Response | undefined | Promise<Response | undefined> {
    const ban = this.authorizer.findBan(exchange);
    if (ban !== undefined) return toResponse(ban);
    const upgrade = isWebSocketUpgrade(exchange.request);
    const read = readProxyCredential(exchange.request.headers, exchange.params, upgrade, this.options.authenticatePassword !== undefined);
    if (read.credential === undefined) return this.#serveWithoutToken(exchange, upgrade);
    if (read.authorizationIsOurs && mayHoldSessionCookie(exchange.request.headers.get("cookie"))) {
      const theirs = this.#isServiceAuthorization(read.credential);
      if (theirs === true) return this.#serveWithoutToken(exchange, upgrade);
      if (theirs !== false)
        return theirs.then((own) => (own ? this.#serveWithoutToken(exchange, upgrade) : this.#serveToken(exchange, read, upgrade)));
    }
    return this.#serveToken(exchange, read, upgrade);
  }

  /**
   * With the sign-in cookie, an Authorization the gate did not issue (a web app's own Bearer token,
   * a router's Basic login without BASIC_AUTH, another scheme) is the service's: the cookie is the
   * gate's credential, the header passes through, and nobody is counted as guessing.
   */
  /** A look at whose a header's token is, before the counted check judges the one that is the gate's. */
  #probe(token: string) {
    const { probe, authenticate } = this.authorizer.options;
    return (probe ?? authenticate)(token);
  }

  #isServiceAuthorization(credential: ProxyCredential["credential"]): boolean | Promise<boolean> {
    if (credential instanceof GateError) return true;
    if (typeof credential !== "string") return this.options.authenticatePassword === undefined;
    const isUnknown = (verdict: Principal | GateError) => verdict instanceof GateError && verdict.kind === "unknown_token";
    const verdict = this.#probe(credential);
    return verdict instanceof Promise ? verdict.then(isUnknown) : isUnknown(verdict);
  }

  #serveToken(exchange: Exchange, read: ProxyCredential, upgrade: boolean): Response | undefined | Promise<Response | undefined> {
    const conflict = this.#otherGateCredential(exchange.request.headers, read);
    if (conflict === false) return this.#proceed(exchange, read, upgrade);
    const refuse = () => {
      const settled = this.authorizer.judge(exchange, CONFLICTING_TOKENS, read.credential);
      return toResponse(settled instanceof GateError ? settled : CONFLICTING_TOKENS);
    };
    return conflict === true ? refuse() : conflict.then((found) => (found ? refuse() : this.#proceed(exchange, read, upgrade)));
  }

  /**
   * No token anywhere: the sign-in cookie, if any, is the credential (with the CSRF rule). A
   * navigation without a usable one goes to the sign-in page; anything else gets its 401.
   */
  #serveWithoutToken(exchange: Exchange, upgrade: boolean): Response | undefined | Promise<Response | undefined> {
    const cookie = this.authorizer.readCookie(exchange);
    if (cookie.forged !== undefined) {
      const refused = this.authorizer.judge(exchange, cookie.forged, undefined);
      return toResponse(refused instanceof GateError ? refused : cookie.forged);
    }
    const navigation = !upgrade && isNavigation(exchange.request.method, exchange.request.headers);
    if (cookie.credential === undefined && navigation) return loginRedirect(this.#pageAddress(exchange));
    // A page (a navigation) whose cookie no longer works, or never did (two of them, a foreign value), signs in again with it dropped.
    const toLogin = () => loginRedirect(this.#pageAddress(exchange), this.#clearedCookie(exchange));
    if (navigation && cookie.credential instanceof GateError) return toLogin();
    if (!navigation || typeof cookie.credential !== "string")
      return this.#proceed(
        exchange,
        { credential: cookie.credential, authorizationIsOurs: false },
        upgrade,
        cookie.credential !== undefined,
      );
    const credential = cookie.credential;
    const settle = (verdict: Verdict) => {
      const judged = this.authorizer.judge(exchange, verdict, credential);
      if (judged instanceof GateError && judged.policy.status === 401) return toLogin();
      return this.authorizer.serveVerdict(exchange, this.#protectedFor(exchange, false, false), judged, true);
    };
    const who = authorizeToken(credential, this.authorizer.options.authenticate, this.route.scope);
    return who instanceof Promise ? who.then(settle) : settle(who);
  }

  /** Where the browser was going: the path and query it asked the gate for. */
  #pageAddress(exchange: Exchange): string {
    const { query } = splitUrl(exchange.request.url);
    return query === "" ? exchange.path : `${exchange.path}?${query}`;
  }

  #clearedCookie(exchange: Exchange): string {
    return clearedSessionCookie(this.authorizer.options.secureTransport?.(exchange.request, exchange.server) ?? false);
  }

  #proceed(exchange: Exchange, { credential, authorizationIsOurs }: ProxyCredential, upgrade: boolean, fromCookie = false) {
    if (upgrade && this.route.websocket) return this.#serveUpgrade(exchange, credential, authorizationIsOurs);
    return this.authorizer.serveCredential(exchange, this.#protectedFor(exchange, authorizationIsOurs, upgrade), credential, fromCookie);
  }

  /**
   * Whether Authorization holds another credential of this gate (a second key, the bootstrap token,
   * one of its JWTs) while the gate's came in X-Auth-Token or ?token=: ambiguous, so refused as on
   * /secure-data, and it must never reach the service as "the service's own" Authorization.
   */
  #otherGateCredential(headers: Headers, read: ProxyCredential): boolean | Promise<boolean> {
    if (read.authorizationIsOurs || typeof read.credential !== "string") return false;
    const authorization = headers.get("authorization");
    const bearer = authorization === null ? undefined : parseBearerToken(authorization);
    if (bearer === undefined || bearer === read.credential) return false;
    const isOurs = (verdict: Principal | GateError) => !(verdict instanceof GateError && verdict.kind === "unknown_token");
    const verdict = this.#probe(bearer);
    return verdict instanceof Promise ? verdict.then(isOurs) : isOurs(verdict);
  }

  /** The gate's protected-route shape for this one request: its handler forwards once the principal is known. */
  #protectedFor(exchange: Exchange, authorizationIsOurs: boolean, upgrade: boolean): ProtectedRoute {
    return {
      kind: "http",
      path: exchange.path,
      methods: [],
      scope: this.route.scope,
      handle: (request, principal) =>
        upgrade
          ? toResponse(NO_SOCKETS)
          : forwardHttp({
              exchange,
              target: this.#target,
              url: this.#targetUrl(this.#upstream.origin, exchange),
              headers: rewriteRequestHeaders(request.headers, this.#facts(exchange, principal, authorizationIsOurs)),
            }),
    };
  }

  #serveUpgrade(exchange: Exchange, credential: string | BasicCredentials | GateError | undefined, authorizationIsOurs: boolean) {
    const who = authorizeToken(credential, this.authorizer.options.authenticate, this.route.scope);
    const settle = (verdict: Verdict) => {
      const judged = this.authorizer.judge(exchange, verdict, credential);
      return judged instanceof GateError ? toResponse(judged) : this.#connect(exchange, judged, authorizationIsOurs);
    };
    return who instanceof Promise ? who.then(settle) : settle(who);
  }

  /** Opens the service's socket, then upgrades the client with the service's choice of subprotocol. */
  async #connect(exchange: Exchange, principal: Principal, authorizationIsOurs: boolean): Promise<Response | undefined> {
    const { request, server } = exchange;
    const offered = request.headers.get("sec-websocket-protocol");
    const protocols = serviceSubprotocols(offered);
    if (protocols === undefined) return toResponse(BAD_SUBPROTOCOLS);
    server.timeout(request, this.#target.quietSeconds);
    const started = performance.now();
    const link = await openUpstreamSocket(
      this.#targetUrl(this.#upstream.socketOrigin, exchange),
      protocols,
      upstreamRequestHeaders(request.headers, this.#facts(exchange, principal, authorizationIsOurs)),
      this.#target,
    );
    exchange.noteUpstream(this.name, link instanceof GateError ? 0 : 101, started, this.#target.upstream);
    if (link instanceof GateError) return toResponse(link);
    // The service's choice; else the plain marker if the client offered it (a browser that offered
    // protocols fails an answer without one); never a tokengate.bearer entry.
    const chosen = link.upstream.protocol || (offered?.split(",").some((name) => name.trim() === "tokengate") ? "tokengate" : "");
    const data = this.#socketData(exchange, principal, link);
    const upgraded = server.upgrade(request, chosen === "" ? { data } : { data, headers: { "sec-websocket-protocol": chosen } });
    if (!upgraded) {
      link.upstream.close(1001);
      return toResponse(UPGRADE_FAILED);
    }
    if (principal.kind !== "bootstrap") this.authorizer.options.recordUse?.(principal, () => data.remote);
    exchange.actAs(principal, data.remote);
    return undefined;
  }

  #socketData(exchange: Exchange, principal: Principal, link: WsData["link"]): WsData {
    return createSocketData(exchange, this.authorizer, principal, {
      scope: this.route.scope,
      path: redactPath(exchange.path),
      greeting: "",
      link,
    });
  }

  #targetUrl(origin: string, exchange: Exchange): string {
    return upstreamTarget(origin, this.route, this.#upstream, exchange.path, splitUrl(exchange.request.url).query);
  }

  #facts(exchange: Exchange, principal: Principal, authorizationIsOurs: boolean): ForwardingFacts {
    const { request, server } = exchange;
    const { headers } = request;
    const peer = peerAddress(request, server);
    // Whose chain to keep matters only when there is one: most requests carry none.
    const chained =
      headers.has("x-forwarded-for") || headers.has("forwarded") || headers.has("x-forwarded-proto") || headers.has("x-forwarded-host");
    return {
      peer,
      peerTrusted: chained && this.options.trustedProxies.has(normalizeAddress(peer)),
      proto: this.options.tls ? "https" : "http",
      host: headers.get("host"),
      authorizationIsOurs,
      identity: this.route.identity_headers ? principal : undefined,
    };
  }
}

/** The routes file's services, looked up per request in the table in force. */
export function createProxiedRoutes(options: ProxyOptions): ProxiedRoutes {
  const authorizer = new Authorizer({ ...options, offerBasicChallenge: false });
  // Prepared per route object: a reload brings new objects, and the old ones are collected.
  const prepared = new WeakMap<ServiceRoute, ServiceProxy>();
  return {
    find(host, path) {
      const route = findServiceRoute(options.table.routes, host, path);
      if (route === undefined) return undefined;
      let proxy = prepared.get(route);
      if (proxy === undefined) prepared.set(route, (proxy = new ServiceProxy(route, authorizer, options)));
      return proxy;
    },
    servesHost: (host) => routesServeHost(options.table.routes, host),
  };
}
