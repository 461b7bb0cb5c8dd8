/**
 * Reading the passkey endpoints' requests: the page's Origin against the passkey origins, the
 * JSON body (bounded, never thrown on), the credential the browser returned, the passkey's name,
 * and the user handle a passkey carries. Refusals are fixed GateErrors: nothing a client sent is
 * echoed back.
 */
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from "@simplewebauthn/server";
import type { Config } from "../config/config.ts";
import { GateError } from "../core/errors.ts";
import { parseOrigin } from "../core/origins.ts";
import { isObject } from "../http/responses.ts";

/** The RP ID and the page origins passkeys may be used from (config.webauthn when set). */
export type WebAuthnSettings = NonNullable<Config["webauthn"]>;

export const PASSKEYS_OFF = new GateError(
  "not_found",
  "Passkeys are not set up on this gate: browsers allow them only on a domain name over HTTPS (or http://localhost). " +
    "Set PUBLIC_URL=https://<name>.local:<port> (or WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS) with TLS, then restart",
);
const NO_ORIGIN = new GateError(
  "forbidden_origin",
  "Passkeys are used from the gate's page in a browser; this request names no page Origin",
);
const FOREIGN_ORIGIN = new GateError(
  "forbidden_origin",
  "Passkeys work only from the gate's own address (PUBLIC_URL or WEBAUTHN_ORIGINS); open the page there and try again",
);
export const BAD_CREDENTIAL = new GateError(
  "invalid_request",
  "response must be the credential the browser returned, as JSON (id, rawId, type public-key, response)",
);
const BAD_NAME = new GateError("invalid_request", "name must be 1 to 64 characters without control characters");

/**
 * Whether a page at `origin` may use passkeys. Without a list (`origins: null`) that is the RP
 * ID's own host on any port over HTTPS, and over HTTP only for localhost, which browsers treat as
 * a secure context.
 */
export function isPasskeyOrigin(origin: string, settings: WebAuthnSettings): boolean {
  if (settings.origins !== null) return settings.origins.includes(origin);
  const url = new URL(origin);
  if (url.hostname !== settings.rpId) return false;
  return url.protocol === "https:" || (url.protocol === "http:" && settings.rpId === "localhost");
}

/** The request's page origin when passkeys may be used from it, else why not. */
export function judgeOrigin(request: Request, settings: WebAuthnSettings): string | GateError {
  const header = request.headers.get("origin");
  const origin = header === null ? undefined : parseOrigin(header);
  if (origin === undefined) return NO_ORIGIN;
  return isPasskeyOrigin(origin, settings) ? origin : FOREIGN_ORIGIN;
}

export { readJsonObject } from "../http/responses.ts";

const BASE64URL = /^[A-Za-z0-9_-]{1,1400}$/;

/**
 * The credential a browser returned (`PublicKeyCredential.toJSON()`), shape only: the library
 * verifies the content. Missing `clientExtensionResults` (older serializers) counts as none.
 */
function parseCredential(value: unknown): (RegistrationResponseJSON & AuthenticationResponseJSON) | undefined {
  if (!isObject(value) || !isObject(value.response) || value.type !== "public-key") return undefined;
  if (typeof value.id !== "string" || !BASE64URL.test(value.id) || value.rawId !== value.id) return undefined;
  const extensions = value.clientExtensionResults ?? {};
  if (!isObject(extensions)) return undefined;
  return { ...value, clientExtensionResults: extensions } as unknown as RegistrationResponseJSON & AuthenticationResponseJSON;
}

export const parseRegistrationCredential = (value: unknown): RegistrationResponseJSON | undefined => parseCredential(value);
export const parseAuthenticationCredential = (value: unknown): AuthenticationResponseJSON | undefined => parseCredential(value);

/** What the person called the passkey, or a dated default; a refusal for an unusable name. */
export function parsePasskeyName(value: unknown, now: number): string | GateError {
  if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
    return `Passkey ${new Date(now).toISOString().slice(0, 10)}`;
  }
  if (typeof value !== "string") return BAD_NAME;
  const name = value.trim().normalize("NFC");
  return name.length > 64 || /[\x00-\x1f\x7f-\x9f]/.test(name) ? BAD_NAME : name;
}

/**
 * The WebAuthn user handle of a username: stable, so the authenticator keeps one passkey per
 * account, and a digest rather than the name, since the spec asks for no personal data in it.
 */
export function userHandleOf(username: string): Uint8Array<ArrayBuffer> {
  const handle = new Uint8Array(32);
  Bun.SHA256.hash(`tokengate passkey user\n${username}`, handle);
  return handle;
}
