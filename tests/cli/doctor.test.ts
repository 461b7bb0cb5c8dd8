/**
 * `tokengate doctor`: the judgements on their own (clock, certificate, file modes), then every
 * check against real directories, real files, real ports, a real tokengate, the machine's
 * PostgreSQL and an unreachable Redis, and finally the CLI command as a subprocess.
 * The tests run as root in CI, so "this user cannot write" cases are not exercised here.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import {
  CLOCK_FLOOR,
  formatDoctorReport,
  judgeCertificate,
  judgeCertificateNames,
  judgeClock,
  judgeMode,
  runDoctor,
  type CheckResult,
} from "../../auth/cli/doctor.ts";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { curl, makeTempDir, ROOT, ServerProcess, startTestApp, clockEnvironment } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";
import { createTestDatabase, openDataDirStore, postgresService } from "../support/stores.ts";

const postgres = await postgresService();
const CERT = readFileSync(join(ROOT, "tests/fixtures/tls-cert.pem"), "utf8");
const KEY = readFileSync(join(ROOT, "tests/fixtures/tls-key.pem"), "utf8");
const certificate = new X509Certificate(CERT);
const interfaces = Object.values(networkInterfaces())
  .flat()
  .filter((net) => net !== undefined);

async function doctor(env: Record<string, string>, now = Date.now()): Promise<CheckResult[]> {
  const results = await runDoctor({ env, now, interfaces, uid: process.getuid!() });
  captureOutput(formatDoctorReport(results));
  return results;
}

/** A time inside the certificate's validity, whatever today's date: no test depends on the clock. */
const midLife = (pem: string) => Date.parse(new X509Certificate(pem).validFrom) + 86_400_000;

const failures = (results: CheckResult[]) => results.filter((result) => result.status === "fail");
const about = (results: CheckResult[], check: string) => results.filter((result) => result.check === check);

describe("judgements", () => {
  test.each([
    ["a device that booted in 1970", 0, undefined, "fail", "real-time clock"],
    ["a clock behind this build", CLOCK_FLOOR - 1, undefined, "fail", "real-time clock"],
    ["a clock behind the newest stored record", CLOCK_FLOOR + 86_400_000, CLOCK_FLOOR + 2 * 86_400_000, "fail", "went backwards"],
    [
      "a record a minute ahead (another machine's clock skew)",
      CLOCK_FLOOR + 86_400_000,
      CLOCK_FLOOR + 86_400_000 + 60_000,
      "ok",
      "the clock says",
    ],
    ["a sane clock", CLOCK_FLOOR + 86_400_000, CLOCK_FLOOR, "ok", "the clock says"],
  ] as const)("clock: %s", (_case, now, newest, status, words) => {
    const verdict = judgeClock(now, newest);
    expect(verdict.status).toBe(status);
    expect(verdict.message).toContain(words);
  });

  const from = Date.parse(certificate.validFrom);
  const to = Date.parse(certificate.validTo);
  const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  test.each([
    ["matching pair, mid-life", CERT, KEY, from + 86_400_000, "ok", "certificate and key match"],
    ["a key of another certificate", CERT, otherKey, from + 86_400_000, "fail", "not the one of TLS_CERT_FILE"],
    ["a key file that is no key", CERT, "hello", from + 86_400_000, "fail", "does not hold a PEM private key"],
    ["a cert file that is no certificate", KEY, KEY, from + 86_400_000, "fail", "does not hold a PEM certificate"],
    ["expired", CERT, KEY, to + 1, "fail", "expired"],
    ["not yet valid (clock behind)", CERT, KEY, from - 60_000, "fail", "clock is behind"],
    ["expiring within 30 days", CERT, KEY, to - 10 * 86_400_000, "warn", "renew it soon"],
  ] as const)("certificate: %s", (_case, cert, key, now, status, words) => {
    const verdicts = judgeCertificate(cert, key, now);
    expect(verdicts.map((verdict) => verdict.status)).toContain(status);
    expect(verdicts.map((verdict) => verdict.message).join(" ")).toContain(words);
  });

  test.each([
    [0o700, true, undefined],
    [0o755, true, "chmod 700"],
    [0o600, false, undefined],
    [0o640, false, "chmod 600"],
  ])("mode %o (directory: %p)", (mode, directory, words) => {
    const verdict = judgeMode("/x", { mode, isDirectory: () => directory });
    if (words === undefined) expect(verdict).toBeUndefined();
    else expect(verdict).toContain(words);
  });
});

