/**
 * HTTP responses. `toResponse` is the one place a GateError becomes a Response: status, body
 * (`detail` + stable `code`) and the RFC 6750 challenge all come from the error's code.
 */
import { GateError, SEED_DETAIL, STORE_UNAVAILABLE } from "../core/errors.ts";
import { StoreError } from "../store/store.ts";

export const REALM = "tokengate";

// One Headers instance, copied by each Response: building headers from a plain object costs
// about twice as much per response, and this sits on every request.
const JSON_HEADERS = new Headers({
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  // An API answers data, never pages: nothing may frame, script or refer from its responses.
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
});

/** `value` added to a comma-separated header list unless it is there already (a proxied service's own list is kept). */
function addToList(headers: Headers, name: string, value: string): void {
  const current = headers.get(name);
  if (current === null) return headers.set(name, value);
  const present = current.split(",").map((item) => item.trim().toLowerCase());
  const missing = value.split(",").filter((item) => !present.includes(item.trim().toLowerCase()));
  if (missing.length > 0) headers.set(name, `${current}, ${missing.map((item) => item.trim()).join(", ")}`);
}

/** Headers a browser on an allowed other origin needs to read a response (and see challenges). */
export function allowOrigin(response: Response, origin: string): Response {
  response.headers.set("access-control-allow-origin", origin);
  addToList(response.headers, "access-control-expose-headers", "WWW-Authenticate, Retry-After");
  addToList(response.headers, "vary", "Origin");
  return response;
}

/** The answer to a CORS preflight from an allowed origin: no authentication needed for it. */
export function preflightResponse(
  origin: string,
  methods: readonly string[],
  allowHeaders = "Authorization, X-Auth-Token, Content-Type",
): Response {
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": methods.join(", "),
      "access-control-allow-headers": allowHeaders,
      "access-control-max-age": "600",
      vary: "Origin",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    },
  });
}

export function jsonResponse(status: number, body: string, extra?: Readonly<Record<string, string>>): Response {
  if (extra === undefined) return new Response(body, { status, headers: JSON_HEADERS });
  const headers = new Headers(JSON_HEADERS);
  for (const name in extra) headers.set(name, extra[name]!);
  return new Response(body, { status, headers });
}

/**
 * RFC 6750 §3: error_description is visible ASCII without `"` or `\`. Ours are fixed strings, but
 * one stray character would make Bun refuse the whole header (a 500), so the mechanism makes sure.
 */
function quotableDescription(text: string): string {
  return text.replaceAll("…", "...").replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "?");
}

/** The `WWW-Authenticate` value for an authentication or authorization refusal. */
export function challengeFor(error: GateError): string {
  const spec = error.policy;
  let challenge = `Bearer realm="${REALM}"`;
  if (spec.bearerError !== undefined) {
    challenge += `, error="${spec.bearerError}", error_description="${quotableDescription(error.description)}"`;
    if (error.scope !== undefined) challenge += `, scope="${quotableDescription(error.scope)}"`;
  }
  return challenge;
}

/** Offered next to the Bearer challenge on 401s when users may sign in with a password. */
export const BASIC_CHALLENGE = `Basic realm="${REALM}", charset="UTF-8"`;

/**
 * Body and headers of a refusal depend only on the error and the Basic offer, and the hot
 * refusals (no token, wrong token) are shared instances: build each combination once, so the
 * failure path costs no more than the success path.
 */
const prepared = new WeakMap<GateError, [Prepared | undefined, Prepared | undefined]>();
type Prepared = { readonly status: number; readonly body: string; readonly headers: Headers };

export function toResponse(error: GateError, offerBasic = false): Response {
  let slots = prepared.get(error);
  if (slots === undefined) prepared.set(error, (slots = [undefined, undefined]));
  const slot = offerBasic ? 1 : 0;
  const ready = (slots[slot] ??= prepare(error, offerBasic));
  return new Response(ready.body, { status: ready.status, headers: ready.headers });
}

function prepare(error: GateError, offerBasic: boolean): Prepared {
  const spec = error.policy;
  // 401s keep the seed's exact `detail` so FastAPI-era clients keep matching on it.
  const body =
    spec.status === 401
      ? { detail: SEED_DETAIL, code: error.code, description: error.description }
      : { detail: error.description, code: error.code };
  const headers = new Headers(JSON_HEADERS);
  for (const name in error.headers) headers.set(name, error.headers[name]!);
  if (spec.challenge) headers.append("www-authenticate", challengeFor(error));
  if (offerBasic && spec.status === 401) headers.append("www-authenticate", BASIC_CHALLENGE);
  return { status: spec.status, body: JSON.stringify(body), headers };
}

