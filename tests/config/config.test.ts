import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  checkSecret,
  formatConfigProblems,
  parseCliSettings,
  parseConfig,
  parseStoreUrl,
  type StoreLocation,
} from "../../auth/config/config.ts";
import { ROOT } from "../support/harness.ts";
import { newSecret, trackSecret } from "../support/secrets.ts";

const tty = { isTTY: false };

describe("parseConfig defaults", () => {
  test("an empty environment is a valid config with a generated token", () => {
    const result = parseConfig({}, tty);
    expect(result).toEqual({
      ok: true,
      config: {
        token: { kind: "generated" },
        store: { kind: "sqlite", file: "./data/tokengate.db" },
        redisUrl: null,
        redisKeyPrefix: "tokengate:",
        port: 8000,
        host: "0.0.0.0",
        dataDir: "./data",
        logLevel: "info",
        logFormat: "json",
        accessLog: "refused",
        allowedHosts: [],
        allowedOrigins: [],
        trustedProxies: [],
        banExempt: ["127.0.0.1", "::1"],
        metrics: { enabled: true, allow: [] },
        auditLogFile: null,
        auditSuccessSample: 0,
        routesFile: null,
        tls: null,
        allowInsecurePasswords: false,
        basicAuth: false,
        roleScopes: new Map([
          ["admin", ["*"]],
          ["viewer", ["data:read", "ws:connect"]],
        ]),
        passwordGrant: true,
        pairing: true,
        reusePort: false,
        jwt: { alg: "EdDSA", issuer: "tokengate", audience: "tokengate", ttl: 900, refreshTtl: 2_592_000 },
        wsMaxPayload: 65536,
        wsIdleTimeout: 120,
        httpIdleTimeout: 10,
        shutdownTimeout: 5,
        sessions: { idleMs: 7 * 86_400_000, lifetimeMs: 30 * 86_400_000 },
        webauthn: null,
        publicUrl: null,
        deviceClients: { others: "tokens", listed: new Map() },
      },
    });
  });

  test("LOG_FORMAT defaults to pretty on a terminal", () => {
    const result = parseConfig({}, { isTTY: true });
    expect(result.ok && result.config.logFormat).toBe("pretty");
  });

  test("reads every variable", () => {
    const secret = newSecret();
    const result = parseConfig(
      {
        AUTH_TOKEN: secret,
        PORT: "9001",
        HOST: "127.0.0.1",
        DATA_DIR: "/var/lib/tokengate",
        LOG_LEVEL: "WARN",
        LOG_FORMAT: "pretty",
        ACCESS_LOG: "refused",
        ALLOWED_HOSTS: "Gate.lan, *.home.arpa",
        ALLOWED_ORIGINS: "https://dash.lan:8443/",
        TRUSTED_PROXIES: "10.0.0.2",
        BAN_EXEMPT: "",
        METRICS: "false",
        METRICS_ALLOW: "10.0.0.5, 192.168.1.0/24",
        AUDIT_LOG_FILE: "/var/log/tokengate/audit.jsonl",
        AUDIT_SUCCESS_SAMPLE: "0.25",
        TLS_CERT_FILE: "/etc/tokengate/cert.pem",
        TLS_KEY_FILE: "/etc/tokengate/key.pem",
        ALLOW_INSECURE_PASSWORDS: "true",
        BASIC_AUTH: "yes",
        ROLE_SCOPES: "ops=data:read ; kiosk=ws:connect",
        PASSWORD_GRANT: "off",
        JWT_ALG: "HS256",
        JWT_ISSUER: "https://gate.lan",
        JWT_AUDIENCE: "lan-devices",
        ACCESS_TOKEN_TTL_SECONDS: "300",
        REFRESH_TOKEN_TTL_SECONDS: "3600",
        WS_MAX_PAYLOAD_BYTES: "1024",
        WS_IDLE_TIMEOUT_SECONDS: "30",
        HTTP_IDLE_TIMEOUT_SECONDS: "5",
        SHUTDOWN_TIMEOUT_SECONDS: "2",
        STORE_URL: "postgres://gate:pw-in-url@db.lan:5432/tokengate",
        REDIS_URL: "redis://cache.lan:6379",
        REDIS_KEY_PREFIX: "tg:home:",
      },
      tty,
    );
    expect(result).toEqual({
      ok: true,
      config: {
        token: { kind: "env", value: secret },
        store: { kind: "postgres", url: "postgres://gate:pw-in-url@db.lan:5432/tokengate" },
        redisUrl: "redis://cache.lan:6379",
        redisKeyPrefix: "tg:home:",
        port: 9001,
        host: "127.0.0.1",
        dataDir: "/var/lib/tokengate",
        logLevel: "warn",
        logFormat: "pretty",
        accessLog: "refused",
        allowedHosts: ["gate.lan", "*.home.arpa"],
        allowedOrigins: ["https://dash.lan:8443"],
        trustedProxies: ["10.0.0.2"],
        banExempt: [],
        metrics: { enabled: false, allow: ["10.0.0.5", "192.168.1.0/24"] },
        auditLogFile: "/var/log/tokengate/audit.jsonl",
        auditSuccessSample: 0.25,
        routesFile: null,
        tls: { certFile: "/etc/tokengate/cert.pem", keyFile: "/etc/tokengate/key.pem" },
        allowInsecurePasswords: true,
        basicAuth: true,
        roleScopes: new Map([
          ["ops", ["data:read"]],
          ["kiosk", ["ws:connect"]],
        ]),
        passwordGrant: false,
        pairing: true,
        reusePort: false,
        jwt: { alg: "HS256", issuer: "https://gate.lan", audience: "lan-devices", ttl: 300, refreshTtl: 3_600 },
        wsMaxPayload: 1024,
        wsIdleTimeout: 30,
        httpIdleTimeout: 5,
        shutdownTimeout: 2,
        sessions: { idleMs: 7 * 86_400_000, lifetimeMs: 30 * 86_400_000 },
        webauthn: null,
        publicUrl: null,
        deviceClients: { others: "tokens", listed: new Map() },
      },
    });
  });

  test("AUTH_TOKEN_FILE selects the file source", () => {
    const result = parseConfig({ AUTH_TOKEN_FILE: "/run/secrets/token" }, tty);
    expect(result.ok && result.config.token).toEqual({ kind: "file", path: "/run/secrets/token" });
  });
});

