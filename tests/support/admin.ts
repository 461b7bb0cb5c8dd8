/**
 * Calling the admin API in tests: GET without a body, POST with JSON, as an admin's key unless told
 * otherwise (`token: null` sends none), and any secret the answer holds registered with the leak scan.
 */
import { trackSecret } from "./secrets.ts";

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
