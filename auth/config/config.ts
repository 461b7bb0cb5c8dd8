/**
 * Startup configuration. Pure: the environment is passed in (server.ts is the only reader of
 * Bun.env), and the result is either a typed config or every problem at once. Problems name the
 * variable, say what is wrong and how to fix it, and never repeat the value they reject.
 */
import { z } from "zod";
import { ACCESS_LOG_MODES, LOG_FORMATS, LOG_LEVELS } from "../core/log.ts";
import { isTokenShaped } from "../secrets/tokens.ts";
import { judgeDuration, parseDuration, parseScopes, type DurationRange } from "../secrets/keys.ts";
import { parseAddressPattern } from "../core/addresses.ts";
import { parseHostPattern, parseOrigin } from "../core/origins.ts";
import { ANY_DEVICE_CLIENT, parseDeviceClients } from "../secrets/device-codes.ts";

export type TokenSource =
  { readonly kind: "env"; readonly value: string } | { readonly kind: "file"; readonly path: string } | { readonly kind: "generated" };

/** Where keys, users, refresh tokens, signing keys and bans live. */
export type StoreLocation = { readonly kind: "sqlite"; readonly file: string } | { readonly kind: "postgres"; readonly url: string };

export interface ConfigProblem {
  readonly variable: string;
  readonly message: string;
}

export type ConfigResult =
  { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

export const MIN_SECRET_LENGTH = 32;

const GENERATE_HINT = "generate one with `openssl rand -hex 32`";

/** Known placeholder secrets, compared case-insensitively with separators ignored. */
const PLACEHOLDERS = [
  "my-super-secret-token",
  "changeme",
  "change-me",
  "secret",
  "token",
  "password",
  "your-secret-here",
  "your-token-here",
  "replace-me",
  "valid-token",
  "example",
  "test",
  "xxxxxxxx",
];
const normalize = (value: string) => value.toLowerCase().replace(/[^a-z0-9]/g, "");
const PLACEHOLDER_SET = new Set(PLACEHOLDERS.map(normalize));
/** Phrases that only ever appear in a template someone forgot to fill in. */
const PLACEHOLDER_PHRASES = ["mysupersecrettoken", "changeme", "replaceme", "yoursecret", "yourtoken", "placeholder"];

/**
 * Every reason a secret is unacceptable, as fix-it sentences that never include the secret.
 * Shared by AUTH_TOKEN, the file behind AUTH_TOKEN_FILE and the generated token file.
 */
export function checkSecret(secret: string): string[] {
  const problems: string[] = [];
  const normalized = normalize(secret);
  if (secret.trim() !== secret || /[\r\n]/.test(secret)) {
    problems.push("has leading or trailing whitespace or a line break; remove it");
  }
  if (/^(["']).*\1$/s.test(secret)) {
    problems.push("is wrapped in quotes, which would become part of the token; remove the quotes");
  }
  if (/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/.test(secret)) {
    problems.push("contains an unexpanded shell variable such as ${VAR} or $VAR; set the real value");
  }
  if (PLACEHOLDER_SET.has(normalized) || PLACEHOLDER_PHRASES.some((phrase) => normalized.includes(phrase))) {
    problems.push(`is a well-known placeholder that anyone could guess; ${GENERATE_HINT}`);
  } else if (secret.length < MIN_SECRET_LENGTH) {
    problems.push(`is shorter than ${MIN_SECRET_LENGTH} characters; ${GENERATE_HINT}`);
  } else if (new Set(secret).size < 8) {
    problems.push(`uses fewer than 8 distinct characters, which is trivially guessable; ${GENERATE_HINT}`);
  }
  if (problems.length === 0 && !isTokenShaped(secret)) {
    problems.push(`contains a character clients cannot send in a header (space, comma, control or non-ASCII); ${GENERATE_HINT}`);
  }
  return problems;
}

/** A whole number read from the environment, with the bounds spelled out in the error. */
function wholeNumber(variable: string, min: number, max: number, fallback: number, unit = "") {
  const message = `must be a whole number from ${min} to ${max}${unit}; set ${variable}=${fallback} or unset it for the default`;
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return fallback;
      const value = Number(raw.trim());
      if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
        ctx.addIssue({ code: "custom", message });
        return z.NEVER;
      }
      return value;
    });
}

