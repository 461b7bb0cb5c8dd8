/**
 * Passkeys from the page: sign in with one, or add one once signed in. The gate hands out the
 * options (with a fresh challenge), the browser asks the authenticator, and the gate checks the
 * answer. Browsers allow passkeys only in a secure context on a domain name, never an IP address.
 */
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from "@simplewebauthn/browser";
import { postJson, type Answer, type SignedInAnswer } from "./requests.ts";
import { explainPasskeyError } from "./words.ts";

type OptionsJSON = Parameters<typeof startAuthentication>[0]["optionsJSON"];
type CreationOptionsJSON = Parameters<typeof startRegistration>[0]["optionsJSON"];

/** A literal IPv4 or IPv6 address (browsers refuse passkeys there: an RP ID is a domain). */
export function isIpAddress(hostname: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) || hostname.startsWith("[") || hostname.includes(":");
}

/** Whether this page can offer passkeys at all. */
export function passkeysPossible(): boolean {
  return window.isSecureContext && !isIpAddress(location.hostname) && browserSupportsWebAuthn();
}

/**
 * The options the gate answered, and whatever it sent beside them (a challenge id) to hand back
 * with the browser's answer. Accepts `{ options, …extra }` or the bare options.
 */
function splitOptions<T>(body: Record<string, unknown>): { options: T; extra: Record<string, unknown> } {
  if (typeof body.options !== "object" || body.options === null) return { options: body as T, extra: {} };
  const { options, ...extra } = body;
  return { options: options as T, extra };
}

export type Outcome<T> = Answer<T> | { ok: "failed"; message: string };

async function ceremony<O, T>(
  optionsPath: string,
  finishPath: string,
  run: (options: O) => Promise<unknown>,
  fields: Record<string, unknown>,
  asking: Record<string, unknown> = {},
): Promise<Outcome<T>> {
  const asked = await postJson<Record<string, unknown>>(optionsPath, asking);
  if (asked === undefined || !asked.ok) return asked;
  const { options, extra } = splitOptions<O>(asked.body);
  let response: unknown;
  try {
    response = await run(options);
  } catch (error) {
    return { ok: "failed", message: explainPasskeyError(error) };
  }
  return postJson<T>(finishPath, { ...extra, ...fields, response });
}

/** Signs in with a passkey the authenticator picks (no username asked): the gate's answer. */
export function signInWithPasskey(rd: string): Promise<Outcome<SignedInAnswer>> {
  return ceremony<OptionsJSON, SignedInAnswer>(
    "/auth/passkeys/login/options",
    "/auth/passkeys/login",
    (optionsJSON) => startAuthentication({ optionsJSON }),
    { rd },
  );
}

/** Adds a passkey to the signed-in account; the gate asks for the account's password again first. */
export function addPasskey(password: string): Promise<Outcome<Record<string, unknown>>> {
  return ceremony<CreationOptionsJSON, Record<string, unknown>>(
    "/auth/passkeys/register/options",
    "/auth/passkeys/register",
    (optionsJSON) => startRegistration({ optionsJSON }),
    {},
    { password },
  );
}
