/**
 * Reading a presented token out of a request. Pure: no I/O, never throws. Each parser returns
 * `undefined` for malformed input; `readCredential` turns the combination of sources into a
 * single token, "none", or an `invalid_request` refusal that says which rule was broken.
 */
import { GateError } from "../core/errors.ts";
import { isTokenShaped, MAX_TOKEN_LENGTH } from "../secrets/tokens.ts";
import { preparePassword } from "../secrets/passwords.ts";
import { isSessionToken, mayHoldSessionCookie, readSessionCookies } from "../secrets/sessions.ts";

export type CredentialSource = "x-auth-token" | "authorization" | "query" | "subprotocol";

export interface Credential {
  readonly token: string;
  readonly source: CredentialSource;
}

/** The subprotocol a browser offers alongside its token; the only one the server ever echoes. */
export const SUBPROTOCOL = "tokengate";
export const SUBPROTOCOL_BEARER_PREFIX = "tokengate.bearer.";

export interface ParsedAuthorization {
  /** Lower-cased scheme name. */
  readonly scheme: string;
  /** Everything after the scheme and its separating spaces; may be empty. */
  readonly value: string;
}

const AUTHORIZATION = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?: +(.*))?$/;

/** Splits an `Authorization` header into scheme and credentials (RFC 9110 §11.4). */
export function parseAuthorization(header: string): ParsedAuthorization | undefined {
  const match = AUTHORIZATION.exec(header);
  if (match === null) return undefined;
  return { scheme: match[1]!.toLowerCase(), value: match[2] ?? "" };
}

/** The token of `Authorization: Bearer <token>`, or `undefined` when the value is not one token. */
export function parseBearerToken(header: string): string | undefined {
  const parsed = parseAuthorization(header);
  if (parsed === undefined || parsed.scheme !== "bearer") return undefined;
  return isTokenShaped(parsed.value) ? parsed.value : undefined;
}

/**
 * Username and password from `Authorization: Basic` (RFC 7617). Holds a password, so it refuses
 * to be serialized or inspected with its contents.
 */
export class BasicCredentials {
  readonly username: string;
  readonly password: string;

  constructor(username: string, password: string) {
    this.username = username;
    this.password = password;
  }

  toJSON() {
    return { username: this.username, password: "REDACTED" };
  }