/**
 * A comma-separated list whose entries `parse` accepts; the message names what an entry must be.
 * `fallback` applies only when the variable is unset: set but empty means an empty list.
 */
function list(parse: (entry: string) => string | undefined, what: string, fallback: readonly string[] = []) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const entries =
        raw === undefined
          ? [...fallback]
          : raw
              .split(",")
              .map((entry) => entry.trim())
              .filter((entry) => entry !== "");
      const parsed = entries.map(parse);
      if (parsed.some((entry) => entry === undefined)) {
        ctx.addIssue({ code: "custom", message: `must be a comma-separated list of ${what}; fix or remove the entries that are not` });
        return z.NEVER;
      }
      return parsed as string[];
    });
}

/** A boolean in any of zod's stringbool spellings (true/false, 1/0, yes/no, on/off). */
function flag(fallback: boolean, hint: string) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return fallback;
      const parsed = z.stringbool().safeParse(raw.trim());
      if (!parsed.success) {
        ctx.addIssue({ code: "custom", message: `must be true or false (also 1/0, yes/no, on/off); ${hint}` });
        return z.NEVER;
      }
      return parsed.data;
    });
}

/** Free text of visible ASCII (an issuer, an audience), with a default. */
function text(variable: string, fallback: string) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return fallback;
      if (!/^[\x21-\x7e]{1,200}$/.test(raw)) {
        ctx.addIssue({ code: "custom", message: `must be 1 to 200 visible ASCII characters without spaces, e.g. ${variable}=${fallback}` });
        return z.NEVER;
      }
      return raw;
    });
}

function choice<const T extends readonly [string, ...string[]]>(variable: string, options: T, hint: string) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const value = raw.trim().toLowerCase();
      if (!(options as readonly string[]).includes(value)) {
        ctx.addIssue({ code: "custom", message: `must be one of ${options.join(", ")}; ${hint.replace("$VAR", variable)}` });
        return z.NEVER;
      }
      return value as T[number];
    });
}

/** A duration such as `7d` or `12h` within `range`, with the range in the error. */
function duration(variable: string, range: DurationRange, fallback: string) {
  const message = `must be a duration such as ${fallback}, 12h or 90m (s, m, h, d or w), ${range.words}; set ${variable}=${fallback} or unset it`;
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const ms = parseDuration(raw === undefined || raw.trim() === "" ? fallback : raw);
      if (ms === undefined || judgeDuration(ms, range) !== undefined) {
        ctx.addIssue({ code: "custom", message });
        return z.NEVER;
      }
      return ms;
    });
}

const DAY = 86_400_000;
const SESSION_IDLE: DurationRange = { min: 300_000, max: 365 * DAY, words: "from 5m to 365d" };
const SESSION_LIFETIME: DurationRange = { min: 3_600_000, max: 365 * DAY, words: "from 1h to 365d" };

const IP_LITERAL = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9a-f:.]*:[0-9a-f:.]*\]?)$/i;

/** A WebAuthn RP ID: a domain name, never an IP address (browsers refuse those). */
export function parseRpId(text: string): string | undefined {
  const host = text.trim().toLowerCase().replace(/\.$/, "");
  if (IP_LITERAL.test(host)) return undefined;
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(host) ? host : undefined;
}

