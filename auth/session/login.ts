/**
 * Browser sign-in: `GET /auth/login` (the console page), `POST /auth/login` with a username and
 * password or an API key pasted once, and `POST /auth/logout` (this browser, or everywhere).
 * Failures are counted and audited like any credential; a page without script gets 303s back to
 * the login page with a plain error code, a script gets JSON.
 */
import type { PasswordAuthenticator } from "../authn/users.ts";
import { GateError, tooManyAttempts } from "../core/errors.ts";
import type { OriginPolicy } from "../core/origins.ts";
import { parseQuery, valuesOf } from "../core/query.ts";
import type { Authenticator, Principal } from "../core/principal.ts";
import type { Guard } from "../guard/guard.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import { judgeCookieRequest } from "../http/csrf.ts";
import { LOGIN_PATH } from "../http/navigation.ts";
import { answerStoreFailures, jsonResponse, readForm, toResponse } from "../http/responses.ts";
import type { HttpRoute } from "../http/routes.ts";
import { parseApiKey } from "../secrets/keys.ts";
import type { GateServer } from "../ws/data.ts";
import { checkPassword } from "./password-check.ts";
import { prefersJson, type SessionIssuer } from "./sessions.ts";

export { LOGIN_PATH };
export const LOGOUT_PATH = "/auth/logout";

export interface LoginOptions {
  readonly issuer: SessionIssuer;
  readonly authenticate: Authenticator;
  /** Absent: the login page takes no passwords (no users can sign in that way). */
  readonly authenticatePassword: PasswordAuthenticator;
  readonly passwordTransport: TransportCheck | undefined;
  readonly guard: Guard;
  readonly audit: AuditLog;
  /** Counts refusals by kind (METRICS). */
  readonly metrics?: GateMetrics | undefined;
  readonly addressOf: AddressResolver;
  readonly originPolicy: OriginPolicy;
  /** The sign-in page itself (the console bundle's page), for GET and HEAD. */
  readonly page: (request: Request) => Response | Promise<Response>;
}

const NO_CREDENTIAL = new GateError("invalid_request", "Send api_key, or username and password");
const TWO_CREDENTIALS = new GateError("invalid_request", "Send either api_key or username and password, not both");
export const KEYS_ONLY = new GateError(
  "access_denied",
  "Only an API key (tg_…) opens a browser session this way; the bootstrap token and access tokens stay in the page that holds them",
);

/** A refusal: JSON for a script; for a page, back to the login page with the code (plain words are the page's job). */
function refuseSignIn(request: Request, error: GateError, rd: string | undefined): Response {
  if (prefersJson(request)) return toResponse(error);
  const query = new URLSearchParams({ rd: rd ?? "/", error: error.code });
  return new Response(null, { status: 303, headers: { location: `${LOGIN_PATH}?${query}`, "cache-control": "no-store" } });
}

/** The `rd` of the request's own query, if any. */
function queryRd(url: string): string | undefined {
  const mark = url.indexOf("?");
  return mark === -1 ? undefined : valuesOf(parseQuery(url.slice(mark + 1)), "rd")[0];
}

/** What the two endpoints do; each step a method, over the options they share. */
class LoginEndpoints {
  constructor(private readonly options: LoginOptions) {}

  private settle(
    request: Request,
    server: GateServer,
    error: GateError,
    names: { keyId?: string | undefined; username?: string },
    path = LOGIN_PATH,
  ) {
    const { guard, audit, metrics, addressOf } = this.options;
    return settleRefusal({ guard, audit, metrics }, { error, address: addressOf(request, server), path, ...names });
  }

  /** An API key, and only an API key: a JWT or the bootstrap token stays in the page that holds it. */
  private async signInWithKey(request: Request, server: GateServer, apiKey: string): Promise<Principal | GateError> {
    const who = await this.options.authenticate(apiKey);
    if (who instanceof GateError) return this.settle(request, server, who, { keyId: parseApiKey(apiKey)?.id });
    return who.kind === "key" && who.session === null && who.tokenId === null ? who : KEYS_ONLY;
  }

