/**
 * Calling the admin API in tests: GET without a body, POST with JSON, as an admin's key unless told
 * otherwise (`token: null` sends none), and any secret the answer holds registered with the leak scan.
 */
import { expect } from "bun:test";
import Ajv2020 from "ajv/dist/2020.js";
import { captureOutput, trackSecret } from "./secrets.ts";

export interface AdminCallOptions {
  readonly body?: unknown;
  /** The credential for X-Auth-Token; `null`: none (a cookie in `headers`, or nothing). */
  readonly token?: string | null;
  readonly headers?: Record<string, string>;
}

export interface AdminAnswer<Body> {
  readonly status: number;
  readonly text: string;
  readonly body: Body;
}

/** A caller bound to one app and one default admin token. */
export function adminCaller(base: () => string, adminToken: () => string) {
  return async <Body = Record<string, any>>(path: string, options: AdminCallOptions = {}): Promise<AdminAnswer<Body>> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== null) headers["x-auth-token"] = options.token ?? adminToken();
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${base()}/admin/api${path}`, {
      method: options.body === undefined ? "GET" : "POST",
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
    });
    const text = await response.text();
    const body = JSON.parse(text) as Body & { secret?: unknown };
    if (typeof body.secret === "string") trackSecret(body.secret);
    return { status: response.status, text, body };
  };
}

/**
 * An `adminCaller` whose every answer joins the leak scan (captured as output). `beforeCapture`
 * runs on each answer first: what the file keeps of answers, or secrets the call may have just
 * made (registered before the scan can see them).
 */
export function createCapturedAdminCaller<Body>(
  base: () => string,
  adminToken: () => string,
  beforeCapture: (answer: AdminAnswer<Body>) => void | Promise<void> = () => undefined,
) {
  const call = adminCaller(base, adminToken);
  return async (path: string, options: AdminCallOptions = {}): Promise<AdminAnswer<Body>> => {
    const answer = await call<Body>(path, options);
    await beforeCapture(answer);
    captureOutput(answer.text);
    return answer;
  };
}

/** Who the admin scope keeps out, for `each`: no credential (401), a key without the scope (403, "VIEWER": the file's viewer key). */
export const OUTSIDERS = [
  ["no credential", null, 401, "missing_token"],
  ["a key without the admin scope", "VIEWER", 403, "insufficient_scope"],
] as const;

/** How an outsider is refused: their token (`null`: none) and the status and code every request must get. */
export interface Refusal {
  readonly token: string | null;
  readonly status: number;
  readonly code: string;
}

type RefusableCall = (path: string, options: AdminCallOptions) => Promise<AdminAnswer<{ readonly code?: unknown }>>;

/** Sends each request (path, and a body for a POST or `undefined` for a GET) as the outsider: each must be refused alike. */
export async function expectRequestsRefused(
  call: RefusableCall,
  requests: ReadonlyArray<readonly [path: string, body: unknown]>,
  refusal: Refusal,
): Promise<void> {
  for (const [path, body] of requests) {
    const answer = await call(path, { token: refusal.token, body });
    expect(answer.status).toBe(refusal.status);
    expect(answer.body.code).toBe(refusal.code);
  }
}

/** As much of the OpenAPI document as the check reads. */
interface OpenApiDocument {
  readonly paths: Record<
    string,
    | Record<
        string,
        { readonly responses: Record<string, { readonly content?: Record<string, { readonly schema?: object }> }> } | undefined
      >
    | undefined
  >;
  readonly components: unknown;
}

/** Checks one answer of the admin API against the schema its OpenAPI document declares for it. */
export type AnswerCheck = (method: "get" | "post", path: string, answer: AdminAnswer<unknown>) => void;

/**
 * Reads the OpenAPI document the app serves and checks answers against it with an independent
 * JSON Schema validator (Ajv, draft 2020-12), as openapi.test.ts does: successes and refusals alike.
 */
export async function loadAnswerCheck(base: string): Promise<AnswerCheck> {
  const document = (await (await fetch(`${base}/admin/api/openapi.json`)).json()) as OpenApiDocument;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  return (method, path, answer) => {
    const operation = document.paths[`/admin/api${path}`]?.[method];
    expect(operation).toBeDefined();
    const schema = operation?.responses[String(answer.status)]?.content?.["application/json"]?.schema;
    expect(schema).toBeDefined();
    const validate = ajv.compile({ ...schema, components: document.components });
    if (!validate(answer.body)) console.error(JSON.stringify(validate.errors));
    expect(validate.errors ?? null).toBeNull();
  };
}
