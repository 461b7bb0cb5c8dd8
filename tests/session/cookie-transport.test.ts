/**
 * The cookie's name and flags follow the transport: over TLS (the real `bun run server.ts` with the
 * fixture certificate, asked with the curl binary) it is `__Host-tgs` with `Secure`; behind a
 * trusted TLS-terminating proxy that says `X-Forwarded-Proto: https` too; over plain HTTP it is
 * `tgs` without `Secure` (a browser drops Secure cookies from http: pages). A `tgs` cookie is not
 * read over TLS, where only the prefixed name (which a sibling host cannot set) counts.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { curl, makeTempDir, ROOT, ServerProcess, startTestApp } from "../support/harness.ts";
import { insertApiKey } from "../support/keys.ts";
import { openDataDirStore } from "../support/stores.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

const CERT = join(ROOT, "tests/fixtures/tls-cert.pem");
const KEY = join(ROOT, "tests/fixtures/tls-key.pem");

function setCookieOf(headers: string): string {
  const line = headers.split(/\r?\n/).find((header) => header.toLowerCase().startsWith("set-cookie:"));
  if (line === undefined) throw new Error("no Set-Cookie");
  const value = line.slice("set-cookie:".length).trim();
  trackSecret(value.slice(value.indexOf("=") + 1, value.indexOf(";")));
  return value;
}

describe("over TLS", () => {
  test("the real server sets __Host-tgs with Secure, reads it back, and ignores a plain tgs cookie", async () => {
    using dir = makeTempDir();
    const server = new ServerProcess(
      {
        AUTH_TOKEN: newSecret(),
        PORT: "0",
        HOST: "127.0.0.1",
        DATA_DIR: dir.path,
        TLS_CERT_FILE: CERT,
        TLS_KEY_FILE: KEY,
        PAIRING: "false",
      },
      dir.path,
    );
    const port = await server.port();
    const store = await openDataDirStore(dir.path);
    const key = await insertApiKey(store, { name: "laptop", scopes: ["data:read"] });
    await store.close();
    const base = `https://localhost:${port}`;
    const signIn = await curl(["--cacert", CERT, "-X", "POST", "--data-urlencode", `api_key=${key.token}`, `${base}/auth/login`]);
    expect(signIn.status).toBe(303);
    const setCookie = setCookieOf(signIn.headers);
    expect(setCookie).toMatch(/^__Host-tgs=tgs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/);
    const pair = setCookie.split(";")[0]!;
    const data = await curl(["--cacert", CERT, "-H", `Cookie: ${pair}`, `${base}/secure-data`]);
    expect(data.status).toBe(200);
    const plainName = await curl(["--cacert", CERT, "-H", `Cookie: ${pair.replace("__Host-tgs=", "tgs=")}`, `${base}/secure-data`]);
    expect(plainName.status).toBe(401);
    expect(await server.stop()).toBe(0);
  });
});

describe("behind a trusted TLS-terminating proxy", () => {
  test("X-Forwarded-Proto: https from a trusted peer means __Host-tgs; from anyone else it is ignored", async () => {
    await using trusted = await startTestApp({ TRUSTED_PROXIES: "127.0.0.1" });
    const key = await insertApiKey(trusted.store, { name: "laptop", scopes: ["data:read"] });
    await trusted.app.keyring.refresh();
    const viaProxy = await fetch(`${trusted.http}/auth/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "x-forwarded-proto": "https", "x-forwarded-for": "192.168.1.20" },
      body: new URLSearchParams({ api_key: key.token }),
    });
    const cookie = viaProxy.headers.get("set-cookie")!;
    trackSecret(cookie.slice(cookie.indexOf("=") + 1, cookie.indexOf(";")));
    expect(cookie).toStartWith("__Host-tgs=");
    expect(cookie).toEndWith("; Secure");

    await using direct = await startTestApp();
    const other = await insertApiKey(direct.store, { name: "laptop", scopes: ["data:read"] });
    await direct.app.keyring.refresh();
    const spoofed = await fetch(`${direct.http}/auth/login`, {
      method: "POST",
      redirect: "manual",
      headers: { "x-forwarded-proto": "https" },
      body: new URLSearchParams({ api_key: other.token }),
    });
    const plain = spoofed.headers.get("set-cookie")!;
    trackSecret(plain.slice(plain.indexOf("=") + 1, plain.indexOf(";")));
    expect(plain).toStartWith("tgs=");
    expect(plain).not.toContain("Secure");
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