describe("secret rules", () => {
  const strong = "Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5u";
  test.each([
    ["the seed's placeholder", "my-super-secret-token", /placeholder/],
    ["changeme", "changeme", /placeholder/],
    ["secret", "secret", /placeholder/],
    ["token", "token", /placeholder/],
    ["a long placeholder", "changeme-changeme-changeme-changeme", /placeholder/],
    ["short", "Zq8rT2vLx9mNpW4c", /shorter than 32/],
    ["${VAR}", "${TOKENGATE_SECRET_FROM_VAULT_XYZ}", /unexpanded shell variable/],
    ["$VAR", `$TOKENGATE_SECRET${strong}`, /unexpanded shell variable/],
    ["double quotes", `"${strong}"`, /quotes/],
    ["single quotes", `'${strong}'`, /quotes/],
    ["trailing newline", `${strong}\n`, /whitespace or a line break/],
    ["leading space", ` ${strong}`, /whitespace/],
    ["low variety", "abababababababababababababababab", /distinct characters/],
    ["inner space", "Zq8rT2vLx9mNpW4c Yb7dHf3kJs6gAe5u", /cannot send in a header/],
    ["comma", "Zq8rT2vLx9mNpW4c,Yb7dHf3kJs6gAe5u", /cannot send in a header/],
    ["non-ASCII", "Zq8rT2vLx9mNpW4cé7dHf3kJs6gAe5uQ", /cannot send in a header/],
  ])("refuses %s", (_name, secret, reason) => {
    const problems = checkSecret(secret);
    expect(problems.join("\n")).toMatch(reason);
  });

  test("accepts a strong secret", () => {
    expect(checkSecret(strong)).toEqual([]);
  });
});

