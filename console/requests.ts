/**
 * The page's requests to the gate. Absolute paths (the page is served at `/` and at
 * `/auth/login`), same-origin credentials, so the HttpOnly session cookie goes along and comes
 * back without the page ever seeing it.
 */
import type { Refusal } from "./words.ts";

export type Principal = { id: string; kind: string; name: string; scopes: string[]; expires_at: string | null };

export type SignedInAnswer = {
  session?: { id: string; method: string; expires_at: string };
  principal: Principal;
  redirect: string;
};

/** A server answer: its JSON body when it said yes, why not when it said no, or `undefined` when unreachable. */
export type Answer<T> = { ok: true; body: T } | { ok: false; refusal: Refusal } | undefined;

async function refusalOf(response: Response): Promise<Refusal> {
  const body = (await response.json().catch(() => ({}))) as {
    code?: string;
    description?: string;
    error?: string;
    error_description?: string;
  };
  const retry = Number(response.headers.get("retry-after") ?? "NaN");
  return {
    status: response.status,
    code: body.code ?? body.error ?? "unknown",
    description: body.description ?? body.error_description ?? response.statusText,
    retryAfter: Number.isFinite(retry) ? retry : undefined,
  };
}

/**
 * A token the page holds in memory (one that cannot open a browser session) goes with the page's
 * own requests as a Bearer header; with a session, the cookie goes and this stays unset.
 */
let bearer: string | undefined;

export function useBearer(token: string | undefined): void {
  bearer = token;
}

const authorization = (): Record<string, string> => (bearer === undefined ? {} : { authorization: `Bearer ${bearer}` });

async function answerOf<T>(request: Promise<Response>): Promise<Answer<T>> {
  const response = await request.catch(() => undefined);
  if (response === undefined) return undefined;
  if (!response.ok) return { ok: false, refusal: await refusalOf(response) };
  const body = (await response.json().catch(() => undefined)) as T | undefined;
  if (body === undefined)
    return { ok: false, refusal: { status: response.status, code: "unknown", description: "", retryAfter: undefined } };
  return { ok: true, body };
}

/** A form POST that asks for JSON rather than a redirect. */
export function postForm<T>(path: string, fields: Record<string, string>): Promise<Answer<T>> {
  return answerOf(
    fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
    }),
  );
}

export function postJson<T>(path: string, body: unknown): Promise<Answer<T>> {
  return answerOf(
    fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { accept: "application/json", "content-type": "application/json", ...authorization() },
      body: JSON.stringify(body),
    }),
  );
}

export function getJson<T>(path: string): Promise<Answer<T>> {
  return answerOf(fetch(path, { credentials: "same-origin", headers: { accept: "application/json", ...authorization() } }));
}

/** Who the session cookie (or a token) signs in as. */
export function whoami(token?: string): Promise<Answer<Principal>> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return answerOf(fetch("/auth/whoami", { credentials: "same-origin", headers }));
}

/** Opens a browser session with a password or an API key. */
export function signIn(fields: { username: string; password: string } | { api_key: string }, rd: string): Promise<Answer<SignedInAnswer>> {
  return postForm("/auth/login", { ...fields, rd });
}

export function signOut(everywhere: boolean): Promise<Answer<{ signed_out: boolean; sessions_ended: number }>> {
  return postForm("/auth/logout", everywhere ? { everywhere: "1" } : {});
}