export const DEFAULT_ROLE_SCOPES = "admin=*;viewer=data:read,ws:connect";
const ROLE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** `admin=*;viewer=data:read,ws:connect` → a map, or `undefined` if any part is malformed. */
export function parseRoleScopes(text: string): Map<string, string[]> | undefined {
  const roles = new Map<string, string[]>();
  for (const part of text
    .split(";")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")) {
    const eq = part.indexOf("=");
    const name = part.slice(0, eq).trim();
    const scopes = eq === -1 ? undefined : parseScopes(part.slice(eq + 1));
    if (eq <= 0 || !ROLE_NAME.test(name) || scopes === undefined || roles.has(name)) return undefined;
    roles.set(name, scopes);
  }
  return roles.size === 0 ? undefined : roles;
}

/** The embedded store's file name under DATA_DIR. */
export const DATABASE_FILE = "tokengate.db";

const STORE_URL_HINT =
  "use sqlite:///path/to/tokengate.db (or unset it for DATA_DIR/tokengate.db) or postgres://user:password@host:5432/database";

/** STORE_URL → where the store lives; `undefined` when it is neither a SQLite path nor a PostgreSQL URL. */
export function parseStoreUrl(raw: string | undefined, dataDir: string): StoreLocation | undefined {
  const text = raw?.trim() ?? "";
  if (text === "") return { kind: "sqlite", file: `${dataDir.replace(/\/+$/, "") || "."}/${DATABASE_FILE}` };
  if (text.startsWith("sqlite:")) {
    const path = text.slice("sqlite:".length).replace(/^\/\//, "");
    return path === "" ? parseStoreUrl(undefined, dataDir) : /[\0\r\n]/.test(path) ? undefined : { kind: "sqlite", file: path };
  }
  if (/^postgres(?:ql)?:\/\//.test(text)) {
    try {
      const url = new URL(text);
      return url.hostname === "" || url.pathname.length <= 1 ? undefined : { kind: "postgres", url: text };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function redisUrlShaped(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "";
  } catch {
    return false;
  }
}

// zod compiles an object schema into a function on its first parse. The environment is parsed
// once per start, so compiling costs ~3–5 ms of startup and never pays back.
z.config({ jitless: true });

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]+)$/;

const envSchema = z.object({
  AUTH_TOKEN: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      if (value === undefined) return;
      if (value === "") {
        ctx.addIssue({
          code: "custom",
          message: "is set but empty; unset it to have a token generated under DATA_DIR, or set a strong secret",
        });
        return;
      }
      for (const message of checkSecret(value)) ctx.addIssue({ code: "custom", message });
    }),
  AUTH_TOKEN_FILE: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      if (value !== undefined && value.trim() === "") {
        ctx.addIssue({ code: "custom", message: "is set but empty; give the path of a file that holds the secret, or unset it" });
      }
    }),
  PORT: wholeNumber("PORT", 0, 65535, 8000),
  HOST: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      if (value !== undefined && value !== "" && !HOST.test(value)) {
        ctx.addIssue({
          code: "custom",
          message: "must be an IP address or a host name, e.g. 0.0.0.0 (every interface) or 127.0.0.1 (this machine only)",
        });
      }
    }),
  DATA_DIR: z.string().optional(),
  STORE_URL: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      // The URL may hold a database password: the message describes, never repeats it.
      if (parseStoreUrl(value, ".") === undefined)
        ctx.addIssue({ code: "custom", message: `is not a store URL tokengate understands; ${STORE_URL_HINT}` });
    }),
  REDIS_KEY_PREFIX: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return "tokengate:";
      if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(raw)) {
        ctx.addIssue({
          code: "custom",
          message: "must be 1 to 64 letters, digits or :_.- characters, e.g. REDIS_KEY_PREFIX=tokengate:home:",
        });
        return z.NEVER;
      }
      return raw;
    }),
  REDIS_URL: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      if (value !== undefined && value.trim() !== "" && !redisUrlShaped(value.trim())) {
        ctx.addIssue({
          code: "custom",
          message:
            "must be a Redis URL such as redis://127.0.0.1:6379 or rediss://:password@host:6380, or unset it to count attempts in this process",
        });
      }
    }),
  LOG_LEVEL: choice("LOG_LEVEL", LOG_LEVELS, "set $VAR=info or unset it"),
  LOG_FORMAT: choice("LOG_FORMAT", LOG_FORMATS, "set $VAR=json, or unset it for pretty on a terminal and json otherwise"),
  ALLOWED_HOSTS: list(parseHostPattern, "host names or *.suffix patterns, e.g. gate.lan,*.home.arpa"),
  ALLOWED_ORIGINS: list(parseOrigin, "origins such as https://dash.lan:8443 (scheme, host, optional port; no path)"),
  TRUSTED_PROXIES: list(parseAddressPattern, "addresses or IPv4 CIDRs such as 10.0.0.2,192.168.1.0/24"),
  // Unset: loopback is exempt (your own box). Set, even to nothing: exactly the listed addresses.
  BAN_EXEMPT: list(parseAddressPattern, "addresses or IPv4 CIDRs (empty: nobody is exempt)", ["127.0.0.1", "::1"]),
  METRICS: flag(true, "set METRICS=false to turn GET /metrics and the counting behind it off"),
  // Loopback always may scrape; these addresses too. Anyone else needs a credential with metrics:read.
  METRICS_ALLOW: list(parseAddressPattern, "addresses or IPv4 CIDRs allowed to scrape /metrics without a credential, e.g. 10.0.0.5"),
  AUDIT_LOG_FILE: z.string().optional(),
  ROUTES_FILE: z.string().optional(),
  AUDIT_SUCCESS_SAMPLE: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return 0;
      const value = Number(raw.trim());
      if (!/^(?:0|1|0?\.\d+|1\.0+)$/.test(raw.trim()) || value < 0 || value > 1) {
        ctx.addIssue({
          code: "custom",
          message: "must be a fraction from 0 to 1, e.g. AUDIT_SUCCESS_SAMPLE=0.01 to record 1% of sign-ins",
        });
        return z.NEVER;
      }
      return value;
    }),
  TLS_CERT_FILE: z.string().optional(),
  TLS_KEY_FILE: z.string().optional(),
  ALLOW_INSECURE_PASSWORDS: flag(false, "set ALLOW_INSECURE_PASSWORDS=true only on a network you trust"),
  BASIC_AUTH: flag(false, "set BASIC_AUTH=true to accept curl -u"),
  PASSWORD_GRANT: flag(true, "set PASSWORD_GRANT=false to refuse grant_type=password"),
  PAIRING: flag(true, "set PAIRING=false to turn first-run pairing off"),
  REUSE_PORT: flag(false, "set REUSE_PORT=true only to run several instances on one port, each with the same store"),
  JWT_ALG: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return "EdDSA" as const;
      if (raw.trim() === "EdDSA" || raw.trim() === "HS256") return raw.trim() as "EdDSA" | "HS256";
      ctx.addIssue({ code: "custom", message: "must be EdDSA (default, Ed25519, public JWKS) or HS256 (shared secret, no JWKS)" });
      return z.NEVER;
    }),
  JWT_ISSUER: text("JWT_ISSUER", "tokengate"),
  JWT_AUDIENCE: text("JWT_AUDIENCE", "tokengate"),
  ACCESS_TOKEN_TTL_SECONDS: wholeNumber("ACCESS_TOKEN_TTL_SECONDS", 30, 86_400, 900, " seconds"),
  REFRESH_TOKEN_TTL_SECONDS: wholeNumber("REFRESH_TOKEN_TTL_SECONDS", 60, 31_536_000, 2_592_000, " seconds"),
  ROLE_SCOPES: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const roles = parseRoleScopes(raw === undefined || raw.trim() === "" ? DEFAULT_ROLE_SCOPES : raw);
      if (roles === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `must look like role=scope,scope;role=scope (lower-case names, each role once), e.g. ${DEFAULT_ROLE_SCOPES}`,
        });
        return z.NEVER;
      }
      return roles;
    }),
  ACCESS_LOG: choice("ACCESS_LOG", ACCESS_LOG_MODES, "set $VAR=refused, or unset it"),
  WS_MAX_PAYLOAD_BYTES: wholeNumber("WS_MAX_PAYLOAD_BYTES", 1, 16 * 1024 * 1024, 64 * 1024, " bytes"),
  WS_IDLE_TIMEOUT_SECONDS: wholeNumber("WS_IDLE_TIMEOUT_SECONDS", 8, 960, 120, " seconds"),
  HTTP_IDLE_TIMEOUT_SECONDS: wholeNumber("HTTP_IDLE_TIMEOUT_SECONDS", 1, 255, 10, " seconds"),
  SHUTDOWN_TIMEOUT_SECONDS: wholeNumber("SHUTDOWN_TIMEOUT_SECONDS", 1, 9, 5, " seconds"),
  SESSION_IDLE_TIMEOUT: duration("SESSION_IDLE_TIMEOUT", SESSION_IDLE, "7d"),
  SESSION_LIFETIME: duration("SESSION_LIFETIME", SESSION_LIFETIME, "30d"),
  PUBLIC_URL: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const origin = parseOrigin(raw.trim().replace(/\/$/, ""));
      if (origin === undefined) {
        ctx.addIssue({ code: "custom", message: "must be the URL people open, scheme and host (and port), e.g. https://gate.local:8443" });
        return z.NEVER;
      }
      return origin;
    }),
  WEBAUTHN_RP_ID: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return undefined;
      const rpId = parseRpId(raw);
      if (rpId === undefined) {
        ctx.addIssue({
          code: "custom",
          message: "must be a domain name such as gate.local (browsers refuse passkeys for an IP address); see the README's TLS recipe",
        });
        return z.NEVER;
      }
      return rpId;
    }),
  WEBAUTHN_ORIGINS: list(parseOrigin, "origins such as https://gate.local:8443 where the sign-in page is served"),
  // Unset: any client id may log in as a device and gets tokens. Set, even to nothing: exactly the listed ones.
  DEVICE_CLIENTS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return ANY_DEVICE_CLIENT;
      const clients = parseDeviceClients(raw);
      if (clients === undefined) {
        ctx.addIssue({
          code: "custom",
          message:
            "must be a comma-separated list of client ids (letters, digits and . _ : -), each once, optionally with =key " +
            "(it receives an API key) or =tokens (the default), and * for any other client, e.g. DEVICE_CLIENTS=tv-box,esp32=key",
        });
        return z.NEVER;
      }
      return clients;
    }),
});

