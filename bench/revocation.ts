/**
 * `bun run bench:revocation`: how long after `bun run cli keys revoke ID` returns does the running
 * server close that key's WebSocket with 4403? The real server and the real CLI as subprocesses,
 * one key and one open socket per sample. Prints p50 / p90 / p99 / max in milliseconds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generateToken } from "../auth/secrets/tokens.ts";

const { values } = parseArgs({ options: { samples: { type: "string", default: "40" }, json: { type: "boolean", default: false } } });
const samples = Math.min(Math.max(Number(values.samples), 5), 200);
const root = resolve(import.meta.dir, "..");
const dataDir = mkdtempSync(join(tmpdir(), "tokengate-revocation-"));

const cli = async (...args: string[]) => {
  const proc = Bun.spawn([process.execPath, "run", join(root, "cli.ts"), ...args], {
    env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir },
    stdout: "pipe",
    stderr: "inherit",
  });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`cli ${args.join(" ")} exited ${code}`);
  return out;
};

const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
const port = probe.port!;
void probe.stop(true);
const server = Bun.spawn([process.execPath, "run", join(root, "server.ts")], {
  env: {
    PATH: process.env.PATH ?? "",
    AUTH_TOKEN: generateToken(),
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    LOG_LEVEL: "warn",
  },
  stdout: "ignore",
  stderr: "inherit",
});

try {
  const deadline = Date.now() + 15_000;
  while (
    !(await fetch(`http://127.0.0.1:${port}/healthz`).then(
      () => true,
      () => false,
    ))
  ) {
    if (Date.now() > deadline) throw new Error("server did not start");
    await Bun.sleep(25);
  }
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const created = JSON.parse(await cli("keys", "create", "--name", `sample ${i}`, "--json")) as { id: string; key: string };
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, [
      "tokengate",
      `tokengate.bearer.${Buffer.from(created.key).toString("base64url")}`,
    ]);
    await new Promise<void>((ok, fail) => {
      ws.onmessage = () => ok();
      ws.onclose = () => fail(new Error("socket closed before the greeting"));
    });
    const closed = new Promise<{ code: number; at: number }>((ok) => {
      ws.onclose = (event) => ok({ code: event.code, at: performance.now() });
    });
    await cli("keys", "revoke", created.id);
    const returned = performance.now();
    const result = await Promise.race([closed, Bun.sleep(5_000).then(() => ({ code: 0, at: Number.NaN }))]);
    if (result.code !== 4403) throw new Error(`sample ${i}: expected close 4403, got ${result.code}`);
    latencies.push(Math.max(0, result.at - returned));
  }
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!;
  const report = { samples, p50_ms: pick(0.5), p90_ms: pick(0.9), p99_ms: pick(0.99), max_ms: latencies.at(-1)!, target_ms: 1000 };
  if (values.json) console.log(JSON.stringify(report));
  else
    console.log(
      `revocation → close 4403, ${samples} samples: p50 ${report.p50_ms.toFixed(1)} ms, p90 ${report.p90_ms.toFixed(1)} ms, ` +
        `p99 ${report.p99_ms.toFixed(1)} ms, max ${report.max_ms.toFixed(1)} ms (target p99 < 1000 ms)`,
    );
} finally {
  server.kill();
  await server.exited;
  rmSync(dataDir, { recursive: true, force: true });
}
