/**
 * The real `bun run server.ts` as a subprocess: configuration errors, first-start token
 * generation, reuse, token files, the seed's curl commands and graceful shutdown.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WS_GREETING } from "../auth/http/routes.ts";
import { curl, makeTempDir, ServerProcess, WsProbe } from "./support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "./support/secrets.ts";

const EX_CONFIG = 78;

describe("configuration errors", () => {
  test("every problem at once, variable names and fixes, no values, exit 78, no listener", async () => {
    using dir = makeTempDir();
    const weak = trackSecret("weak-and-unique-e4b1c");
    const server = new ServerProcess({ AUTH_TOKEN: weak, PORT: "eighty", LOG_LEVEL: "chatty", WS_IDLE_TIMEOUT_SECONDS: "5000" }, dir.path);
    expect(await server.exited()).toBe(EX_CONFIG);
    for (const variable of ["AUTH_TOKEN", "PORT", "LOG_LEVEL", "WS_IDLE_TIMEOUT_SECONDS"]) {
      expect(server.stderr).toContain(`  - ${variable} `);
    }
    expect(server.stderr).toContain("4 problems");
    for (const value of ["eighty", "chatty", "5000"]) expect(server.stderr).not.toContain(value);
    expect(server.stdout).not.toContain("listening");
  });

  test.each([
    ["the seed's placeholder", "my-super-secret-token", "placeholder"],
    ["changeme", "changeme", "placeholder"],
    ["too short", "Qm9vdHN0cmFwVG9rZW4", "shorter than 32"],
    ["unexpanded ${VAR}", "${TOKENGATE_SECRET_FROM_THE_VAULT_1}", "unexpanded shell variable"],
    ["quoted", '"Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5u"', "quotes"],
    ["trailing newline", "Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5u\n", "line break"],
  ])("AUTH_TOKEN %s is refused with exit 78", async (_name, value, reason) => {
    using dir = makeTempDir();
    trackSecret(value.trim());
    const server = new ServerProcess({ AUTH_TOKEN: value }, dir.path);
    expect(await server.exited()).toBe(EX_CONFIG);
    expect(server.stderr).toContain("AUTH_TOKEN");
    expect(server.stderr).toContain(reason);
  });

  test("a port already in use is a clear error naming PORT", async () => {
    using dir = makeTempDir();
    using blocker = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("busy") });
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: String(blocker.port), HOST: "127.0.0.1" }, dir.path);
    expect(await server.exited()).toBe(EX_CONFIG);
    expect(server.stderr).toContain("PORT");
    expect(server.stderr).toContain("already in use");
  });

  test("a second tokengate on a port a tokengate already serves refuses to start (no SO_REUSEPORT), says so plainly, and leaves no files", async () => {
    using first = makeTempDir();
    using second = makeTempDir();
    const running = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1" }, first.path);
    const port = await running.port();
    const late = new ServerProcess({ PORT: String(port), HOST: "127.0.0.1" }, second.path);
    expect(await late.exited()).toBe(EX_CONFIG);
    expect(late.stderr).toContain(`PORT ${port} on 127.0.0.1 is already in use`);
    expect(late.stderr).not.toContain("PORT port");
    // Nothing was created for a server that never ran: no token file, no empty database.
    expect(existsSync(join(second.path, "data"))).toBe(false);
    // The first one still answers every request alone.
    const statuses = await Promise.all(
      Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.status)),
    );
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    await running.stop();
  });
});

describe("bootstrap token", () => {
  test("first start generates a 0600 token file and says how to use it; later starts reuse it", async () => {
    using dir = makeTempDir();
    const first = new ServerProcess({ PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const port = await first.port();
    const notice = await first.waitFor((line) => String(line.msg).includes("generated"));
    const tokenPath = join(dir.path, "data", "auth_token");
    expect(String(notice.msg)).toContain(tokenPath);
    expect(String(notice.msg)).toContain(`curl -H "X-Auth-Token: $(cat ${tokenPath})"`);

    const token = trackSecret(readFileSync(tokenPath, "latin1").trim());
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir.path, "data")).mode & 0o777).toBe(0o700);

    const ok = await curl(["-H", `X-Auth-Token: ${token}`, `http://127.0.0.1:${port}/secure-data`]);
    expect(ok.status).toBe(200);
    expect(await first.stop()).toBe(0);

    const second = new ServerProcess({ PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const secondPort = await second.port();
    await second.waitFor((line) => line.msg === "bootstrap token loaded");
    expect(second.stdout).not.toContain("generated");
    expect(readFileSync(tokenPath, "latin1").trim()).toBe(token);
    const again = await curl(["-H", `X-Auth-Token: ${token}`, `http://127.0.0.1:${secondPort}/secure-data`]);
    expect(again.status).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  test("a stored token file that was tampered with is refused, naming DATA_DIR", async () => {
    using dir = makeTempDir();
    const dataDir = join(dir.path, "state");
    const first = new ServerProcess({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir }, dir.path);
    await first.port();
    trackSecret(readFileSync(join(dataDir, "auth_token"), "latin1").trim());
    expect(await first.stop()).toBe(0);
    writeFileSync(join(dataDir, "auth_token"), "changeme\n");
    const second = new ServerProcess({ PORT: "0", DATA_DIR: dataDir }, dir.path);
    expect(await second.exited()).toBe(EX_CONFIG);
    expect(second.stderr).toContain("DATA_DIR");
    expect(second.stderr).toContain("delete the file");
  });

  test("a DATA_DIR that cannot be created is a config error", async () => {
    using dir = makeTempDir();
    writeFileSync(join(dir.path, "not-a-dir"), "x");
    const server = new ServerProcess({ PORT: "0", DATA_DIR: join(dir.path, "not-a-dir", "data") }, dir.path);
    expect(await server.exited()).toBe(EX_CONFIG);
    expect(server.stderr).toContain("DATA_DIR");
  });

  test("AUTH_TOKEN_FILE: one trailing newline is fine, the secret is never printed", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const file = join(dir.path, "token.secret");
    writeFileSync(file, `${secret}\n`);
    chmodSync(file, 0o600);
    const server = new ServerProcess({ AUTH_TOKEN_FILE: file, PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const port = await server.port();
    expect((await curl(["-H", `X-Auth-Token: ${secret}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  test.each([
    ["missing file", null, "does not exist"],
    ["weak content", "changeme\n", "placeholder"],
    ["two lines", "Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5u\nsecond-line\n", "line break"],
  ])("AUTH_TOKEN_FILE with %s is refused with exit 78", async (_name, content, reason) => {
    using dir = makeTempDir();
    const file = join(dir.path, "token.secret");
    if (content !== null) writeFileSync(file, content);
    const server = new ServerProcess({ AUTH_TOKEN_FILE: file }, dir.path);
    expect(await server.exited()).toBe(EX_CONFIG);
    expect(server.stderr).toContain("AUTH_TOKEN_FILE");
    expect(server.stderr).toContain(reason);
  });
});

describe("the seed's clients against the real server", () => {
  test("both curl commands from the seed README", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const server = new ServerProcess({ AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const port = await server.port();

    const works = await curl(["-H", `X-Auth-Token: ${secret}`, `http://127.0.0.1:${port}/secure-data`]);
    expect(works.status).toBe(200);
    expect(JSON.parse(works.body)).toEqual({ message: "✅ Access granted", data: "Here is your secret data!" });

    const fails = await curl([`http://127.0.0.1:${port}/secure-data`]);
    expect(fails.status).toBe(401);
    expect(JSON.parse(fails.body)).toMatchObject({ detail: "Invalid or missing token" });
    expect(fails.headers.toLowerCase()).toContain('www-authenticate: bearer realm="tokengate"');

    // Log lines are flushed in batches every 25 ms; wait for the refusal rather than race it. By
    // default (ACCESS_LOG=refused) the success has no line of its own.
    await server.waitFor((line) => line.msg === "request" && line.status === 401);
    const logs = server.logLines().filter((line) => line.msg === "request");
    expect(logs.map((line) => line.status)).toEqual([401]);
    expect(await server.stop()).toBe(0);
  });

  test("ACCESS_LOG=all adds a line for each success, with the principal and the address", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const server = new ServerProcess({ AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1", ACCESS_LOG: "all" }, dir.path);
    const port = await server.port();
    expect((await curl(["-H", `X-Auth-Token: ${secret}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);
    const line = await server.waitFor((entry) => entry.msg === "request" && entry.status === 200);
    expect(line).toMatchObject({ method: "GET", path: "/secure-data", principal: "bootstrap", remote: "127.0.0.1" });
    expect(await server.stop()).toBe(0);
    expect(server.stdout).not.toContain(secret);
  });

  test("the seed's browser snippet: new WebSocket(url?token=…) receives the greeting", async () => {
    using dir = makeTempDir();
    const secret = newSecret();
    const server = new ServerProcess({ AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const port = await server.port();
    const probe = new WsProbe(`ws://127.0.0.1:${port}/ws?token=${secret}`);
    expect(await probe.nextMessage(0)).toBe(WS_GREETING);
    probe.socket.close();
    await probe.closed;
    expect(await server.stop()).toBe(0);
    expect(server.stdout).toContain("/ws?token=REDACTED");
  });
});

describe("graceful shutdown", () => {
  test.each(["SIGTERM", "SIGINT"] as const)("%s closes sockets with 1001 and exits 0 within 10 s", async (signal) => {
    using dir = makeTempDir();
    const secret = newSecret();
    const server = new ServerProcess({ AUTH_TOKEN: secret, PORT: "0", HOST: "127.0.0.1" }, dir.path);
    const port = await server.port();
    const probes = [0, 1].map(() => new WsProbe(`ws://127.0.0.1:${port}/ws?token=${secret}`));
    await Promise.all(probes.map((probe) => probe.nextMessage(0)));
    const started = performance.now();
    server.proc.kill(signal);
    const closes = await Promise.all(probes.map((probe) => probe.closed));
    expect(closes.map((close) => close.code)).toEqual([1001, 1001]);
    expect(await server.exited()).toBe(0);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(server.stdout).toContain('"msg":"stopped"');
  });
});

test("no secret used in this file reached any server output", () => {
  expectNoSecretsInOutput();
});