/** The environment variables tokengate reads (names only: `doctor` lists which are set). */
export const CONFIG_VARIABLES: ReadonlySet<string> = new Set(Object.keys(envSchema.shape));

export interface ConfigContext {
  /** Whether stdout is a terminal: picks the default LOG_FORMAT. */
  readonly isTTY: boolean;
}

type EnvVars = z.output<typeof envSchema>;

/**
 * The settings the variables mean, built from the parsed variables: the one place a variable
 * becomes a setting. `Config` is this function's result, so a new variable is one schema entry
 * and one line here, and its type follows from its parser.
 */
function toConfig(vars: EnvVars, context: ConfigContext) {
  const dataDir = vars.DATA_DIR === undefined || vars.DATA_DIR === "" ? "./data" : vars.DATA_DIR;
  const tls = isSet(vars.TLS_CERT_FILE) && isSet(vars.TLS_KEY_FILE) ? { certFile: vars.TLS_CERT_FILE, keyFile: vars.TLS_KEY_FILE } : null;
  return {
    token: toTokenSource(vars),
    /** Where keys, users, refresh tokens, signing keys and bans live. */
    store: parseStoreUrl(vars.STORE_URL, dataDir)!,
    /** Shared brute-force counters for several instances; null: counted in this process. */
    redisUrl: isSet(vars.REDIS_URL) ? vars.REDIS_URL.trim() : null,
    /** Prefix of every Redis key tokengate writes, so deployments can share one Redis. */
    redisKeyPrefix: vars.REDIS_KEY_PREFIX,
    port: vars.PORT,
    host: vars.HOST === undefined || vars.HOST === "" ? "0.0.0.0" : vars.HOST,
    dataDir,
    logLevel: vars.LOG_LEVEL ?? "info",
    logFormat: vars.LOG_FORMAT ?? (context.isTTY ? "pretty" : "json"),
    accessLog: vars.ACCESS_LOG ?? "refused",
    /** Extra Host names answered besides IP literals, localhost, the machine's name and *.local. */
    allowedHosts: vars.ALLOWED_HOSTS,
    /** Browser origins allowed to call the API and open WebSockets, besides same-origin pages. */
    allowedOrigins: vars.ALLOWED_ORIGINS,
    /** Proxies whose X-Forwarded-For / Forwarded are believed (addresses or IPv4 CIDRs). */
    trustedProxies: vars.TRUSTED_PROXIES,
    /** Addresses never counted or banned by the brute-force guard. */
    banExempt: vars.BAN_EXEMPT,
    /** GET /metrics (Prometheus): whether it and the counting behind it are on, and who may scrape it without a credential besides loopback. */
    metrics: { enabled: vars.METRICS, allow: vars.METRICS_ALLOW },
    /** Where audit events go: a file path (appended, mode 0600), or null for stdout. */
    auditLogFile: isSet(vars.AUDIT_LOG_FILE) ? vars.AUDIT_LOG_FILE : null,
    /** The TOML file of the user's own services behind the gate, or null for none. */
    routesFile: isSet(vars.ROUTES_FILE) ? vars.ROUTES_FILE : null,
    /** Fraction of successful authentications written to the audit log (0 to 1). */
    auditSuccessSample: vars.AUDIT_SUCCESS_SAMPLE,
    /** PEM certificate and key files; both set means HTTPS and WSS. */
    tls,
    /** Accept passwords over plain HTTP from other machines (off: only TLS or loopback). */
    allowInsecurePasswords: vars.ALLOW_INSECURE_PASSWORDS,
    /** Whether `Authorization: Basic` (users' passwords) is accepted on protected routes. */
    basicAuth: vars.BASIC_AUTH,
    /** Role name → scopes it grants; users get the union of their roles' scopes. */
    roleScopes: vars.ROLE_SCOPES as ReadonlyMap<string, readonly string[]>,
    /** Whether POST /auth/token accepts grant_type=password (the seed's OAuth2PasswordRequestForm flow). */
    passwordGrant: vars.PASSWORD_GRANT,
    /** Whether a device with no keys and no users offers first-run pairing (a one-time code). */
    pairing: vars.PAIRING,
    /** Share PORT with other processes (SO_REUSEPORT); off, a second server on a taken port refuses to start. */
    reusePort: vars.REUSE_PORT,
    jwt: {
      alg: vars.JWT_ALG,
      issuer: vars.JWT_ISSUER,
      audience: vars.JWT_AUDIENCE,
      /** Access-token lifetime, seconds. */
      ttl: vars.ACCESS_TOKEN_TTL_SECONDS,
      /** Refresh-token lifetime, seconds (each exchange starts a new one). */
      refreshTtl: vars.REFRESH_TOKEN_TTL_SECONDS,
    },
    /** Largest WebSocket message accepted, in bytes; larger ones close the socket with 1009. */
    wsMaxPayload: vars.WS_MAX_PAYLOAD_BYTES,
    /** Seconds without traffic (pings included) before an idle WebSocket is closed. */
    wsIdleTimeout: vars.WS_IDLE_TIMEOUT_SECONDS,
    /** Seconds an HTTP keep-alive connection may sit idle. */
    httpIdleTimeout: vars.HTTP_IDLE_TIMEOUT_SECONDS,
    /** Seconds that graceful shutdown waits for sockets before it forces the exit. */
    shutdownTimeout: vars.SHUTDOWN_TIMEOUT_SECONDS,
    sessions: {
      /** A browser session unused this long ends (sliding). */
      idleMs: vars.SESSION_IDLE_TIMEOUT,
      /** A browser session ends this long after sign-in, however busy. */
      lifetimeMs: vars.SESSION_LIFETIME,
    },
    /** Passkeys: from PUBLIC_URL, or WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS. */
    webauthn: toWebAuthn(vars),
    /** The origin people open (PUBLIC_URL), or null: device login then names the Host the device asked. */
    publicUrl: vars.PUBLIC_URL ?? null,
    /** Which client ids may log in as devices (RFC 8628), and whether each gets tokens or an API key. */
    deviceClients: vars.DEVICE_CLIENTS,
  } as const;
}

