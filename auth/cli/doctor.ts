/**
 * `tokengate doctor`: looks at what the server needs on this device (configuration, data
 * directory, store, TLS files, clock, listening address, Redis) and explains each problem in plain
 * words with the fix. It only looks: it never creates, migrates or rewrites anything, so it is
 * safe to run next to a running server and as another user. Values of secrets are never printed;
 * configuration problems name the variable, as at startup.
 */
import { RedisClient, SQL } from "bun";
import { Database } from "bun:sqlite";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { accessSync, constants, readFileSync, statfsSync, statSync, type Stats } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { explainListenFailure, listReachableUrls, type InterfaceAddress } from "../core/addresses.ts";
import { describeFsError, errorCode, readSecretFile, TOKEN_FILE_NAME } from "../config/bootstrap.ts";
import { checkSecret, CONFIG_VARIABLES, parseConfig, type Config } from "../config/config.ts";
import { describeUrl } from "../core/redact.ts";
import { createPostgresRunner, inspectPostgresSchemaVersion } from "../store/postgres.ts";
import { LATEST_SCHEMA } from "../store/schema.ts";
import { inspectSqliteSchemaVersion } from "../store/sqlite.ts";
import { inspectRoutesFile } from "./doctor-routes.ts";

import type { CheckResult } from "./checks.ts";

export type { CheckResult, CheckStatus } from "./checks.ts";

export interface DoctorContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: number;
  /** `os.networkInterfaces()`, flattened. */
  readonly interfaces: readonly InterfaceAddress[];
  /** This process's user id (`process.getuid()`). */
  readonly uid: number;
}

/** No correct clock reads earlier than this: the date this version of the code was written. */
export const CLOCK_FLOOR = Date.parse("2026-11-01T00:00:00Z");
/** How far stored records may lie in the future before the clock counts as turned back. */
const CLOCK_SLACK_MS = 5 * 60_000;
const CERT_WARN_MS = 30 * 86_400_000;
const LOW_SPACE_BYTES = 50 * 1024 * 1024;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
const octal = (mode: number) => (mode & 0o777).toString(8).padStart(3, "0");

/** A directory or file that others may read: what to say, or `undefined` when it is private. */
export function judgeMode(path: string, stats: Pick<Stats, "mode" | "isDirectory">): string | undefined {
  if ((stats.mode & 0o077) === 0) return undefined;
  const wanted = stats.isDirectory() ? "700" : "600";
  return `${path} can be read by other users of this device (mode ${octal(stats.mode)}); run chmod ${wanted} ${path}`;
}

/** The clock against the newest record the store holds and against this build's date. */
export function judgeClock(now: number, newestRecord: number | undefined): CheckResult {
  if (now < CLOCK_FLOOR) {
    return {
      check: "clock",
      status: "fail",
      message:
        `the clock says ${day(now)}, which is before this version of tokengate was made: the device probably booted without a ` +
        "real-time clock (a Raspberry Pi has none) and has not set its time from the network yet. Token expiry, key expiry and " +
        "certificates all depend on the clock; wait until the time is synchronized (timedatectl), or set it, then start tokengate",
    };
  }
  if (newestRecord !== undefined && newestRecord > now + CLOCK_SLACK_MS) {
    return {
      check: "clock",
      status: "fail",
      message:
        `the store holds a record made at ${day(newestRecord)}, later than the clock's ${day(now)}: the clock went backwards ` +
        "(a lost real-time clock, or a wrong manual setting). Fix the time before relying on expiry",
    };
  }
  return { check: "clock", status: "ok", message: `the clock says ${day(now)}` };
}