  [Symbol.for("nodejs.util.inspect.custom")]() {
    return `BasicCredentials { username: ${JSON.stringify(this.username)}, password: REDACTED }`;
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes RFC 7617 credentials (UTF-8); `undefined` for bad base64, bad UTF-8, no colon or control bytes. */
export function parseBasicCredentials(value: string): BasicCredentials | undefined {
  if (value.length === 0 || value.length > MAX_TOKEN_LENGTH || value.length % 4 !== 0 || !BASE64.test(value)) return undefined;
  let text: string;
  try {
    text = utf8.decode(Buffer.from(value, "base64"));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon <= 0 || /[\x00-\x1f\x7f]/.test(text)) return undefined;
  return new BasicCredentials(text.slice(0, colon).normalize("NFC"), preparePassword(text.slice(colon + 1)));
}

/** Base64url without padding, the alphabet allowed in a `Sec-WebSocket-Protocol` token. */
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface ParsedSubprotocols {
  readonly offered: readonly string[];
  /** The decoded token of a `tokengate.bearer.<base64url>` entry, if one was offered. */
  readonly token: string | undefined;
}

/**
 * Parses `Sec-WebSocket-Protocol: tokengate, tokengate.bearer.<base64url token>`. Returns
 * `undefined` if the list is malformed, if more than one bearer entry is present, or if the
 * bearer entry does not decode to a token-shaped string.
 */
export function parseSubprotocols(header: string): ParsedSubprotocols | undefined {
  const offered = header.split(",").map((part) => part.trim());
  let token: string | undefined;
  for (const name of offered) {
    if (name.length === 0) return undefined;
    if (!name.startsWith(SUBPROTOCOL_BEARER_PREFIX)) continue;
    if (token !== undefined) return undefined;
    const encoded = name.slice(SUBPROTOCOL_BEARER_PREFIX.length);
    if (!BASE64URL.test(encoded) || encoded.length % 4 === 1) return undefined;
    const decoded = Buffer.from(encoded, "base64url").toString("latin1");
    if (!isTokenShaped(decoded)) return undefined;
    token = decoded;
  }
  return { offered, token };
}

/** Encodes a token for the subprotocol transport (what a browser client puts in its protocol list). */
export function encodeSubprotocolToken(token: string): string {
  return SUBPROTOCOL_BEARER_PREFIX + Buffer.from(token, "latin1").toString("base64url");
}

export type CredentialReading = Credential | "none" | GateError;

/** Where the token may come from for a given request; the WebSocket endpoint allows all four. */
export interface CredentialInputs {
  readonly xAuthToken: string | null;
  readonly authorization: string | null;
  /** Every value of the `token` query parameter (the seed's WebSocket transport). */
  readonly queryTokens?: readonly string[];
  readonly subprotocols?: string | null;
}

const MALFORMED_X_AUTH_TOKEN = new GateError(
  "invalid_request",
  "X-Auth-Token must hold exactly one token: visible ASCII without spaces or commas, sent once",
);
const MALFORMED_AUTHORIZATION = new GateError("invalid_request", "The Authorization header is malformed");
const MALFORMED_BEARER = new GateError(
  "invalid_request",
  "Authorization must be 'Bearer <token>' with one token: visible ASCII without spaces or commas, sent once",
);
export const CONFLICTING_TOKENS = new GateError(
  "invalid_request",
  "Different tokens were presented in more than one place; send exactly one",
);
const MALFORMED_BASIC = new GateError(
  "invalid_request",
  "Authorization: Basic must carry base64 of 'username:password' in UTF-8, without control characters",
);
export const UNSUPPORTED_SCHEME = new GateError(
  "missing_token",
  "This Authorization scheme is not accepted here; use 'Bearer <token>' or X-Auth-Token",
);

function malformed(description: string): GateError {
  return new GateError("invalid_request", description);
}

/**
 * The header-only credential of a plain HTTP request: the token, Basic credentials, `undefined`
 * when there is none, or the refusal. This is `readCredential` restricted to the two headers,
 * without allocating on the token path: it runs on every protected request.
 */
export function readHeaderToken(
  xAuthToken: string | null,
  authorization: string | null,
): string | BasicCredentials | GateError | undefined {
  if (xAuthToken !== null && !isTokenShaped(xAuthToken)) return MALFORMED_X_AUTH_TOKEN;
  if (authorization === null) return xAuthToken ?? undefined;
  // The common spelling, without the general parser's match array and lower-casing: a
  // well-formed token after "Bearer " is exactly what parseAuthorization would return.
  if (authorization.startsWith("Bearer ")) {
    const value = authorization.slice(7);
    if (isTokenShaped(value)) return xAuthToken !== null && xAuthToken !== value ? CONFLICTING_TOKENS : value;
  }
  const parsed = parseAuthorization(authorization);
  if (parsed === undefined) return MALFORMED_AUTHORIZATION;
  if (parsed.scheme === "basic" && xAuthToken === null) return parseBasicCredentials(parsed.value) ?? MALFORMED_BASIC;
  if (parsed.scheme !== "bearer") {
    // Another scheme is a client that does not know us yet: answer with the challenge so it
    // learns which scheme to use, rather than calling the request malformed.
    return xAuthToken ?? UNSUPPORTED_SCHEME;
  }
  if (!isTokenShaped(parsed.value)) return MALFORMED_BEARER;
  if (xAuthToken !== null && xAuthToken !== parsed.value) return CONFLICTING_TOKENS;
  return parsed.value;
}

/**
 * Combines every credential the request carries into one. All presented credentials must be
 * well-formed and identical: a request that carries two different tokens is ambiguous and is
 * refused instead of silently preferring one of them.
 */
export function readCredential(inputs: CredentialInputs): CredentialReading {
  const fromHeaders = readHeaderToken(inputs.xAuthToken, inputs.authorization);
  if (fromHeaders instanceof GateError) return fromHeaders;
  // WebSocket upgrades take tokens only: a password check is too slow to sit in front of upgrades.
  if (fromHeaders instanceof BasicCredentials) return UNSUPPORTED_SCHEME;
  let found: Credential | undefined =
    fromHeaders === undefined ? undefined : { token: fromHeaders, source: inputs.xAuthToken !== null ? "x-auth-token" : "authorization" };
  const offer = (token: string, source: CredentialSource): GateError | undefined => {
    if (found !== undefined && found.token !== token) return CONFLICTING_TOKENS;
    found ??= { token, source };
    return undefined;
  };

  if (inputs.queryTokens !== undefined && inputs.queryTokens.length > 0) {
    if (inputs.queryTokens.length > 1) return malformed("The token query parameter was given more than once");
    const token = inputs.queryTokens[0]!;
    if (!isTokenShaped(token)) {
      return malformed("The token query parameter must be one token: visible ASCII without spaces or commas");
    }
    const conflict = offer(token, "query");
    if (conflict !== undefined) return conflict;
  }

  if (inputs.subprotocols !== undefined && inputs.subprotocols !== null) {
    const parsed = parseSubprotocols(inputs.subprotocols);
    if (parsed === undefined) {
      return malformed("Sec-WebSocket-Protocol must be 'tokengate, tokengate.bearer.<base64url token>' with one bearer entry");
    }
    if (parsed.token !== undefined) {
      if (!parsed.offered.includes(SUBPROTOCOL)) {
        // The server must echo one offered protocol; without the plain marker the only
        // candidate would be the one carrying the token, which must never be reflected.
        return malformed("Offer the 'tokengate' subprotocol alongside the tokengate.bearer entry");
      }
      const conflict = offer(parsed.token, "subprotocol");
      if (conflict !== undefined) return conflict;
    }
  }

  return found ?? "none";
}

const SEVERAL_SESSION_COOKIES = new GateError(
  "invalid_request",
  "More than one tokengate sign-in cookie was sent; sign out (or clear this site's cookies) and sign in again",
);
const MALFORMED_SESSION_COOKIE = new GateError("invalid_token", "The sign-in cookie is not one tokengate issued; sign in again");

/**
 * The session token of the request's sign-in cookie (`tgs`, or `__Host-tgs` over TLS), `undefined`
 * when there is none, or the refusal: two different values (a cookie planted by a sibling host or
 * path) are ambiguous, and a value of the wrong shape was not issued by us.
 */
export function readSessionCookie(header: string | null, secure: boolean): string | GateError | undefined {
  if (!mayHoldSessionCookie(header)) return undefined;
  const values = [...new Set(readSessionCookies(header, secure))];
  if (values.length === 0) return undefined;
  if (values.length > 1) return SEVERAL_SESSION_COOKIES;
  return isSessionToken(values[0]!) ? values[0]! : MALFORMED_SESSION_COOKIE;
}