/**
 * Passkeys: the RP ID (a domain) and the page origins allowed to use it, from WEBAUTHN_RP_ID /
 * WEBAUTHN_ORIGINS or PUBLIC_URL. `origins: null` means any port of the RP ID's host over https
 * (and http on localhost, a secure context too). Null when nothing names a domain.
 */
function toWebAuthn(vars: EnvVars): { readonly rpId: string; readonly origins: readonly string[] | null } | null {
  const fromUrl = vars.PUBLIC_URL === undefined ? undefined : parseRpId(new URL(vars.PUBLIC_URL).hostname);
  const rpId = vars.WEBAUTHN_RP_ID ?? fromUrl;
  if (rpId === undefined) return null;
  if (vars.WEBAUTHN_ORIGINS.length > 0) return { rpId, origins: vars.WEBAUTHN_ORIGINS };
  // PUBLIC_URL on the RP ID's domain (gate.home.lan for home.lan) is the page people open: that origin.
  const onDomain = fromUrl !== undefined && (fromUrl === rpId || fromUrl.endsWith(`.${rpId}`));
  return { rpId, origins: vars.PUBLIC_URL !== undefined && onDomain ? [vars.PUBLIC_URL] : null };
}

/** The validated configuration: derived from the schema through `toConfig`, never declared by hand. */
export type Config = ReturnType<typeof toConfig>;