/** A PEM certificate and key: parse, pair, dates; what is wrong or what they are. */
export function judgeCertificate(certPem: string, keyPem: string, now: number): CheckResult[] {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return [
      {
        check: "tls",
        status: "fail",
        message: "TLS_CERT_FILE does not hold a PEM certificate (it should begin with -----BEGIN CERTIFICATE-----)",
      },
    ];
  }
  const results: CheckResult[] = [];
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) {
      results.push({
        check: "tls",
        status: "fail",
        message: "TLS_KEY_FILE holds a private key, but not the one of TLS_CERT_FILE; use the key the certificate was made for",
      });
    }
  } catch {
    results.push({
      check: "tls",
      status: "fail",
      message: "TLS_KEY_FILE does not hold a PEM private key (it should begin with -----BEGIN PRIVATE KEY-----)",
    });
  }
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now < from) {
    results.push({
      check: "tls",
      status: "fail",
      message: `the certificate is valid only from ${day(from)}; either the clock is behind (see clock) or the certificate was dated ahead`,
    });
  } else if (now >= to) {
    results.push({
      check: "tls",
      status: "fail",
      message: `the certificate expired at ${day(to)}; clients will refuse it. Renew it and restart tokengate`,
    });
  } else if (to - now < CERT_WARN_MS) {
    results.push({ check: "tls", status: "warn", message: `the certificate expires at ${day(to)}, in less than 30 days; renew it soon` });
  }
  if (results.length === 0) {
    const names = cert.subjectAltName ?? "no subject alternative names";
    results.push({
      check: "tls",
      status: "ok",
      message: `certificate and key match; valid until ${day(to)}; names: ${names}; sha256 ${cert.fingerprint256}`,
    });
  }
  return results;
}

/** The hosts of `urls` the certificate names neither as DNS name nor as IP address. */
function findUncoveredUrls(cert: X509Certificate, urls: readonly string[]): string[] {
  return urls.filter((url) => {
    const host = new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
    return (isIP(host) === 0 ? cert.checkHost(host) : cert.checkIP(host)) === undefined;
  });
}

/**
 * Whether the certificate covers the URLs clients will use: the ones the server prints and this
 * device's own. A name it lacks makes browsers and curl refuse the connection, even once the
 * certificate itself is trusted. `undefined` when it covers them all (or cannot be read, which
 * judgeCertificate reports).
 */
export function judgeCertificateNames(certPem: string, urls: readonly string[]): CheckResult | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return undefined;
  }
  const uncovered = findUncoveredUrls(cert, urls);
  if (uncovered.length === 0) return undefined;
  return {
    check: "tls",
    status: "warn",
    message:
      `the certificate does not cover ${uncovered.join(" ")} (its names: ${cert.subjectAltName ?? "none"}); browsers and curl refuse ` +
      "those addresses. Make one whose subjectAltName lists every name and address clients use, including DNS:localhost and " +
      "IP:127.0.0.1 for this device itself (see the README's TLS section)",
  };
}

/** Where clients reach a TLS server: the printed URLs, and this device's loopback names when it listens there too. */
function listTlsUrls(config: Config, interfaces: readonly InterfaceAddress[]): string[] {
  const urls = listReachableUrls("https", config.host, config.port, interfaces);
  const wildcard = config.host === "0.0.0.0" || config.host === "::";
  if (wildcard || config.host === "127.0.0.1" || config.host === "localhost") {
    urls.push(`https://localhost:${config.port}/`, `https://127.0.0.1:${config.port}/`);
  }
  return [...new Set(urls)];
}

interface StoreFacts {
  readonly schema: number;
  readonly keys: number;
  readonly users: number;
  readonly newest: number | undefined;
}

const FACTS_SQL = {
  keys: "SELECT count(*) AS n FROM api_keys",
  users: "SELECT count(*) AS n FROM users",
  newest: `SELECT max(t) AS n FROM (SELECT max(created_at) AS t FROM api_keys UNION ALL SELECT max(updated_at) FROM users
    UNION ALL SELECT max(created_at) FROM signing_keys) AS stamps`,
};

