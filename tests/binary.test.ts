/**
 * The single-file executable, end to end: compiled exactly as `bun run build` compiles it (for
 * this machine's linux-x64), then `tokengate serve` started as a process, reached with the real
 * curl and Bun's WebSocket, and managed with `tokengate keys …` from the same binary. The arm64
 * build is checked to be an aarch64 executable (it cannot run here).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openSync, readFileSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";
import { curl, makeTempDir, ROOT, WsProbe, clockEnvironment } from "./support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "./support/secrets.ts";

const out = makeTempDir("tokengate-binary-");
const binary = join(out.path, "tokengate-linux-x64");

async function build(target: string, outfile: string): Promise<void> {
  const proc = Bun.spawn(
    [process.execPath, "build", "--compile", "--bytecode", "--minify", `--target=${target}`, "./tokengate.ts", "--outfile", outfile],
    {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`bun build --target=${target} failed: ${stderr}`);
}

async function run(dataDir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([binary, ...args], {
    env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), DATA_DIR: dataDir },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  captureOutput(stderr);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  await build("bun-linux-x64", binary);
}, 60_000);

afterAll(() => {
  out[Symbol.dispose]();
  expectNoSecretsInOutput();
});

describe("the tokengate binary", () => {
  test("serve, curl, WebSocket, and the CLI in the same binary", async () => {
    using data = makeTempDir();
    const server = Bun.spawn([binary, "serve"], {
      env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), DATA_DIR: data.path, PORT: "0", HOST: "127.0.0.1", LOG_FORMAT: "json" },
      stdout: "pipe",
      stderr: "pipe",
    });
    let log = "";
    const pump = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of server.stdout) {
        const text = decoder.decode(chunk, { stream: true });
        log += text;
        captureOutput(text);
      }
    })();
    try {
      const deadline = Date.now() + 10_000;
      let port = 0;
      while (port === 0 && Date.now() < deadline) {
        const listening = log.split("\n").find((line) => line.includes('"msg":"listening"'));
        if (listening !== undefined) port = (JSON.parse(listening) as { port: number }).port;
        else await Bun.sleep(20);
      }
      expect(port).toBeGreaterThan(0);
      const url = `http://127.0.0.1:${port}`;
      const bootstrap = trackSecret(readFileSync(join(data.path, "auth_token"), "utf8").trim());

      // The seed's curl command against the binary.
      const seed = await curl(["-s", "-H", `X-Auth-Token: ${bootstrap}`, `${url}/secure-data`]);
      expect(seed.status).toBe(200);
      expect(JSON.parse(seed.body)).toEqual({ message: "✅ Access granted", data: "Here is your secret data!" });

      // First-run pairing as on a fresh Pi: `tokengate pair` on the device, the code posted from the LAN.
      const pairing = await run(data.path, "pair", "--json");
      expect(pairing.code).toBe(0);
      const code = trackSecret((JSON.parse(pairing.stdout) as { code: string }).code);
      const paired = await curl(["-s", "-X", "POST", "--data-urlencode", `code=${code}`, `${url}/auth/pair`]);
      expect(paired.status).toBe(200);
      const admin = trackSecret((JSON.parse(paired.body) as { api_key: string }).api_key);
      expect((await curl(["-s", "-H", `X-Auth-Token: ${admin}`, `${url}/secure-data`])).status).toBe(200);
      expect((await run(data.path, "pair")).code).toBe(4);

      // The doctor, next to the running server, finds nothing to fix; the help names the binary.
      const doctor = await run(data.path, "doctor");
      expect(doctor.stdout).toContain("1 API key, 0 users");
      expect(doctor.code).toBe(0);
      const help = await run(data.path, "--help-cli");
      expect(help.stdout).toStartWith("Usage: tokengate <command>");
      expect(help.stdout).not.toContain("bun run cli");

      // A key made by `tokengate keys create`, used by curl and by a WebSocket, then revoked.
      const created = await run(data.path, "keys", "create", "--name", "pi", "--json");
      expect(created.code).toBe(0);
      const key = JSON.parse(created.stdout) as { id: string; key: string };
      trackSecret(key.key);
      expect((await curl(["-s", "-H", `Authorization: Bearer ${key.key}`, `${url}/secure-data`])).status).toBe(200);
      const socket = new WsProbe(`ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(key.key)}`);
      expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
      expect((await run(data.path, "keys", "revoke", key.id)).code).toBe(0);
      expect((await socket.closed).code).toBe(4403);
      expect((await curl(["-s", "-H", `Authorization: Bearer ${key.key}`, `${url}/secure-data`])).status).toBe(401);

      expect((await run(data.path, "version")).stdout).toMatch(/^tokengate \d+\.\d+\.\d+ \(bun 1\.4\.5\)\n$/);
      expect((await run(data.path, "serve", "extra")).code).toBe(2);
    } finally {
      server.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      await pump;
    }
  }, 30_000);

  test.skipIf(Bun.which("systemd-analyze") === null)("the systemd unit passes systemd-analyze verify", async () => {
    using dir = makeTempDir();
    const unit = join(dir.path, "tokengate.service");
    // verify checks that ExecStart exists: point it at the binary just built.
    await Bun.write(unit, readFileSync(join(ROOT, "deploy/tokengate.service"), "utf8").replaceAll("/usr/local/bin/tokengate", binary));
    const proc = Bun.spawn(["systemd-analyze", "verify", unit], { stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  test("the Raspberry Pi build is an aarch64 ELF executable", async () => {
    const arm = join(out.path, "tokengate-linux-arm64");
    await build("bun-linux-arm64", arm);
    const header = Buffer.alloc(20);
    const fd = openSync(arm, "r");
    readSync(fd, header, 0, 20, 0);
    closeSync(fd);
    expect(header.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    // e_machine at offset 18: 0xB7 is EM_AARCH64.
    expect(header.readUInt16LE(18)).toBe(0xb7);
  }, 60_000);
});