const isSet = (value: string | undefined): value is string => value !== undefined && value.trim() !== "";

function toTokenSource(vars: EnvVars): TokenSource {
  if (vars.AUTH_TOKEN !== undefined) return { kind: "env", value: vars.AUTH_TOKEN };
  if (vars.AUTH_TOKEN_FILE !== undefined) return { kind: "file", path: vars.AUTH_TOKEN_FILE };
  return { kind: "generated" };
}

/** Problems that involve two variables at once. */
function checkPairs(env: Readonly<Record<string, string | undefined>>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (env.AUTH_TOKEN !== undefined && env.AUTH_TOKEN_FILE !== undefined) {
    problems.push({
      variable: "AUTH_TOKEN_FILE",
      message: "is set together with AUTH_TOKEN; keep only one of them so it is clear which secret is in force",
    });
  }
  const certSet = isSet(env.TLS_CERT_FILE);
  if (certSet !== isSet(env.TLS_KEY_FILE)) {
    problems.push({
      variable: certSet ? "TLS_KEY_FILE" : "TLS_CERT_FILE",
      message: "must be set together with its partner: TLS needs both the certificate (TLS_CERT_FILE) and its private key (TLS_KEY_FILE)",
    });
  }
  problems.push(...checkWebAuthnPairs(env));
  return problems;
}