function inspectSqlite(file: string, uid: number): StoreReport {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (error) {
    if (errorCode(error) === "ENOENT")
      return { results: [{ check: "store", status: "ok", message: `no database yet at ${file}; the first start creates it` }] };
    return {
      results: [{ check: "store", status: "fail", message: `${file} ${describeFsError(error)}; check the permissions of its directory` }],
    };
  }
  const results: CheckResult[] = [];
  const exposed = judgeMode(file, stats);
  if (exposed !== undefined) results.push({ check: "store", status: "warn", message: `${exposed}: it holds key hashes and signing keys` });
  let version: number | undefined;
  try {
    version = inspectSqliteSchemaVersion(file);
  } catch (error) {
    results.push({
      check: "store",
      status: "fail",
      message: `${file} ${describeFsError(error)}; run doctor as the user the server runs as`,
    });
    return { results };
  }
  if (version === undefined) {
    results.push({
      check: "store",
      status: "fail",
      message: `${file} is not an SQLite database; move it away or point STORE_URL/DATA_DIR elsewhere`,
    });
    return { results };
  }
  // Opening the file as another user could leave WAL side files that user owns, which the
  // server then cannot write: only the owner looks inside.
  if (stats.uid !== uid) {
    results.push(schemaResult(version, `owned by uid ${stats.uid}; run doctor as that user to look inside`));
    return { results };
  }
  const db = new Database(file, { readonly: true });
  try {
    const count = (text: string) => Number((db.query(text).get() as { n: number | null } | null)?.n ?? 0);
    const report = judgeFacts({
      schema: version,
      keys: count(FACTS_SQL.keys),
      users: count(FACTS_SQL.users),
      newest: count(FACTS_SQL.newest) || undefined,
    });
    return { results: [...results, ...report.results], newest: report.newest };
  } catch (error) {
    results.push({
      check: "store",
      status: "fail",
      message: `${file} cannot be queried (${error instanceof Error ? error.message : "unknown error"})`,
    });
    return { results };
  } finally {
    db.close();
  }
}

async function inspectPostgres(url: string): Promise<StoreReport> {
  const sql = new SQL(url, { max: 1, connectionTimeout: 3, idleTimeout: 1 });
  try {
    const scalar = async (text: string) => Number(([...(await sql.unsafe(text))][0] as { n: unknown } | undefined)?.n ?? 0);
    const schema = await inspectPostgresSchemaVersion(createPostgresRunner(sql));
    if (schema === undefined) {
      return {
        results: [
          {
            check: "store",
            status: "ok",
            message: `${describeUrl(url)} answers and has no tokengate tables yet; the first start creates them`,
          },
        ],
      };
    }
    return judgeFacts({
      schema,
      keys: await scalar(FACTS_SQL.keys),
      users: await scalar(FACTS_SQL.users),
      newest: (await scalar(FACTS_SQL.newest)) || undefined,
    });
  } catch (error) {
    return {
      results: [
        {
          check: "store",
          status: "fail",
          message: `${describeUrl(url)} cannot be used (${error instanceof Error ? error.message : "unknown error"}); check that PostgreSQL runs, the database exists and the user may log in`,
        },
      ],
    };
  } finally {
    await sql.close({ timeout: 1 }).catch(() => undefined);
  }
}

function schemaResult(version: number, detail: string): CheckResult {
  if (version > LATEST_SCHEMA) {
    return {
      check: "store",
      status: "fail",
      message: `the database is schema version ${version}, newer than this tokengate understands (${LATEST_SCHEMA}); upgrade tokengate`,
    };
  }
  const upgrade = version < LATEST_SCHEMA ? ` (the next start upgrades it to ${LATEST_SCHEMA})` : "";
  return { check: "store", status: "ok", message: `schema version ${version}${upgrade}; ${detail}` };
}

/** What the store check found; `newest` (the latest stored timestamp) feeds the clock check. */
interface StoreReport {
  readonly results: CheckResult[];
  readonly newest?: number | undefined;
}

function judgeFacts(facts: StoreFacts): StoreReport {
  const results = [
    schemaResult(facts.schema, `${facts.keys} API key${facts.keys === 1 ? "" : "s"}, ${facts.users} user${facts.users === 1 ? "" : "s"}`),
  ];
  if (facts.keys === 0 && facts.users === 0) {
    results.push({
      check: "store",
      status: "warn",
      message:
        "there are no API keys or users yet: run `tokengate pair` and enter the code on the console page, or `tokengate keys create --name NAME`",
    });
  }
  return { results, newest: facts.newest };
}

