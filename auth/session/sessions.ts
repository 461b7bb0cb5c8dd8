/**
 * Opening and ending browser sessions: a new `tgs_…` id and secret at every sign-in (no
 * fixation), only its digest stored, the cookie with the transport's flags, the audit events, and
 * the answer a sign-in gets (303 back to where the browser was going, or JSON for a script).
 */
import type { Clock } from "../core/clock.ts";
import { subjectOf } from "../authn/principals.ts";
import type { Principal } from "../core/principal.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import { describePrincipal } from "../http/routes.ts";
import { jsonResponse } from "../http/responses.ts";
import { clearedSessionCookie, generateSessionToken, readSessionCookies, parseSessionToken, sessionCookie } from "../secrets/sessions.ts";
import { digestToken, tokenMatchesDigest } from "../secrets/tokens.ts";
import type { SessionMethod, SessionRecord, SessionStore } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";
import { safeRedirect } from "./redirect.ts";

export interface SessionSettings {
  readonly store: SessionStore;
  readonly now: Clock;
  readonly lifetimeMs: number;
  /** Whether the browser reached us over TLS (directly, or through a trusted proxy that says so). */
  readonly secureTransport: TransportCheck;
  readonly addressOf: AddressResolver;
  readonly audit: AuditLog;
  /** Brings the keyring up to date, so the new session (or its end) holds on the very next request. */
  readonly afterChange: () => Promise<unknown>;
  /** Whether a configured route serves this host (a valid `rd` target). */
  readonly servesHost: (host: string) => boolean;
}

export type SessionEndReason = "logout" | "logout_everywhere" | "revoked";

/** Whether the caller wants JSON rather than a page: a script's `Accept`, never a navigation. */
export function prefersJson(request: Request): boolean {
  if (request.headers.get("sec-fetch-mode") === "navigate") return false;
  const accept = request.headers.get("accept") ?? "";
  const json = accept.indexOf("application/json");
  const html = accept.indexOf("text/html");
  return json !== -1 && (html === -1 || json < html);
}

export class SessionIssuer {
  constructor(readonly settings: SessionSettings) {}

  /** A new session for `principal`; the `Set-Cookie` value that carries it. */
  async open(
    request: Request,
    server: GateServer,
    principal: Principal,
    method: SessionMethod,
  ): Promise<{ record: SessionRecord; cookie: string }> {
    const { store, now, lifetimeMs, audit } = this.settings;
    const fresh = generateSessionToken();
    const at = now();
    // A session opened with a key that expires sooner ends with it.
    const expiresAt = principal.expiresAt === null ? at + lifetimeMs : Math.min(at + lifetimeMs, principal.expiresAt);
    const record: SessionRecord = {
      id: fresh.id,
      secretHash: digestToken(fresh.secret),
      subject: subjectOf(principal),
      scopes: principal.scopes,
      roles: principal.roles,
      method,
      createdAt: at,
      lastSeenAt: at,
      expiresAt,
      revokedAt: null,
      createdAddr: this.settings.addressOf(request, server),
    };
    await store.insertSession(record);
    await this.settings.afterChange();
    audit.record("session.created", { session: record.id, subject: record.subject, method, address: record.createdAddr });
    const secure = this.settings.secureTransport(request, server);
    return { record, cookie: sessionCookie(fresh.token, secure, (expiresAt - at) / 1000) };
  }

  /** The well-formed session cookie the request carries, unverified (see endPresented). */
  presentedSession(request: Request, server: GateServer): { id: string; secret: string } | undefined {
    const values = readSessionCookies(request.headers.get("cookie"), this.settings.secureTransport(request, server));
    return values.length === 1 ? parseSessionToken(values[0]!) : undefined;
  }

  async end(id: string, reason: SessionEndReason): Promise<SessionRecord | undefined> {
    const ended = await this.settings.store.revokeSession(id, this.settings.now());
    if (ended === undefined) return undefined;
    await this.settings.afterChange();
    this.settings.audit.record("session.ended", { session: id, subject: ended.subject, reason });
    return ended;
  }

  async endAllOf(subject: string, reason: SessionEndReason): Promise<number> {
    const count = await this.settings.store.revokeSessionsOf(subject, this.settings.now());
    if (count > 0) await this.settings.afterChange();
    this.settings.audit.record("session.ended", { subject, reason, sessions: count });
    return count;
  }

  cookieClearing(request: Request, server: GateServer): string {
    return clearedSessionCookie(this.settings.secureTransport(request, server));
  }

  /** After a successful sign-in: a new session, then 303 to the validated `rd`, or JSON for a script. */
  async finishSignIn(
    request: Request,
    server: GateServer,
    principal: Principal,
    method: SessionMethod,
    rd: string | undefined,
  ): Promise<Response> {
    // Decided before anything is stored: no answer that cannot be sent may leave a session behind.
    const target = safeRedirect(rd, {
      host: request.headers.get("host"),
      servesHost: this.settings.servesHost,
      secure: this.settings.secureTransport(request, server),
    });
    const previous = this.presentedSession(request, server);
    const { record, cookie } = await this.open(request, server, principal, method);
    // Signing in again replaces the browser's earlier session rather than leaving it live.
    if (previous !== undefined) await this.endPresented(previous, "logout");
    if (prefersJson(request)) {
      const body = JSON.stringify({
        session: { id: record.id, method, expires_at: new Date(record.expiresAt).toISOString() },
        principal: describePrincipal(principal),
        redirect: target,
      });
      return jsonResponse(200, body, { "set-cookie": cookie });
    }
    return new Response(null, { status: 303, headers: { location: target, "set-cookie": cookie, "cache-control": "no-store" } });
  }

  /** Ends the presented session if its secret matches (an id alone, which lists show, ends nothing); the ended record. */
  async endPresented(presented: { id: string; secret: string }, reason: SessionEndReason): Promise<SessionRecord | undefined> {
    const stored = await this.settings.store.getSession(presented.id);
    if (stored === undefined || stored.revokedAt !== null || !tokenMatchesDigest(presented.secret, stored.secretHash)) return undefined;
    return this.end(stored.id, reason);
  }
}
