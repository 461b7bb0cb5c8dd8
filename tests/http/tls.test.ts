/**
 * TLS: the real server on HTTPS/WSS with a fixture certificate, the fingerprint it prints, broken
 * TLS configuration (exit 78), and passwords refused over plain HTTP from other machines.
 */
import { describe, expect, test } from "bun:test";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashPassword } from "../../auth/secrets/passwords.ts";
import { curl, makeTempDir, ROOT, ServerProcess, startTestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

const CERT = join(ROOT, "tests/fixtures/tls-cert.pem");
const KEY = join(ROOT, "tests/fixtures/tls-key.pem");

describe("HTTPS and WSS", () => {
  test("serves HTTPS (verified against the certificate) and WSS, and prints the SHA-256 fingerprint", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const server = new ServerProcess(
      { AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path, TLS_CERT_FILE: CERT, TLS_KEY_FILE: KEY },
      dir.path,
    );
    const port = await server.port();
    const listening = await server.waitFor((line) => line.msg === "listening");
    expect(listening.tls_sha256).toBe(new X509Certificate(readFileSync(CERT)).fingerprint256);
    expect(String(listening.url)).toStartWith("https://");

    const ok = await curl(["--cacert", CERT, "-H", `X-Auth-Token: ${secret}`, `https://127.0.0.1:${port}/secure-data`]);
    expect(ok.exitCode).toBe(0);
    expect(ok.status).toBe(200);
    const plain = await curl([`http://127.0.0.1:${port}/healthz`]);
    expect(plain.status).not.toBe(200);

    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, {
      protocols: ["tokengate", `tokengate.bearer.${Buffer.from(secret).toString("base64url")}`],
      tls: { ca: readFileSync(CERT, "utf8") },
    } as never);
    const greeting = await new Promise<string>((resolve, reject) => {
      ws.onmessage = (event) => resolve(String(event.data));
      ws.onerror = () => reject(new Error("wss failed"));
    });
    expect(greeting).toBe("✅ WebSocket connected with valid token");
    ws.close();
    expect(await server.stop()).toBe(0);
  });

  test.each([
    [
      "a key that does not match the certificate",
      "TLS_KEY_FILE",
      (dir: string) => {
        const other = join(dir, "other-key.pem");
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
        writeFileSync(other, privateKey.export({ type: "pkcs8", format: "pem" }));
        return { TLS_CERT_FILE: CERT, TLS_KEY_FILE: other };
      },
    ],
    [
      "a key file that is not a key",
      "TLS_KEY_FILE",
      (dir: string) => {
        const garbage = join(dir, "garbage-key.pem");
        writeFileSync(garbage, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        return { TLS_CERT_FILE: CERT, TLS_KEY_FILE: garbage };
      },
    ],
    [
      "a certificate file that does not exist",
      "TLS_CERT_FILE",
      (dir: string) => ({ TLS_CERT_FILE: join(dir, "nope.pem"), TLS_KEY_FILE: KEY }),
    ],
    [
      "a certificate file that is not PEM",
      "TLS_CERT_FILE",
      (dir: string) => {
        const bogus = join(dir, "bogus.pem");
        writeFileSync(bogus, "not a certificate\n");
        return { TLS_CERT_FILE: bogus, TLS_KEY_FILE: KEY };
      },
    ],
  ])("%s: exit 78 naming %s", async (_name, variable, make) => {
    using dir = makeTempDir();
    const server = new ServerProcess(
      { AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path, ...make(dir.path) },
      dir.path,
    );
    expect(await server.exited()).toBe(78);
    expect(server.stderr).toContain(variable);
  });
});

describe("passwords only over TLS or from this machine", () => {
  const PASSWORD = trackSecret("gina's long password");
  const basic = `Basic ${Buffer.from(`gina:${PASSWORD}`).toString("base64")}`;
  const setup = async (env: Record<string, string>) => {
    const app = await startTestApp({ BASIC_AUTH: "true", TRUSTED_PROXIES: "127.0.0.1", ...env });
    await app.store.insertUser({ username: "gina", passwordHash: await hashPassword(PASSWORD), roles: ["viewer"], createdAt: Date.now() });
    return app;
  };

  test.each<[string, Record<string, string>, Record<string, string>, number]>([
    ["from this machine", {}, {}, 200],
    ["from the LAN over plain HTTP", {}, { "X-Forwarded-For": "192.168.1.50" }, 400],
    ["from the LAN through a TLS-terminating proxy", {}, { "X-Forwarded-For": "192.168.1.50", "X-Forwarded-Proto": "https" }, 200],
    ["from the LAN with ALLOW_INSECURE_PASSWORDS", { ALLOW_INSECURE_PASSWORDS: "true" }, { "X-Forwarded-For": "192.168.1.50" }, 200],
  ])("Basic %s → %d", async (_name, env, headers, status) => {
    await using app = await setup(env);
    const response = await fetch(`${app.http}/secure-data`, { headers: { Authorization: basic, ...headers } });
    expect(response.status).toBe(status);
    if (status === 400) expect(((await response.json()) as { detail: string }).detail).toContain("HTTPS");
  });

  test("the password grant follows the same rule", async () => {
    await using app = await setup({});
    const post = (headers: Record<string, string>) =>
      fetch(`${app.http}/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ grant_type: "password", username: "gina", password: PASSWORD }).toString(),
      });
    const refused = await post({ "X-Forwarded-For": "192.168.1.50" });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: "invalid_request" });
    const ok = await post({});
    expect(ok.status).toBe(200);
    trackSecret(((await ok.json()) as { access_token: string }).access_token);
  });
});

test("no secret reached any server output", () => {
  expectNoSecretsInOutput();
});