/** WEBAUTHN_ORIGINS must sit on the RP ID's domain; an RP ID or origins alone do not say enough. */
function checkWebAuthnPairs(env: Readonly<Record<string, string | undefined>>): ConfigProblem[] {
  const rpId = isSet(env.WEBAUTHN_RP_ID) ? parseRpId(env.WEBAUTHN_RP_ID) : undefined;
  const origins = isSet(env.WEBAUTHN_ORIGINS) ? env.WEBAUTHN_ORIGINS.split(",").map((entry) => parseOrigin(entry.trim())) : [];
  if (origins.length === 0 || origins.includes(undefined)) return [];
  if (rpId === undefined && !isSet(env.PUBLIC_URL)) {
    return [
      { variable: "WEBAUTHN_ORIGINS", message: "needs WEBAUTHN_RP_ID (the domain the origins share) or PUBLIC_URL; set one of them" },
    ];
  }
  const domain = rpId ?? parseRpId(new URL(parseOrigin(env.PUBLIC_URL!.trim().replace(/\/$/, "")) ?? "http://invalid").hostname);
  const foreign = origins.filter((origin) => {
    const host = new URL(origin!).hostname;
    return domain === undefined || (host !== domain && !host.endsWith(`.${domain}`));
  });
  if (foreign.length === 0) return [];
  return [
    {
      variable: "WEBAUTHN_ORIGINS",
      message: `every origin must be on the RP ID's domain (${domain ?? "none"}) or a subdomain of it; fix or remove the others`,
    },
  ];
}

