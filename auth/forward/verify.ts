/**
 * Forward auth: `/auth/verify` for a reverse proxy that already fronts the user's services (nginx
 * `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth). The proxy asks about the request it
 * holds; tokengate judges it like any protected request (every token form, scopes, bans, audit) and
 * answers 200 with identity headers, or the usual 401/403/429 with its challenge.
 */
import { readCredential } from "../authn/credentials.ts";
import type { AddressList } from "../core/addresses.ts";
import { normalizeAddress } from "../core/addresses.ts";
import { GateError, tooManyAttempts } from "../core/errors.ts";
import type { Authenticator, Principal } from "../core/principal.ts";
import { parseQuery, valuesOf } from "../core/query.ts";
import { splitUrl } from "../core/redact.ts";
import { findServiceRoute, type ServiceRoute } from "../config/routes-file.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal } from "../guard/refusals.ts";
import { authorizeToken, type UseRecorder, type Verdict } from "../http/authorizer.ts";
import type { AddressResolver } from "../http/clients.ts";
import { toResponse } from "../http/responses.ts";
import type { PublicRoute } from "../http/routes.ts";
import { parseApiKey } from "../secrets/keys.ts";
import type { GateServer } from "../ws/data.ts";

export const VERIFY_PATH = "/auth/verify";

export interface ForwardAuthOptions {
  /** The user's routes (ROUTES_FILE): the one that matches the original request gives the scope. */
  readonly routes: readonly ServiceRoute[];
  readonly authenticate: Authenticator;
  /** Only these peers may describe the original request (X-Forwarded-*, X-Original-*). */
  readonly trustedProxies: AddressList;
  readonly addressOf: AddressResolver;
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
  readonly recordUse?: UseRecorder | undefined;
}

/** The request the proxy holds, as it describes it. */
interface Original {
  readonly host: string | null;
  readonly path: string;
  readonly query: string;
}

const NO_SCOPE = new GateError(
  "access_denied",
  "No route in ROUTES_FILE matches this request and the verify URL names no scope; add a route, or ?scope= to the verify URL",
);

/**
 * What the proxy says it holds: Caddy and Traefik send X-Forwarded-Uri/-Host, nginx X-Original-URI.
 * Believed only from a trusted proxy; from anyone else the verify request itself is judged.
 */
function readOriginal(request: Request, server: GateServer, trustedProxies: AddressList): Original {
  const { headers } = request;
  const peer = normalizeAddress(server.requestIP(request)?.address ?? "-");
  const uri = trustedProxies.has(peer) ? (headers.get("x-forwarded-uri") ?? headers.get("x-original-uri")) : null;
  const host = trustedProxies.has(peer) ? (headers.get("x-forwarded-host") ?? headers.get("host")) : headers.get("host");
  if (uri === null || !uri.startsWith("/")) return { host, path: VERIFY_PATH, query: "" };
  const { path, query } = splitUrl(uri);
  return { host, path, query };
}

/** Identity for the upstream: header values stay visible ASCII (a key's name may not be). */
function identityHeaders(principal: Principal): Headers {
  const safe = (text: string) => (/^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text));
  return new Headers({
    "x-auth-user": safe(principal.name),
    "x-auth-id": safe(principal.id),
    "x-auth-scopes": principal.scopes.join(" "),
    "x-auth-kind": principal.kind,
    "cache-control": "no-store",
  });
}

export function createForwardAuthRoute(options: ForwardAuthOptions): PublicRoute {
  const settle = (request: Request, server: GateServer, original: Original, verdict: Verdict, token: unknown): Response => {
    if (verdict instanceof GateError) {
      const { guard, audit } = options;
      const keyId = typeof token === "string" ? parseApiKey(token)?.id : undefined;
      const address = options.addressOf(request, server);
      return toResponse(
        guard === undefined && audit === undefined
          ? verdict
          : settleRefusal({ guard, audit }, { error: verdict, address, path: original.path, keyId }),
      );
    }
    if (verdict.kind !== "bootstrap") options.recordUse?.(verdict, () => server.requestIP(request)?.address ?? "-");
    return new Response(null, { status: 200, headers: identityHeaders(verdict) });
  };

  const verify = (request: Request, server: GateServer): Response | Promise<Response> => {
    const original = readOriginal(request, server, options.trustedProxies);
    const scope =
      findServiceRoute(options.routes, original.host, original.path)?.scope ??
      valuesOf(parseQuery(splitUrl(request.url).query), "scope")[0];
    if (scope === undefined || scope === "") return toResponse(NO_SCOPE);
    const wait = options.guard?.active === true ? options.guard.retryAfter(options.addressOf(request, server)) : 0;
    if (wait > 0) return toResponse(tooManyAttempts(wait));
    const credential = readCredential({
      xAuthToken: request.headers.get("x-auth-token"),
      authorization: request.headers.get("authorization"),
      queryTokens: original.query === "" ? [] : valuesOf(parseQuery(original.query), "token"),
      subprotocols: request.headers.get("sec-websocket-protocol"),
    });
    const token = credential === "none" ? undefined : credential instanceof GateError ? credential : credential.token;
    const who = authorizeToken(token, options.authenticate, scope);
    return who instanceof Promise
      ? who.then((verdict) => settle(request, server, original, verdict, token))
      : settle(request, server, original, who, token);
  };

  return {
    kind: "http",
    path: VERIFY_PATH,
    // nginx's auth_request keeps the original method; the answer does not depend on it.
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    scope: null,
    handle: (request, _principal, server) => verify(request, server),
  };
}