function inspectDataDir(config: Config, uid: number): CheckResult[] {
  const dir = resolve(config.dataDir);
  const needed = config.store.kind === "sqlite" || config.token.kind === "generated";
  if (!needed) return [];
  let stats: Stats;
  try {
    stats = statSync(dir);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") return [{ check: "data directory", status: "fail", message: `${dir} ${describeFsError(error)}` }];
    try {
      accessSync(dirname(dir), constants.W_OK);
      return [{ check: "data directory", status: "ok", message: `${dir} does not exist yet; the first start creates it (mode 700)` }];
    } catch {
      return [
        {
          check: "data directory",
          status: "fail",
          message: `${dir} does not exist and this user cannot create it in ${dirname(dir)}; create it (mkdir -m 700) and give the server's user ownership, or set DATA_DIR elsewhere`,
        },
      ];
    }
  }
  if (!stats.isDirectory())
    return [
      {
        check: "data directory",
        status: "fail",
        message: `DATA_DIR is ${dir}, which is a file, not a directory; point DATA_DIR at a directory`,
      },
    ];
  const results: CheckResult[] = [];
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    results.push({
      check: "data directory",
      status: "fail",
      message: `${dir} is not writable by this user (uid ${uid}); the server stores its database and token there. Give the server's user ownership (chown) or set DATA_DIR elsewhere`,
    });
  }
  const exposed = judgeMode(dir, stats);
  if (exposed !== undefined) results.push({ check: "data directory", status: "warn", message: exposed });
  if (stats.uid !== uid)
    results.push({
      check: "data directory",
      status: "warn",
      message: `${dir} belongs to uid ${stats.uid}, not to this user (uid ${uid}); that is right only if the server runs as uid ${stats.uid}`,
    });
  try {
    const space = statfsSync(dir);
    const free = space.bavail * space.bsize;
    if (free < LOW_SPACE_BYTES)
      results.push({
        check: "data directory",
        status: "warn",
        message: `only ${Math.floor(free / 1024 / 1024)} MiB free under ${dir}; a full disk stops key changes from being saved`,
      });
  } catch {
    // statfs is missing on some file systems; space is then simply not judged.
  }
  if (results.length === 0)
    results.push({ check: "data directory", status: "ok", message: `${dir} exists, is private (mode ${octal(stats.mode)}) and writable` });
  return results;
}

function inspectToken(config: Config): CheckResult[] {
  const source = config.token;
  if (source.kind === "env")
    return [
      {
        check: "bootstrap token",
        status: "ok",
        message: "AUTH_TOKEN is set and long enough (for a service, AUTH_TOKEN_FILE keeps it out of the environment)",
      },
    ];
  const path = source.kind === "file" ? resolve(source.path) : join(resolve(config.dataDir), TOKEN_FILE_NAME);
  const variable = source.kind === "file" ? "AUTH_TOKEN_FILE" : "the generated token file";
  let content: string;
  try {
    content = readSecretFile(path);
  } catch (error) {
    if (source.kind === "generated" && errorCode(error) === "ENOENT") {
      return [{ check: "bootstrap token", status: "ok", message: `no token yet; the first start generates one into ${path} (mode 600)` }];
    }
    return [
      {
        check: "bootstrap token",
        status: "fail",
        message: `${variable} ${path} ${describeFsError(error)}; point AUTH_TOKEN_FILE at a readable file that holds the secret`,
      },
    ];
  }
  const weak = checkSecret(content);
  if (weak.length > 0) return [{ check: "bootstrap token", status: "fail", message: `${path} holds a token that ${weak.join("; ")}` }];
  const exposed = judgeMode(path, statSync(path));
  return exposed === undefined
    ? [{ check: "bootstrap token", status: "ok", message: `${path} holds a strong token and only this user can read it` }]
    : [{ check: "bootstrap token", status: "warn", message: exposed }];
}

function inspectTls(config: Config, now: number, interfaces: readonly InterfaceAddress[]): CheckResult[] {
  if (config.tls === null)
    return [
      {
        check: "tls",
        status: "ok",
        message:
          "off: clients use http:// and ws://; passwords are accepted only from this device (set TLS_CERT_FILE and TLS_KEY_FILE for HTTPS)",
      },
    ];
  const pems: string[] = [];
  const results: CheckResult[] = [];
  for (const [variable, path] of [
    ["TLS_CERT_FILE", config.tls.certFile],
    ["TLS_KEY_FILE", config.tls.keyFile],
  ] as const) {
    try {
      pems.push(readFileSync(path, "utf8"));
    } catch (error) {
      return [{ check: "tls", status: "fail", message: `${variable} names ${path}, which ${describeFsError(error)}` }];
    }
  }
  const keyExposed = judgeMode(config.tls.keyFile, statSync(config.tls.keyFile));
  if (keyExposed !== undefined)
    results.push({ check: "tls", status: "warn", message: `${keyExposed}: it is the certificate's private key` });
  const names = judgeCertificateNames(pems[0]!, listTlsUrls(config, interfaces));
  return [...judgeCertificate(pems[0]!, pems[1]!, now), ...(names === undefined ? [] : [names]), ...results];
}