const problemsOf = (error: z.ZodError): ConfigProblem[] =>
  error.issues.map((issue) => ({ variable: String(issue.path[0] ?? "environment"), message: issue.message }));

export function parseConfig(env: Readonly<Record<string, string | undefined>>, context: ConfigContext): ConfigResult {
  const parsed = envSchema.safeParse(env);
  const problems = [...(parsed.success ? [] : problemsOf(parsed.error)), ...checkPairs(env)];
  if (!parsed.success || problems.length > 0) return { ok: false, problems };
  return { ok: true, config: toConfig(parsed.data, context) };
}

/** What the CLI needs from the environment, parsed by the very same variable parsers as the server's. */
const cliSchema = envSchema.pick({
  DATA_DIR: true,
  STORE_URL: true,
  ROLE_SCOPES: true,
  JWT_ALG: true,
  HOST: true,
  PORT: true,
  TLS_CERT_FILE: true,
  ROUTES_FILE: true,
});

export interface CliSettings {
  readonly store: StoreLocation;
  readonly roleScopes: ReadonlyMap<string, readonly string[]>;
  readonly jwtAlg: "EdDSA" | "HS256";
  readonly host: string;
  readonly port: number;
  readonly scheme: "http" | "https";
  /** ROUTES_FILE: its routes' scopes are known scopes too. */
  readonly routesFile: string | null;
}

/**
 * The CLI's settings: an invalid JWT_ALG or ROLE_SCOPES is refused with the same message the server
 * gives, instead of being re-derived by other rules. Variables the CLI does not use are not checked.
 */
export function parseCliSettings(
  env: Readonly<Record<string, string | undefined>>,
): { ok: true; settings: CliSettings } | { ok: false; problems: ConfigProblem[] } {
  const parsed = cliSchema.safeParse(env);
  if (!parsed.success) return { ok: false, problems: problemsOf(parsed.error) };
  const vars = parsed.data;
  const dataDir = vars.DATA_DIR === undefined || vars.DATA_DIR === "" ? "./data" : vars.DATA_DIR;
  return {
    ok: true,
    settings: {
      store: parseStoreUrl(vars.STORE_URL, dataDir)!,
      roleScopes: vars.ROLE_SCOPES,
      jwtAlg: vars.JWT_ALG,
      host: vars.HOST === undefined || vars.HOST === "" ? "0.0.0.0" : vars.HOST,
      port: vars.PORT,
      scheme: isSet(vars.TLS_CERT_FILE) ? "https" : "http",
      routesFile: isSet(vars.ROUTES_FILE) ? vars.ROUTES_FILE : null,
    },
  };
}

/** The text printed for a failed configuration: every problem, one per line, no values. */
export function formatConfigProblems(problems: readonly ConfigProblem[], outcome = "nothing was started"): string {
  const noun = problems.length === 1 ? "problem" : "problems";
  const lines = problems.map((problem) => `  - ${problem.variable} ${problem.message}`);
  return `tokengate: the configuration has ${problems.length} ${noun}; ${outcome}.\n${lines.join("\n")}\n`;
}