describe("runDoctor on this machine", () => {
  test("a fresh device: nothing exists yet, every check passes and says what the first start will do", async () => {
    using dir = makeTempDir();
    const results = await doctor({ DATA_DIR: join(dir.path, "data"), PORT: "0" });
    expect(failures(results)).toEqual([]);
    expect(about(results, "data directory")[0]!.message).toContain("the first start creates it");
    expect(about(results, "store")[0]!.message).toContain("no database yet");
    expect(about(results, "bootstrap token")[0]!.message).toContain("generates one");
  });

  test("ROUTES_FILE: a route whose service answers is ok, one whose service is down warns with the fix", async () => {
    using dir = makeTempDir();
    using service = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("ok") });
    const down = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const downPort = down.port;
    down.stop(true);
    const file = join(dir.path, "routes.toml");
    const entry = (name: string, port: number) =>
      `[[route]]\nname = "${name}"\nmatch = { path_prefix = "/${name}/" }\nupstream = "http://127.0.0.1:${port}"\nscope = "${name}"\n`;
    writeFileSync(file, entry("grafana", service.port!) + entry("camera", downPort));
    const routes = about(await doctor({ DATA_DIR: join(dir.path, "data"), PORT: "0", ROUTES_FILE: file }), "routes file");
    expect(routes.map((result) => result.status)).toEqual(["ok", "warn"]);
    expect(routes[0]!.message).toContain('route "grafana"');
    expect(routes[1]!.message).toContain("get 502 until the service runs there");
  });

  test("ROUTES_FILE: a broken file fails naming the file, the entry and the fix", async () => {
    using dir = makeTempDir();
    const file = join(dir.path, "routes.toml");
    writeFileSync(file, `[[route]]\nname = "grafana"\nmatch = { path_prefix = "/secure-data" }\nupstream = "ftp://x"\nscope = "grafana"\n`);
    const routes = about(await doctor({ DATA_DIR: join(dir.path, "data"), PORT: "0", ROUTES_FILE: file }), "routes file");
    expect(routes.every((result) => result.status === "fail")).toBe(true);
    expect(routes.map((result) => result.message).join("\n")).toContain(
      `${file}: route 1 ("grafana") upstream must be an http:// or https:// URL`,
    );
  });

  test("a bad configuration: each problem names its variable, never its value, and the clock is still judged", async () => {
    const weak = trackSecret("tooshort-" + newSecret().slice(0, 8));
    const results = await doctor({ PORT: "eighty", AUTH_TOKEN: weak, LOG_LEVEL: "loud" });
    const report = formatDoctorReport(results);
    expect(failures(results).map((result) => result.message.split(" ")[0])).toEqual(
      expect.arrayContaining(["PORT", "AUTH_TOKEN", "LOG_LEVEL"]),
    );
    expect(report).not.toContain(weak);
    expect(about(results, "clock")).toHaveLength(1);
  });

  test("a used device: loose permissions are warned about with the chmod that fixes them; keys and users are counted", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    await insertApiKey(store, { name: "lamp", scopes: ["data:read"] });
    await store.close();
    chmodSync(join(dir.path, "tokengate.db"), 0o644);
    writeFileSync(join(dir.path, "auth_token"), `${newSecret()}\n`, { mode: 0o644 });
    chmodSync(join(dir.path, "auth_token"), 0o644);
    chmodSync(dir.path, 0o755);
    const results = await doctor({ DATA_DIR: dir.path, PORT: "0" });
    expect(failures(results)).toEqual([]);
    const warnings = results
      .filter((result) => result.status === "warn")
      .map((result) => result.message)
      .join("\n");
    expect(warnings).toContain(`chmod 700 ${dir.path}`);
    expect(warnings).toContain(`chmod 600 ${join(dir.path, "auth_token")}`);
    expect(warnings).toContain(`chmod 600 ${join(dir.path, "tokengate.db")}`);
    expect(
      about(results, "store")
        .map((result) => result.message)
        .join("\n"),
    ).toContain("1 API key, 0 users");
  });

  test("no credentials yet: the store check points at pairing", async () => {
    using dir = makeTempDir();
    await (await openDataDirStore(dir.path)).close();
    const results = await doctor({ DATA_DIR: dir.path, PORT: "0" });
    expect(about(results, "store").find((result) => result.status === "warn")?.message).toContain("tokengate pair");
  });

  test("a clock turned back behind the store's newest record fails the clock check", async () => {
    using dir = makeTempDir();
    const store = await openDataDirStore(dir.path);
    const key = generateApiKey();
    trackSecret(key.token);
    const now = Date.now();
    await store.insertKey({
      id: key.id,
      name: "lamp",
      scopes: ["data:read"],
      secretHash: digestToken(key.secret),
      createdAt: now + 86_400_000,
      expiresAt: null,
    });
    await store.close();
    const clock = about(await doctor({ DATA_DIR: dir.path, PORT: "0" }, now), "clock")[0]!;
    expect(clock.status).toBe("fail");
    expect(clock.message).toContain("went backwards");
  });

  test.each([["a file", (path: string) => writeFileSync(path, "x"), "is a file, not a directory"]])(
    "DATA_DIR that is %s",
    async (_case, make, words) => {
      using dir = makeTempDir();
      const path = join(dir.path, "data");
      make(path);
      const results = await doctor({ DATA_DIR: path, PORT: "0" });
      expect(
        failures(results)
          .map((result) => result.message)
          .join("\n"),
      ).toContain(words);
    },
  );

  test("a file in DATA_DIR's place of the database that is not SQLite", async () => {
    using dir = makeTempDir();
    writeFileSync(
      join(dir.path, "tokengate.db"),
      "not a database at all, but long enough to have a header of one hundred bytes........................",
    );
    const results = await doctor({ DATA_DIR: dir.path, PORT: "0" });
    expect(
      failures(results)
        .map((result) => result.message)
        .join("\n"),
    ).toContain("is not an SQLite database");
  });

  test("listening: a port taken by another program fails; one held by a tokengate is fine; a foreign HOST fails; loopback warns", async () => {
    using dir = makeTempDir();
    const other = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const taken = about(await doctor({ DATA_DIR: dir.path, HOST: "127.0.0.1", PORT: String(other.port) }), "listening");
      expect(taken[0]).toMatchObject({ status: "fail" });
      expect(taken[0]!.message).toContain("in use by another program");
      expect(taken[1]).toMatchObject({ status: "warn" });
      expect(taken[1]!.message).toContain("only this device can connect");
    } finally {
      other.stop(true);
    }
    await using app = await startTestApp();
    const running = about(await doctor({ DATA_DIR: dir.path, HOST: "127.0.0.1", PORT: new URL(app.http).port }), "listening");
    expect(running[0]).toMatchObject({ status: "ok" });
    expect(running[0]!.message).toContain("a tokengate already answers");

    const foreign = about(await doctor({ DATA_DIR: dir.path, HOST: "10.254.254.254", PORT: "8123" }), "listening");
    expect(foreign[0]).toMatchObject({ status: "fail" });
    expect(foreign[0]!.message).toContain("not an address of this device");
  });

  test("TLS: the fixture pair passes with its fingerprint; a key of another certificate fails", async () => {
    using dir = makeTempDir();
    const certFile = join(ROOT, "tests/fixtures/tls-cert.pem");
    const good = about(
      await doctor(
        { DATA_DIR: dir.path, PORT: "0", TLS_CERT_FILE: certFile, TLS_KEY_FILE: join(ROOT, "tests/fixtures/tls-key.pem") },
        midLife(CERT),
      ),
      "tls",
    );
    expect(good.find((result) => result.status === "ok")?.message).toContain(certificate.fingerprint256);
    const stranger = join(dir.path, "other-key.pem");
    writeFileSync(stranger, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }), {
      mode: 0o600,
    });
    const bad = about(
      await doctor({ DATA_DIR: dir.path, PORT: "0", TLS_CERT_FILE: certFile, TLS_KEY_FILE: stranger }, midLife(CERT)),
      "tls",
    );
    expect(bad[0]).toMatchObject({ status: "fail" });
    const missing = about(
      await doctor({ DATA_DIR: dir.path, PORT: "0", TLS_CERT_FILE: join(dir.path, "nope.pem"), TLS_KEY_FILE: stranger }),
      "tls",
    );
    expect(missing[0]!.message).toContain("does not exist");
  });

  test("an unreachable Redis is a warning (the server still starts), an unwritable audit log place a failure", async () => {
    using dir = makeTempDir();
    const results = await doctor({
      DATA_DIR: dir.path,
      PORT: "0",
      REDIS_URL: "redis://127.0.0.1:1",
      AUDIT_LOG_FILE: join(dir.path, "no/such/dir/audit.log"),
    });
    expect(about(results, "redis")[0]).toMatchObject({ status: "warn" });
    expect(about(results, "audit log")[0]).toMatchObject({ status: "fail" });
  });

  test.skipIf(!postgres.available)("PostgreSQL: an empty database is fine, a wrong password fails without showing it", async () => {
    await using database = await createTestDatabase();
    using dir = makeTempDir();
    const empty = about(await doctor({ DATA_DIR: dir.path, PORT: "0", STORE_URL: database.url }), "store");
    expect(empty[0]).toMatchObject({ status: "ok" });
    expect(empty[0]!.message).toContain("no tokengate tables yet");

    const password = trackSecret(newSecret());
    const wrong = new URL(database.url);
    wrong.port = "1";
    wrong.password = password;
    const unreachable = about(await doctor({ DATA_DIR: dir.path, PORT: "0", STORE_URL: wrong.toString() }), "store");
    expect(unreachable[0]).toMatchObject({ status: "fail" });
    expect(unreachable[0]!.message).not.toContain(password);
  });
});