  private signInWithPassword(request: Request, server: GateServer, username: string, password: string) {
    return checkPassword(this.options, request, server, { username, password, path: LOGIN_PATH });
  }

  async signIn(request: Request, server: GateServer): Promise<Response> {
    const ban = this.options.guard.retryAfter(this.options.addressOf(request, server));
    if (ban > 0) return refuseSignIn(request, tooManyAttempts(ban), undefined);
    const form = await readForm(request);
    if (form instanceof GateError) return refuseSignIn(request, form, undefined);
    // A page without script cannot fill the form's rd: its form posts back to `/auth/login?rd=…`.
    const rd = form.get("rd") || queryRd(request.url);
    const apiKey = form.get("api_key") || undefined;
    const username = form.get("username") || undefined;
    const password = form.get("password");
    const hasPassword = username !== undefined && password !== undefined;
    if (apiKey !== undefined && hasPassword) return refuseSignIn(request, TWO_CREDENTIALS, rd);
    let who: Principal | GateError = NO_CREDENTIAL;
    if (apiKey !== undefined) who = await this.signInWithKey(request, server, apiKey.trim());
    else if (hasPassword) who = await this.signInWithPassword(request, server, username, password);
    if (who instanceof GateError) return refuseSignIn(request, who, rd);
    return this.options.issuer.finishSignIn(request, server, who, apiKey !== undefined ? "key" : "password", rd);
  }

  async signOut(request: Request, server: GateServer): Promise<Response> {
    const { issuer } = this.options;
    const presented = issuer.presentedSession(request, server);
    if (presented !== undefined) {
      const forged = judgeCookieRequest(request, this.options.originPolicy, issuer.settings.secureTransport(request, server));
      // Audited like every CSRF refusal: a page tried to sign someone out behind their back.
      if (forged !== undefined) return toResponse(this.settle(request, server, forged, {}, LOGOUT_PATH));
    }
    const everywhere = await asksEverywhere(request);
    const ended = presented === undefined ? undefined : await issuer.endPresented(presented, everywhere ? "logout_everywhere" : "logout");
    const others = ended !== undefined && everywhere ? await issuer.endAllOf(ended.subject, "logout_everywhere") : 0;
    const cleared = issuer.cookieClearing(request, server);
    if (prefersJson(request)) {
      const body = JSON.stringify({ signed_out: ended !== undefined, sessions_ended: (ended === undefined ? 0 : 1) + others });
      return jsonResponse(200, body, { "set-cookie": cleared });
    }
    return new Response(null, { status: 303, headers: { location: LOGIN_PATH, "set-cookie": cleared, "cache-control": "no-store" } });
  }
}

/** `everywhere=1` (or true/yes/on) in a form body: sign out every session of this person. */
async function asksEverywhere(request: Request): Promise<boolean> {
  if (request.headers.get("content-type")?.startsWith("application/x-www-form-urlencoded") !== true) return false;
  const form = await readForm(request);
  return form instanceof Map && ["1", "true", "yes", "on"].includes(form.get("everywhere") ?? "");
}

export function createLoginRoutes(options: LoginOptions): HttpRoute[] {
  const endpoints = new LoginEndpoints(options);
  const login = answerStoreFailures((request: Request, _principal: undefined, server: GateServer) => endpoints.signIn(request, server));
  return [
    {
      kind: "http",
      path: LOGIN_PATH,
      methods: ["GET", "HEAD", "POST"],
      scope: null,
      // Only the POST checks credentials, but a banned client has no business with the page either.
      guarded: true,
      handle: (request, principal, server) => (request.method === "POST" ? login(request, principal, server) : options.page(request)),
    },
    {
      kind: "http",
      path: LOGOUT_PATH,
      methods: ["POST"],
      scope: null,
      handle: answerStoreFailures((request, _principal, server) => endpoints.signOut(request, server)),
    },
  ];
}