describe("problems", () => {
  test("every problem is reported at once, naming the variable, without echoing any value", () => {
    const weak = trackSecret("weak-but-unique-7f3a");
    const result = parseConfig(
      { AUTH_TOKEN: weak, PORT: "eighty", HOST: "not a host!", LOG_LEVEL: "loud", LOG_FORMAT: "xml", WS_MAX_PAYLOAD_BYTES: "-1" },
      tty,
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((problem) => problem.variable).sort()).toEqual(
      ["AUTH_TOKEN", "HOST", "LOG_FORMAT", "LOG_LEVEL", "PORT", "WS_MAX_PAYLOAD_BYTES"].sort(),
    );
    const text = formatConfigProblems(result.problems);
    for (const value of [weak, "eighty", "not a host!", "loud", "xml"]) expect(text).not.toContain(value);
    expect(text).toContain("6 problems");
    expect(text).toContain("set PORT=8000");
  });

  test.each([
    ["empty AUTH_TOKEN", { AUTH_TOKEN: "" }, "AUTH_TOKEN", /set but empty/],
    ["both token sources", { AUTH_TOKEN: "Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5u", AUTH_TOKEN_FILE: "/x" }, "AUTH_TOKEN_FILE", /keep only one/],
    ["empty AUTH_TOKEN_FILE", { AUTH_TOKEN_FILE: " " }, "AUTH_TOKEN_FILE", /set but empty/],
    ["port out of range", { PORT: "70000" }, "PORT", /0 to 65535/],
    ["port with junk", { PORT: "80a" }, "PORT", /whole number/],
    ["fractional port", { PORT: "80.5" }, "PORT", /whole number/],
    ["idle timeout too large", { WS_IDLE_TIMEOUT_SECONDS: "961" }, "WS_IDLE_TIMEOUT_SECONDS", /8 to 960/],
    ["ALLOWED_HOSTS with a URL", { ALLOWED_HOSTS: "http://gate.lan" }, "ALLOWED_HOSTS", /host names/],
    ["ALLOWED_ORIGINS with a path", { ALLOWED_ORIGINS: "https://dash.lan/app" }, "ALLOWED_ORIGINS", /origins such as/],
    ["ALLOWED_ORIGINS wildcard", { ALLOWED_ORIGINS: "*" }, "ALLOWED_ORIGINS", /origins such as/],
    ["TRUSTED_PROXIES with a name", { TRUSTED_PROXIES: "proxy.lan" }, "TRUSTED_PROXIES", /addresses or IPv4 CIDRs/],
    ["BAN_EXEMPT with a bad CIDR", { BAN_EXEMPT: "10.0.0.0/33" }, "BAN_EXEMPT", /addresses or IPv4 CIDRs/],
    ["METRICS not a boolean", { METRICS: "sometimes" }, "METRICS", /true or false/],
    ["METRICS_ALLOW with a name", { METRICS_ALLOW: "prometheus.lan" }, "METRICS_ALLOW", /addresses or IPv4 CIDRs/],
    ["AUDIT_SUCCESS_SAMPLE above 1", { AUDIT_SUCCESS_SAMPLE: "2" }, "AUDIT_SUCCESS_SAMPLE", /fraction from 0 to 1/],
    ["a certificate without its key", { TLS_CERT_FILE: "/etc/cert.pem" }, "TLS_KEY_FILE", /set together/],
    ["BASIC_AUTH not a boolean", { BASIC_AUTH: "maybe" }, "BASIC_AUTH", /true or false/],
    ["ROLE_SCOPES malformed", { ROLE_SCOPES: "admin" }, "ROLE_SCOPES", /role=scope/],
    ["ROLE_SCOPES role twice", { ROLE_SCOPES: "a=*;a=data:read" }, "ROLE_SCOPES", /each role once/],
    ["ROLE_SCOPES bad scope", { ROLE_SCOPES: "a=Data:Read" }, "ROLE_SCOPES", /role=scope/],
    ["JWT_ALG none", { JWT_ALG: "none" }, "JWT_ALG", /EdDSA/],
    ["TTL too long", { ACCESS_TOKEN_TTL_SECONDS: "999999" }, "ACCESS_TOKEN_TTL_SECONDS", /30 to 86400/],
    ["issuer with a space", { JWT_ISSUER: "my gate" }, "JWT_ISSUER", /visible ASCII/],
    ["unknown access-log mode", { ACCESS_LOG: "some" }, "ACCESS_LOG", /all, refused, off/],
    ["shutdown too long", { SHUTDOWN_TIMEOUT_SECONDS: "10" }, "SHUTDOWN_TIMEOUT_SECONDS", /1 to 9/],
    ["STORE_URL of another engine", { STORE_URL: "mysql://root:pw-7c1@db/x" }, "STORE_URL", /sqlite:\/\/\/path.*postgres:\/\//],
    ["STORE_URL without a database", { STORE_URL: "postgres://gate:pw-7c1@db.lan:5432" }, "STORE_URL", /not a store URL/],
    ["STORE_URL unparseable", { STORE_URL: "postgres://gate:pw-7c1@[db/x" }, "STORE_URL", /not a store URL/],
    ["REDIS_URL of another scheme", { REDIS_URL: "http://cache.lan:6379" }, "REDIS_URL", /redis:\/\/127\.0\.0\.1:6379/],
    ["REDIS_KEY_PREFIX with a space", { REDIS_KEY_PREFIX: "tg home" }, "REDIS_KEY_PREFIX", /letters, digits/],
    ["SESSION_IDLE_TIMEOUT without a unit", { SESSION_IDLE_TIMEOUT: "7" }, "SESSION_IDLE_TIMEOUT", /duration such as 7d.*from 5m to 365d/],
    ["SESSION_IDLE_TIMEOUT too short", { SESSION_IDLE_TIMEOUT: "1m" }, "SESSION_IDLE_TIMEOUT", /from 5m to 365d/],
    ["SESSION_LIFETIME too long", { SESSION_LIFETIME: "400d" }, "SESSION_LIFETIME", /from 1h to 365d/],
    ["WEBAUTHN_RP_ID an IP address", { WEBAUTHN_RP_ID: "192.168.1.20" }, "WEBAUTHN_RP_ID", /domain name.*refuse passkeys for an IP/],
    ["WEBAUTHN_RP_ID an IPv6 address", { WEBAUTHN_RP_ID: "[fe80::1]" }, "WEBAUTHN_RP_ID", /domain name/],
    ["WEBAUTHN_RP_ID with a port", { WEBAUTHN_RP_ID: "gate.local:8443" }, "WEBAUTHN_RP_ID", /domain name/],
    [
      "WEBAUTHN_ORIGINS on another domain",
      { WEBAUTHN_RP_ID: "gate.local", WEBAUTHN_ORIGINS: "https://evil.lan" },
      "WEBAUTHN_ORIGINS",
      /RP ID's domain \(gate\.local\)/,
    ],
    ["WEBAUTHN_ORIGINS without an RP ID", { WEBAUTHN_ORIGINS: "https://gate.local" }, "WEBAUTHN_ORIGINS", /needs WEBAUTHN_RP_ID/],
    [
      "WEBAUTHN_ORIGINS not an origin",
      { WEBAUTHN_RP_ID: "gate.local", WEBAUTHN_ORIGINS: "gate.local" },
      "WEBAUTHN_ORIGINS",
      /origins such as/,
    ],
    ["PUBLIC_URL with a path", { PUBLIC_URL: "https://gate.local/app" }, "PUBLIC_URL", /scheme and host/],
  ])("%s", (_name, env, variable, message) => {
    const result = parseConfig(env, tty);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const problem = result.problems.find((candidate) => candidate.variable === variable);
    expect(problem?.message).toMatch(message);
    // URLs may carry a database password: no problem text repeats any part of it.
    expect(formatConfigProblems(result.problems)).not.toContain("pw-7c1");
  });

  test.each([
    ["unset", undefined, { kind: "sqlite", file: "/srv/tg/tokengate.db" }],
    ["sqlite: with an absolute path", "sqlite:///var/lib/tg/auth.db", { kind: "sqlite", file: "/var/lib/tg/auth.db" }],
    ["sqlite: with a relative path", "sqlite://state/auth.db", { kind: "sqlite", file: "state/auth.db" }],
    ["bare sqlite:", "sqlite://", { kind: "sqlite", file: "/srv/tg/tokengate.db" }],
    ["postgresql:", "postgresql://gate@db.lan/tg", { kind: "postgres", url: "postgresql://gate@db.lan/tg" }],
  ])("STORE_URL %s", (_name, value, expected) => {
    expect(parseStoreUrl(value, "/srv/tg/")).toEqual(expected as StoreLocation);
  });
});

describe("sessions and passkeys", () => {
  const configOf = (env: Record<string, string>) => {
    const result = parseConfig(env, tty);
    if (!result.ok) throw new Error(result.problems.map((problem) => problem.variable).join());
    return result.config;
  };

  test("durations in words become milliseconds", () => {
    expect(configOf({ SESSION_IDLE_TIMEOUT: "12h", SESSION_LIFETIME: "2w" }).sessions).toEqual({
      idleMs: 43_200_000,
      lifetimeMs: 14 * 86_400_000,
    });
  });

  test.each([
    ["nothing: passkeys off", {}, null],
    ["PUBLIC_URL with a name", { PUBLIC_URL: "https://gate.local:8443/" }, { rpId: "gate.local", origins: ["https://gate.local:8443"] }],
    ["PUBLIC_URL with an IP address: no passkeys", { PUBLIC_URL: "http://192.168.1.20:8000" }, null],
    ["an RP ID alone: any port of its host", { WEBAUTHN_RP_ID: "Gate.Local." }, { rpId: "gate.local", origins: null }],
    [
      "an RP ID and origins on subdomains",
      { WEBAUTHN_RP_ID: "home.arpa", WEBAUTHN_ORIGINS: "https://gate.home.arpa:8443,https://home.arpa" },
      { rpId: "home.arpa", origins: ["https://gate.home.arpa:8443", "https://home.arpa"] },
    ],
    ["localhost for development", { WEBAUTHN_RP_ID: "localhost" }, { rpId: "localhost", origins: null }],
    [
      "an RP ID of the parent domain and PUBLIC_URL below it: that page",
      { WEBAUTHN_RP_ID: "home.lan", PUBLIC_URL: "https://gate.home.lan:8443" },
      { rpId: "home.lan", origins: ["https://gate.home.lan:8443"] },
    ],
  ])("%s", (_name, env, expected) => {
    expect(configOf(env).webauthn).toEqual(expected);
  });
});

describe("the CLI parses its variables with the server's parsers", () => {
  test.each<[string, Record<string, string>, string | undefined]>([
    ["an invalid JWT_ALG is refused, not taken for EdDSA", { JWT_ALG: "RS256" }, "JWT_ALG"],
    ["a malformed ROLE_SCOPES", { ROLE_SCOPES: "Admin" }, "ROLE_SCOPES"],
    ["a STORE_URL it cannot use", { STORE_URL: "mysql://x" }, "STORE_URL"],
    ["a PORT out of range", { PORT: "70000" }, "PORT"],
    ["variables the CLI does not use are not its business", { AUTH_TOKEN: "short", LOG_LEVEL: "loud" }, undefined],
  ])("%s", (_name, env, variable) => {
    const parsed = parseCliSettings(env);
    if (variable === undefined) expect(parsed.ok).toBe(true);
    else expect(parsed.ok ? [] : parsed.problems.map((problem) => problem.variable)).toEqual([variable]);
  });

  test("the defaults match the server's", () => {
    const cli = parseCliSettings({});
    const server = parseConfig({}, { isTTY: false });
    if (!cli.ok || !server.ok) throw new Error("defaults must parse");
    expect(cli.settings).toEqual({
      store: server.config.store,
      roleScopes: server.config.roleScopes,
      jwtAlg: server.config.jwt.alg,
      host: server.config.host,
      port: server.config.port,
      scheme: "http",
      routesFile: server.config.routesFile,
    });
  });

  test("the real CLI exits 78 naming JWT_ALG", async () => {
    const proc = Bun.spawn([process.execPath, "run", join(ROOT, "cli.ts"), "keys", "list"], {
      env: { PATH: process.env.PATH ?? "", JWT_ALG: "RS256" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).toBe(78);
    expect(stderr).toContain("JWT_ALG must be EdDSA");
  });
});