/** A self-signed certificate made by the README's openssl recipe, with these subjectAltNames. */
function makeCertificate(dir: string, name: string, altNames: string): { certFile: string; keyFile: string; pem: string } {
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  const made = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "825",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-subj",
      `/CN=${name}`,
      "-addext",
      `subjectAltName=${altNames}`,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile, pem: readFileSync(certFile, "utf8") };
}

const uncovered = (results: CheckResult[]) => about(results, "tls").filter((result) => result.message.includes("does not cover"));

describe("TLS certificate names against the URLs clients use", () => {
  const dir = makeTempDir();
  afterAll(() => dir[Symbol.dispose]());
  const lan = makeCertificate(dir.path, "gate.local", "DNS:gate.local,IP:192.168.1.20,DNS:localhost,IP:127.0.0.1");
  const piOnly = makeCertificate(dir.path, "pi.local", "DNS:pi.local");
  const urls = ["https://192.168.1.20:8000/", "https://localhost:8000/", "https://127.0.0.1:8000/"];

  test("the README recipe's names cover the LAN address and this device's loopback names", () => {
    expect(judgeCertificateNames(lan.pem, urls)).toBeUndefined();
  });

  test.each([
    ["only pi.local", "DNS:pi.local", urls, urls],
    ["no loopback names", "DNS:gate.local,IP:192.168.1.20", urls, ["https://localhost:8000/", "https://127.0.0.1:8000/"]],
    ["another LAN address", "DNS:localhost,IP:127.0.0.1,IP:192.168.1.21", urls, ["https://192.168.1.20:8000/"]],
    [
      "IPv4 loopback only, checked for [::1]",
      "DNS:localhost,IP:127.0.0.1",
      ["https://[::1]:8000/", ...urls.slice(1)],
      ["https://[::1]:8000/"],
    ],
  ])("a certificate with %s: a warning naming each uncovered URL and no other", (name, altNames, checked, missing) => {
    const verdict = judgeCertificateNames(makeCertificate(dir.path, name.replaceAll(/\W/g, "-"), altNames).pem, checked);
    expect(verdict?.status).toBe("warn");
    for (const url of checked) {
      if (missing.includes(url)) expect(verdict!.message).toContain(url);
      else expect(verdict!.message).not.toContain(url);
    }
    expect(verdict!.message).toContain("DNS:localhost and IP:127.0.0.1");
  });

  test("the real server with the README recipe's certificate: curl --cacert reaches it as 127.0.0.1 and localhost; with pi.local's it cannot", async () => {
    for (const [made, status] of [
      [lan, 200],
      [piOnly, 0],
    ] as const) {
      const server = new ServerProcess(
        {
          AUTH_TOKEN: newSecret(),
          PORT: "0",
          HOST: "127.0.0.1",
          DATA_DIR: dir.path,
          TLS_CERT_FILE: made.certFile,
          TLS_KEY_FILE: made.keyFile,
        },
        dir.path,
      );
      try {
        const port = await server.port();
        for (const host of ["127.0.0.1", "localhost"]) {
          expect((await curl(["--cacert", made.certFile, `https://${host}:${port}/healthz`])).status).toBe(status);
        }
      } finally {
        expect(await server.stop()).toBe(0);
      }
    }
  });

  test("runDoctor: a certificate for pi.local only warns about https://127.0.0.1 and https://localhost", async () => {
    const results = await doctor(
      { DATA_DIR: dir.path, HOST: "127.0.0.1", PORT: "0", TLS_CERT_FILE: piOnly.certFile, TLS_KEY_FILE: piOnly.keyFile },
      midLife(piOnly.pem),
    );
    const warnings = uncovered(results);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.status).toBe("warn");
    expect(warnings[0]!.message).toContain("https://127.0.0.1:0/");
    expect(warnings[0]!.message).toContain("https://localhost:0/");
  });

  test("runDoctor: a certificate covering loopback and every address of this machine gets no warning", async () => {
    const own = interfaces.filter((net) => !net.internal && net.family === "IPv4").map((net) => `IP:${net.address}`);
    const full = makeCertificate(dir.path, "this-machine", ["DNS:localhost", "IP:127.0.0.1", ...own].join(","));
    for (const host of ["127.0.0.1", "0.0.0.0"]) {
      const results = await doctor(
        { DATA_DIR: dir.path, HOST: host, PORT: "0", TLS_CERT_FILE: full.certFile, TLS_KEY_FILE: full.keyFile },
        midLife(full.pem),
      );
      expect(uncovered(results)).toEqual([]);
      expect(about(results, "tls").some((result) => result.status === "ok")).toBe(true);
    }
  });
});