function ntpVerdict(): CheckResult | undefined {
  try {
    const answer = Bun.spawnSync(["timedatectl", "show", "--property=NTPSynchronized", "--value"], { timeout: 2000, stderr: "ignore" });
    const value = answer.stdout.toString().trim();
    if (answer.exitCode !== 0 || value === "") return undefined;
    return value === "yes"
      ? { check: "clock", status: "ok", message: "synchronized with a time server (timedatectl)" }
      : {
          check: "clock",
          status: "warn",
          message: "not synchronized with a time server yet (timedatectl says NTPSynchronized=no); check the network and systemd-timesyncd",
        };
  } catch {
    return undefined;
  }
}

async function inspectListener(config: Config, interfaces: readonly InterfaceAddress[]): Promise<CheckResult[]> {
  const scheme = config.tls === null ? "http" : "https";
  const results: CheckResult[] = [];
  if (config.port !== 0) {
    try {
      Bun.listen({ hostname: config.host, port: config.port, socket: { data() {} } }).stop(true);
      results.push({ check: "listening", status: "ok", message: `port ${config.port} on ${config.host} is free` });
    } catch (error) {
      const code = errorCode(error);
      const explained = explainListenFailure(code, config.host, config.port);
      if (code === "EADDRINUSE") {
        const answer = await fetch(`${scheme}://127.0.0.1:${config.port}/healthz`, {
          signal: AbortSignal.timeout(1000),
          tls: { rejectUnauthorized: false },
        })
          .then(async (response) => (response.ok ? await response.text() : ""))
          .catch(() => "");
        results.push(
          answer.includes('"status":"ok"')
            ? {
                check: "listening",
                status: "ok",
                message: `a tokengate already answers on port ${config.port} (the running service, presumably)`,
              }
            : { check: "listening", status: "fail", message: explained!.message },
        );
      } else {
        const message = explained?.message ?? `cannot listen on ${config.host}:${config.port} (${code ?? "unknown error"})`;
        const own = code === "EADDRNOTAVAIL" ? ` (${interfaces.map((net) => net.address).join(", ")})` : "";
        results.push({ check: "listening", status: "fail", message: message + own });
      }
    }
  }
  const urls = listReachableUrls(scheme, config.host, config.port, interfaces);
  if (config.host === "127.0.0.1" || config.host === "::1" || config.host === "localhost") {
    results.push({
      check: "listening",
      status: "warn",
      message: `HOST is ${config.host}: only this device can connect. Set HOST=0.0.0.0 to serve the network`,
    });
  } else if (urls.length === 0) {
    results.push({
      check: "listening",
      status: "warn",
      message: "this device has no network address yet (only loopback); is the network up?",
    });
  } else {
    results.push({ check: "listening", status: "ok", message: `browsers on the network use ${urls.join(" ")}` });
  }
  return results;
}

async function inspectRedis(url: string): Promise<CheckResult> {
  const client = new RedisClient(url, { connectionTimeout: 2000, autoReconnect: false, enableOfflineQueue: false });
  try {
    await Promise.race([client.send("PING", []), Bun.sleep(2500).then(() => Promise.reject(new Error("no answer within 2.5 s")))]);
    return { check: "redis", status: "ok", message: `${describeUrl(url)} answers` };
  } catch (error) {
    return {
      check: "redis",
      status: "warn",
      message: `${describeUrl(url)} does not answer (${error instanceof Error ? error.message : "unknown error"}); the server still starts, but counts failed attempts per instance until Redis answers`,
    };
  } finally {
    client.close();
  }
}

function inspectAuditFile(path: string): CheckResult {
  try {
    accessSync(path, constants.W_OK);
    return { check: "audit log", status: "ok", message: `${path} is writable` };
  } catch (error) {
    if (errorCode(error) === "ENOENT") {
      try {
        accessSync(dirname(resolve(path)), constants.W_OK);
        return { check: "audit log", status: "ok", message: `${path} does not exist yet; the server creates it (mode 600)` };
      } catch {
        // Falls through to the failure below.
      }
    }
    return {
      check: "audit log",
      status: "fail",
      message: `AUDIT_LOG_FILE names ${path}, which this user cannot write; create its directory or fix its permissions`,
    };
  }
}

/**
 * Whether browsers will offer passkeys with these settings: they need a domain name (never an IP
 * address) and a secure context, which is https:// or http://localhost.
 */
