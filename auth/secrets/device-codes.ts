/**
 * Device login (RFC 8628) formats. Pure. The device code is the device's secret: `tgd_` and 256
 * bits, of which only the SHA-256 is stored. The user code is what a person types on another
 * screen: 8 letters from the RFC's consonant alphabet (§6.1: no vowels, so no words, and nothing
 * that looks like a digit), shown as two groups of four (`BDWP-HQPK`). Which clients may log in
 * this way (DEVICE_CLIENTS) is read here too. Parsers return `undefined`, never throw.
 */
import { generateToken } from "./tokens.ts";

/** RFC 8628 §6.1's example alphabet: 20 consonants, upper case. */
export const USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ";
export const USER_CODE_LENGTH = 8;

const DEVICE_CODE_SHAPE = /^tgd_[A-Za-z0-9_-]{43}$/;
/** 240 = 12 × 20: a byte at or above it is drawn again, so every letter is equally likely. */
const UNBIASED_LIMIT = 240;
/** What a person may type around the letters: either case, spaces and dashes anywhere. */
const TYPED_USER_CODE = /^[A-Za-z\s-]{1,32}$/;

/** A login's public id (logs and audit name it): 16 hex characters. */
export function generateDeviceLoginId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString("hex");
}

/** A fresh device code: the device's secret, `tgd_` + 43 base64url characters. */
export function generateDeviceCode(): string {
  return `tgd_${generateToken()}`;
}

/** The code itself when it has a device code's shape, else `undefined`. */
export function parseDeviceCode(text: string): string | undefined {
  return DEVICE_CODE_SHAPE.test(text) ? text : undefined;
}

/** 8 letters from the CSPRNG, uniformly over the alphabet (20⁸ ≈ 2.6·10¹⁰ codes), unformatted. */
export function generateUserCode(): string {
  let code = "";
  const draw = new Uint8Array(16);
  while (code.length < USER_CODE_LENGTH) {
    crypto.getRandomValues(draw);
    for (const byte of draw) {
      if (byte < UNBIASED_LIMIT && code.length < USER_CODE_LENGTH) code += USER_CODE_ALPHABET[byte % USER_CODE_ALPHABET.length];
    }
  }
  return code;
}

/** `BDWPHQPK` → `BDWP-HQPK`: how the code is shown and sent in verification_uri_complete. */
export function formatUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/** verification_uri_complete (RFC 8628 §3.3.1): the page with the code filled in, as the QR codes carry it. */
export function completeVerificationUri(uri: string, code: string): string {
  return `${uri}?user_code=${formatUserCode(code)}`;
}

/** What a person typed (`bdwp hqpk`, `BDWP-HQPK`, `bdwphqpk`) → `BDWPHQPK`; anything else → `undefined`. */
export function parseUserCode(text: string): string | undefined {
  if (!TYPED_USER_CODE.test(text)) return undefined;
  const letters = text.replace(/[\s-]/g, "").toUpperCase();
  if (letters.length !== USER_CODE_LENGTH) return undefined;
  return [...letters].every((letter) => USER_CODE_ALPHABET.includes(letter)) ? letters : undefined;
}

/** What a device client gets once approved: an access and a refresh token (the person's), or an API key of its own. */
export type DeviceCredential = "tokens" | "key";

/** DEVICE_CLIENTS: which client ids may log in as devices, and what each receives. */
export interface DeviceClients {
  /** What a client id not listed gets; `undefined`: it is refused. */
  readonly others: DeviceCredential | undefined;
  readonly listed: ReadonlyMap<string, DeviceCredential>;
}

/** DEVICE_CLIENTS unset: any client id, each getting tokens. */
export const ANY_DEVICE_CLIENT: DeviceClients = Object.freeze({ others: "tokens", listed: new Map() });

/** A `client_id` as the gate takes one (public clients, device clients, DEVICE_CLIENTS): a short plain name, safe to log and to show. */
export const CLIENT_NAME = /^[A-Za-z0-9._:-]{1,64}$/;

/** `tokens` or `key` after `=`; nothing after the name means tokens. */
function readCredential(text: string | undefined): DeviceCredential | undefined {
  if (text === undefined || text === "tokens") return "tokens";
  return text === "key" ? "key" : undefined;
}

/**
 * `tv-box,esp32=key,*` → the clients and what each gets (`*`: every other client id, tokens unless
 * `*=key`). An empty text means no client at all. `undefined` for a malformed entry or a name twice.
 */
export function parseDeviceClients(text: string): DeviceClients | undefined {
  const listed = new Map<string, DeviceCredential>();
  let others: DeviceCredential | undefined;
  let starSeen = false;
  for (const entry of text.split(",").map((part) => part.trim())) {
    if (entry === "") continue;
    const [name = "", credentialText, extra] = entry.split("=").map((part) => part.trim());
    const credential = readCredential(credentialText);
    if (extra !== undefined || credential === undefined) return undefined;
    if (name === "*") {
      if (starSeen) return undefined;
      starSeen = true;
      others = credential;
    } else {
      if (!CLIENT_NAME.test(name) || listed.has(name)) return undefined;
      listed.set(name, credential);
    }
  }
  return { others, listed };
}

/** What `clientId` gets as a device, or `undefined` when it may not log in as one. */
export function deviceCredentialOf(clients: DeviceClients, clientId: string): DeviceCredential | undefined {
  return clients.listed.get(clientId) ?? clients.others;
}