describe("the CLI command", () => {
  async function run(args: string[], env: Record<string, string>, cwd: string) {
    const proc = Bun.spawn([process.execPath, "run", join(ROOT, "cli.ts"), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, ...clockEnvironment(), ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    captureOutput(stdout + stderr);
    return { stdout, stderr, code };
  }

  test("exit 0 with every line ok on a fresh device; exit 1 with a FAIL line on a broken one; --json for scripts", async () => {
    using dir = makeTempDir();
    mkdirSync(join(dir.path, "data"), { mode: 0o700 });
    const good = await run(["doctor"], { DATA_DIR: join(dir.path, "data"), PORT: "0" }, dir.path);
    expect(good.code).toBe(0);
    expect(good.stdout).toStartWith("tokengate doctor\n");
    expect(good.stdout).toContain("Everything tokengate needs is in place.");

    const broken = await run(["doctor"], { DATA_DIR: join(dir.path, "data"), PORT: "0", JWT_ALG: "RS256" }, dir.path);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/FAIL\s+configuration\s+JWT_ALG/);

    const json = await run(["doctor", "--json"], { DATA_DIR: join(dir.path, "data"), PORT: "0" }, dir.path);
    const parsed = JSON.parse(json.stdout) as CheckResult[];
    expect(parsed.map((result) => result.check)).toEqual(
      expect.arrayContaining(["configuration", "data directory", "store", "tls", "clock", "listening"]),
    );
  });
});

test("no secret used in this file reached any doctor report or CLI output", () => {
  expectNoSecretsInOutput();
});
