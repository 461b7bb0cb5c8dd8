/**
 * Signing in on the login page in tests, as a browser's form does: a password POST to
 * `/auth/login`, not following the 303, so its Set-Cookie is read here. The session token is
 * registered with the leak scan before anything can print it.
 */
import { parseSessionToken } from "../../auth/secrets/sessions.ts";
import { trackSecret } from "./secrets.ts";

export interface PasswordSession {
  /** The cookie's `name=value` pair, as a Cookie header sends it back. */
  readonly cookie: string;
  /** The session's public id, as lists and the audit show it. */
  readonly id: string;
}

/**
 * Signs `username` in at `base` (the gate, or a host of it named in `headers`). Throws with the
 * status when no session cookie comes back: a test that meant to be signed in must not go on without.
 */
export async function signInWithPassword(
  base: string,
  username: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<PasswordSession> {
  const response = await fetch(`${base}/auth/login`, {
    method: "POST",
    redirect: "manual",
    headers,
    body: new URLSearchParams({ username, password }),
  });
  const header = response.headers.get("set-cookie");
  if (header === null) throw new Error(`${username} was not signed in (status ${response.status})`);
  const cookie = header.split(";")[0]!;
  const token = trackSecret(cookie.slice(cookie.indexOf("=") + 1));
  const parsed = parseSessionToken(token);
  if (parsed === undefined) throw new Error(`${username}'s sign-in set a cookie that is not a session token`);
  return { cookie, id: parsed.id };
}
