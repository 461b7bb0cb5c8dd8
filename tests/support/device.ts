/**
 * Device login (RFC 8628) from the outside, for tests: a plain HTTP client written from the RFC
 * (form posts, JSON answers), independent of tokengate's own CLI and client code; a person with
 * a password and a browser session; and the approval endpoints called as the console calls them
 * (JSON, the session cookie, the page's Origin). Every code and token is registered with the leak
 * scan as soon as it arrives.
 */
import { hashPassword } from "../../auth/secrets/passwords.ts";
import type { TestApp } from "./harness.ts";
import { trackSecret } from "./secrets.ts";
import { signInWithPassword, type PasswordSession } from "./sessions.ts";

export const DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

async function answerOf(response: Response): Promise<HttpAnswer> {
  const text = await response.text();
  const body = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
  for (const field of ["device_code", "user_code", "access_token", "refresh_token"]) {
    if (typeof body[field] === "string") trackSecret(body[field]);
  }
  return { status: response.status, headers: response.headers, body };
}

/** RFC 8628 §3.1: the device's authorization request. */
export async function requestDeviceCode(base: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/auth/device_authorization`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  return answerOf(response);
}

/** RFC 8628 §3.4: one poll of the token endpoint. */
export async function pollToken(base: string, deviceCode: string, clientId: string, extra: Record<string, string> = {}) {
  const response = await fetch(`${base}/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({ grant_type: DEVICE_GRANT_TYPE, device_code: deviceCode, client_id: clientId, ...extra }).toString(),
  });
  return answerOf(response);
}

/** The started login's fields as a device reads them. */
export interface StartedLogin {
  readonly deviceCode: string;
  readonly userCode: string;
  readonly uri: string;
  readonly complete: string;
  readonly interval: number;
}

export async function startLogin(base: string, clientId: string, scope?: string): Promise<StartedLogin> {
  const answer = await requestDeviceCode(base, scope === undefined ? { client_id: clientId } : { client_id: clientId, scope });
  if (answer.status !== 200) throw new Error(`device_authorization answered ${answer.status} ${JSON.stringify(answer.body.error)}`);
  const { device_code, user_code, verification_uri, verification_uri_complete, interval } = answer.body;
  return {
    deviceCode: String(device_code),
    userCode: String(user_code),
    uri: String(verification_uri),
    complete: String(verification_uri_complete),
    interval: Number(interval),
  };
}

/** A person with a password and the given roles, signed in with a browser session. */
export async function signInPerson(
  app: TestApp,
  username: string,
  roles: readonly string[],
): Promise<PasswordSession & { password: string }> {
  const password = trackSecret(`${username}'s long device-approval password`);
  await app.store.insertUser({ username, passwordHash: await hashPassword(password), roles, createdAt: Date.now() });
  await app.app.keyring.refresh();
  return { ...(await signInWithPassword(app.http, username, password)), password };
}

/** One of the device view's JSON calls (`lookup`, `approve`, `deny`), as the page makes it. */
export async function callApproval(
  app: TestApp,
  action: "lookup" | "approve" | "deny",
  body: Record<string, unknown>,
  headers: Record<string, string>,
): Promise<HttpAnswer> {
  const response = await fetch(`${app.http}/auth/device/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return answerOf(response);
}

/** The session cookie and the page's own Origin: what the console's requests carry. */
export const asPage = (app: TestApp, session: PasswordSession, extra: Record<string, string> = {}) => ({
  cookie: session.cookie,
  origin: app.http,
  ...extra,
});

/** A JWT's claims, read without verifying (the gate verified it when the test used it). */
export function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}