export function inspectPasskeys(config: Pick<Config, "webauthn" | "tls" | "trustedProxies">): CheckResult {
  const settings = config.webauthn;
  // Passkeys are optional: a fresh device without a domain name is healthy, so this is news, not a warning.
  if (settings === null) {
    return {
      check: "passkeys",
      status: "ok",
      message:
        "off: browsers allow passkeys only on a domain name over HTTPS. Set PUBLIC_URL=https://<name>.local:<port> " +
        "(with TLS_CERT_FILE and TLS_KEY_FILE), or WEBAUTHN_RP_ID (and WEBAUTHN_ORIGINS)",
    };
  }
  const insecure = (settings.origins ?? []).filter((origin) => origin.startsWith("http:") && new URL(origin).hostname !== "localhost");
  if (insecure.length > 0) {
    return {
      check: "passkeys",
      status: "warn",
      message: `${insecure.join(" ")} is plain http: browsers offer passkeys only in a secure context (https://, or http://localhost); use https://`,
    };
  }
  const ownTls = config.tls !== null || config.trustedProxies.length > 0;
  if (settings.origins === null && settings.rpId !== "localhost" && !ownTls) {
    return {
      check: "passkeys",
      status: "warn",
      message: `passkeys for ${settings.rpId} need https:// pages, but TLS is off; set TLS_CERT_FILE and TLS_KEY_FILE, or serve the gate through a TLS proxy (TRUSTED_PROXIES)`,
    };
  }
  const where = settings.origins?.join(" ") ?? `${settings.rpId === "localhost" ? "http(s)" : "https"}://${settings.rpId}`;
  return { check: "passkeys", status: "ok", message: `passkeys for ${settings.rpId}, from ${where}` };
}

/** Every check, in the order a person would fix things. */
export async function runDoctor(context: DoctorContext): Promise<CheckResult[]> {
  const parsed = parseConfig(context.env, { isTTY: false });
  const results: CheckResult[] = [];
  if (!parsed.ok) {
    for (const problem of parsed.problems)
      results.push({ check: "configuration", status: "fail", message: `${problem.variable} ${problem.message}` });
    results.push(judgeClock(context.now, undefined));
    return results;
  }
  const config = parsed.config;
  const named = Object.keys(context.env).filter((name) => CONFIG_VARIABLES.has(name));
  results.push({
    check: "configuration",
    status: "ok",
    message: named.length === 0 ? "no settings given; every default applies" : `valid: ${named.sort().join(", ")}`,
  });
  results.push(...inspectToken(config));
  results.push(...inspectDataDir(config, context.uid));
  const store = config.store.kind === "sqlite" ? inspectSqlite(config.store.file, context.uid) : await inspectPostgres(config.store.url);
  results.push(...store.results);
  results.push(...inspectTls(config, context.now, context.interfaces));
  results.push(judgeClock(context.now, store.newest));
  const ntp = ntpVerdict();
  if (ntp !== undefined) results.push(ntp);
  results.push(...(await inspectListener(config, context.interfaces)));
  if (config.redisUrl !== null) results.push(await inspectRedis(config.redisUrl));
  if (config.auditLogFile !== null) results.push(inspectAuditFile(config.auditLogFile));
  if (config.routesFile !== null) results.push(...(await inspectRoutesFile(config.routesFile)));
  results.push(inspectPasskeys(config));
  return results;
}

/** The report: one line per check, then a summary sentence. */
export function formatDoctorReport(results: readonly CheckResult[]): string {
  const label = { ok: "ok  ", warn: "warn", fail: "FAIL" } as const;
  const width = Math.max(...results.map((result) => result.check.length));
  const lines = results.map((result) => `  ${label[result.status]}  ${result.check.padEnd(width)}  ${result.message}`);
  const failed = results.filter((result) => result.status === "fail").length;
  const warned = results.filter((result) => result.status === "warn").length;
  const summary =
    failed === 0 && warned === 0
      ? "Everything tokengate needs is in place."
      : `${failed} problem${failed === 1 ? "" : "s"} to fix, ${warned} warning${warned === 1 ? "" : "s"}.${failed > 0 ? " The server will not start (or will misbehave) until the problems are fixed." : ""}`;
  return `tokengate doctor\n${lines.join("\n")}\n${summary}\n`;
}
