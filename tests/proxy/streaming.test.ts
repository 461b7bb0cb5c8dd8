/**
 * 1 GiB each way through the built-in proxy of a real `bun run server.ts`, driven by curl: the
 * bodies stream (the gate's resident memory grows by less than 64 MiB while a GiB passes) and
 * arrive whole. The gate's RSS is sampled from /proc while the transfer runs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, rmSync, truncateSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret } from "../support/secrets.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const dir = mkdtempSync(join(tmpdir(), "tokengate-stream-"));
const token = newSecret();
let upstream: Upstream;
let server: ServerProcess;
let base: string;

beforeAll(async () => {
  upstream = startUpstream();
  const file = join(dir, "routes.toml");
  writeFileSync(
    file,
    `[[route]]\nname = "files"\nmatch = { path_prefix = "/files/" }\nupstream = "${upstream.url}"\nscope = "files"\nstrip_prefix = true\n`,
  );
  server = new ServerProcess({ PORT: "0", HOST: "127.0.0.1", AUTH_TOKEN: token, ROUTES_FILE: file, DATA_DIR: join(dir, "data") }, dir);
  base = `http://127.0.0.1:${await server.port()}`;
});

afterAll(async () => {
  await server.stop();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

function residentBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** Runs curl while sampling the gate's RSS; the peak growth over the RSS before it started. */
async function transfer(args: string[]): Promise<{ output: string; growth: number; exitCode: number }> {
  const pid = server.proc.pid;
  Bun.gc(true);
  const before = residentBytes(pid);
  let peak = before;
  const curl = Bun.spawn(["curl", "-sS", "--max-time", "120", "-H", `x-auth-token: ${token}`, ...args], { stdout: "pipe", stderr: "pipe" });
  const sampler = setInterval(() => (peak = Math.max(peak, residentBytes(pid))), 20);
  const output = await new Response(curl.stdout).text();
  const exitCode = await curl.exited;
  clearInterval(sampler);
  return { output, growth: peak - before, exitCode };
}

test("warm-up: a small body each way", async () => {
  const response = await fetch(`${base}/files/stream?bytes=1000`, { headers: { "x-auth-token": token } });
  expect((await response.arrayBuffer()).byteLength).toBe(1000);
  const upload = await fetch(`${base}/files/upload`, { method: "POST", headers: { "x-auth-token": token }, body: "x".repeat(1000) });
  expect(await upload.json()).toEqual({ received: 1000 });
});

test("a 1 GiB download streams through with flat memory", async () => {
  const { output, growth, exitCode } = await transfer([
    "-o",
    "/dev/null",
    "-w",
    "%{http_code} %{size_download}",
    `${base}/files/stream?bytes=${GIB}`,
  ]);
  expect(exitCode).toBe(0);
  expect(output).toBe(`200 ${GIB}`);
  console.log(`download: RSS growth ${(growth / MIB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MIB);
}, 150_000);

test("a 1 GiB upload streams through with flat memory", async () => {
  const file = join(dir, "upload.bin");
  // Sparse: a GiB of zeros that takes no disk.
  writeFileSync(file, "");
  truncateSync(file, GIB);
  const { output, growth, exitCode } = await transfer(["-T", file, "-X", "POST", `${base}/files/upload`]);
  expect(exitCode).toBe(0);
  expect(JSON.parse(output)).toEqual({ received: GIB });
  console.log(`upload: RSS growth ${(growth / MIB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MIB);
}, 150_000);

test("a chunked upload (no declared length, so counted as it streams) passes whole", async () => {
  const size = 256 * MIB;
  const file = join(dir, "chunked.bin");
  writeFileSync(file, "");
  truncateSync(file, size);
  const { output, growth, exitCode } = await transfer([
    "-T",
    file,
    "-X",
    "POST",
    "-H",
    "transfer-encoding: chunked",
    `${base}/files/upload`,
  ]);
  expect(exitCode).toBe(0);
  expect(JSON.parse(output)).toEqual({ received: size });
  expect(growth).toBeLessThan(64 * MIB);
}, 150_000);

test("no secret reached any output", () => expectNoSecretsInOutput());