const OAUTH_HEADERS = { "cache-control": "no-store", pragma: "no-cache" } as const;

/**
 * The token endpoint's form of the same errors (RFC 6749 §5.2): `error` and `error_description`,
 * which OAuth client libraries parse, plus the gate's `detail` and `code` for consistency.
 */
export function toOAuthResponse(error: GateError): Response {
  const spec = error.policy;
  const body = { error: error.code, error_description: error.description, detail: error.description, code: error.code };
  return jsonResponse(spec.status, JSON.stringify(body), { ...OAUTH_HEADERS, ...error.headers });
}

/** A successful token response (RFC 6749 §5.1): never cached by anyone. */
export function tokenResponse(body: Record<string, unknown>): Response {
  return jsonResponse(200, JSON.stringify(body), OAUTH_HEADERS);
}

/** The gate's own forms are a few hundred bytes; the server's body limit is raised for proxied services. */
export const FORM_LIMIT = 64 * 1024;
export const FORM_TOO_LARGE = new GateError("payload_too_large", "The request body is larger than this endpoint takes (64 KiB)");

/** The body as text, or `undefined` once it passes `limit` bytes (read no further: a chunked body has no declared length). */
export async function readBoundedText(request: Request, limit: number): Promise<string | undefined> {
  if (request.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const WRONG_CONTENT_TYPE = new GateError("invalid_request", "Send the parameters as application/x-www-form-urlencoded");

/**
 * A form body (`application/x-www-form-urlencoded`), refusing repeated parameters (RFC 6749 §3.2:
 * a parameter must not be sent twice), or the refusal to answer with.
 */
export async function readForm(request: Request): Promise<Map<string, string> | GateError> {
  const type = request.headers.get("content-type");
  if (type === null || type.split(";")[0]!.trim().toLowerCase() !== "application/x-www-form-urlencoded") return WRONG_CONTENT_TYPE;
  const text = await readBoundedText(request, FORM_LIMIT);
  if (text === undefined) return FORM_TOO_LARGE;
  const params = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(text)) {
    if (params.has(name))
      return new GateError("invalid_request", `The ${name.slice(0, 40).replace(/[^\x21-\x7e]/g, "?")} parameter was sent more than once`);
    params.set(name, value);
  }
  return params;
}

/** A store that does not answer (PostgreSQL down) is a 503 with Retry-After in the OAuth error shape, never a 500. */
export function withStoreFailures<A extends unknown[]>(
  handle: (...args: A) => Promise<Response>,
  onFailure: (error: StoreError) => void,
): (...args: A) => Promise<Response> {
  return (...args) =>
    handle(...args).catch((error: unknown) => {
      if (!(error instanceof StoreError)) throw error;
      onFailure(error);
      return toOAuthResponse(STORE_UNAVAILABLE);
    });
}

/** A handler whose store stops answering (PostgreSQL down) answers 503 with Retry-After in the gate's error shape, never a 500. */
export function answerStoreFailures<A extends unknown[]>(
  handle: (...args: A) => Response | Promise<Response>,
): (...args: A) => Promise<Response> {
  return async (...args) => {
    try {
      return await handle(...args);
    } catch (error) {
      if (error instanceof StoreError) return toResponse(STORE_UNAVAILABLE);
      throw error;
    }
  };
}

const NOT_JSON = new GateError("invalid_request", "Send the request body as application/json");
const BAD_JSON = new GateError("invalid_request", "The request body is not valid JSON");
const NOT_OBJECT = new GateError("invalid_request", "The request body must be a JSON object");

/** JSON text as a value, or `undefined` when it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * An `application/json` body holding an object (at most 64 KiB), or the refusal. Requiring the
 * JSON type also keeps plain cross-site forms out: a page elsewhere cannot send it without asking.
 */
export async function readJsonObject(request: Request): Promise<Record<string, unknown> | GateError> {
  const type = request.headers.get("content-type");
  if (type === null || type.split(";")[0]!.trim().toLowerCase() !== "application/json") return NOT_JSON;
  const text = await readBoundedText(request, FORM_LIMIT);
  if (text === undefined) return FORM_TOO_LARGE;
  const value = text.trim() === "" ? undefined : parseJson(text);
  if (value === undefined) return BAD_JSON;
  return isObject(value) ? value : NOT_OBJECT;
}
