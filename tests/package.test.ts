/**
 * The package as someone else gets it: `bun pm pack` in the checkout, the tarball's file list,
 * `bun add <tarball>` in a fresh project under the system's temporary directory, and there, with
 * nothing of the checkout within reach (no NODE_PATH, no PATH entry inside it, no ancestor
 * node_modules): the sensor-hub example importing "tokengate" reached with curl and a WebSocket,
 * keys made and revoked with the installed `bunx tokengate`, and `bunx tokengate serve` on a fresh
 * data dir.
 *
 * Skipped, with a message, only when the npm registry is unreachable outside CI (`bun add` fetches
 * zod, jose and the rest); in CI (CI=true) it always runs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { clockEnvironment, curl, ROOT, WsProbe } from "./support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "./support/secrets.ts";

const REGISTRY =
  process.env.BUN_CONFIG_REGISTRY ?? process.env.NPM_CONFIG_REGISTRY ?? process.env.npm_config_registry ?? "https://registry.npmjs.org/";

async function registryReachable(): Promise<boolean> {
  try {
    // Any HTTP answer (even 401 from a private registry) means the network path is there.
    await fetch(new URL("zod", REGISTRY.endsWith("/") ? REGISTRY : `${REGISTRY}/`), { method: "HEAD", signal: AbortSignal.timeout(5_000) });
    return true;
  } catch {
    return false;
  }
}

const offline = process.env.CI !== "true" && !(await registryReachable());
if (offline) {
  console.warn(
    `tests/package.test.ts skipped: the npm registry (${new URL(REGISTRY).host}) is unreachable, so \`bun add\` cannot fetch ` +
      `tokengate's dependencies. Outside CI only: with CI=true this test runs and fails instead.`,
  );
}

/** The files the installed package needs, and what must never ship. */
const REQUIRED_FILES = [
  "index.ts",
  "tokengate.ts",
  "auth/library/gate.ts",
  "client/tokengate.ts",
  "console/index.html",
  "LICENSE",
  "package.json",
];
const FORBIDDEN = [/^tests\//, /^bench\//, /(^|\/)node_modules\//, /^data\//, /^\.ci\//, /^examples\//, /\.db$/, /(^|\/)auth_token$/];

const isInside = (parent: string, child: string) => {
  const path = relative(parent, child);
  return path === "" || (!path.startsWith("..") && !isAbsolute(path));
};

/** What the child processes may see of ours: how to reach the registry and Bun's cache, the clock, a PATH without the checkout. */
const PASSED_THROUGH = [
  "HOME",
  "TMPDIR",
  "LANG",
  "XDG_CACHE_HOME",
  "BUN_INSTALL",
  "BUN_INSTALL_CACHE_DIR",
  "BUN_CONFIG_REGISTRY",
  "NPM_CONFIG_REGISTRY",
  "npm_config_registry",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
];

function isolatedEnvironment(extra: Record<string, string> = {}): Record<string, string> & { PATH: string } {
  const env: Record<string, string> = {};
  for (const name of PASSED_THROUGH) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  // `bun run test` puts the checkout's node_modules/.bin first on PATH: none of it may reach the project.
  const path = [dirname(process.execPath), ...(process.env.PATH ?? "/usr/bin:/bin").split(":")].filter(
    (entry) => entry !== "" && !isInside(ROOT, resolve(entry)),
  );
  return { ...env, ...clockEnvironment(), PATH: [...new Set(path)].join(":"), ...extra };
}

interface Finished {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end, bounded; stderr always joins the leak scan, stdout unless it legitimately prints a new key. */
async function run(
  command: readonly string[],
  options: { readonly cwd: string; readonly env?: Record<string, string>; readonly timeoutMs?: number; readonly printsSecret?: boolean },
): Promise<Finished> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const proc = Bun.spawn([...command], {
    cwd: options.cwd,
    env: isolatedEnvironment(options.env),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  captureOutput(stderr);
  if (options.printsSecret !== true) captureOutput(stdout);
  if (proc.signalCode !== null) throw new Error(`${command.slice(1).join(" ")} did not finish within ${timeoutMs} ms`);
  return { code, stdout, stderr };
}

/** A server process left running, its output collected (and scanned) as it arrives. */
class Service {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  output = "";
  readonly #pumped: Promise<void>;

  constructor(
    readonly name: string,
    command: readonly string[],
    cwd: string,
    env: Record<string, string>,
  ) {
    this.proc = Bun.spawn([...command], { cwd, env: isolatedEnvironment(env), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        const text = decoder.decode(chunk, { stream: true });
        this.output += text;
        captureOutput(text);
      }
    };
    this.#pumped = Promise.all([pump(this.proc.stdout), pump(this.proc.stderr)]).then(() => undefined);
    running.add(this);
  }

  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.match(pattern);
      if (match !== null) return match;
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        const why =
          this.proc.exitCode !== null ? `exited with ${this.proc.exitCode}` : `said nothing matching ${pattern} within ${timeoutMs} ms`;
        throw new Error(`${this.name} ${why}; its output:\n${this.output.slice(-2_000)}`);
      }
      await Bun.sleep(20);
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s; resolves to the exit code. */
  async stop(): Promise<number | null> {
    this.proc.kill("SIGTERM");
    const exited = await Promise.race([this.proc.exited.then(() => true), Bun.sleep(5_000).then(() => false)]);
    if (!exited) this.proc.kill("SIGKILL");
    await this.proc.exited;
    await this.#pumped;
    running.delete(this);
    return exited ? this.proc.exitCode : null;
  }
}

const running = new Set<Service>();

// Under the system's temporary directory: no node_modules of the checkout is an ancestor of the project.
const work = realpathSync(mkdtempSync(join(tmpdir(), "tokengate-package-")));
const packDir = join(work, "pack");
const hub = join(work, "hub");
let tarball = "";
let packedFiles: string[] = [];
let installed: Finished | undefined;

/** The installed CLI, exactly as a user runs it in their project (`bunx`), never fetched from anywhere else. */
const tokengate = (args: readonly string[], env: Record<string, string>, options: { readonly printsSecret?: boolean } = {}) =>
  run([process.execPath, "x", "--no-install", "tokengate", ...args], { cwd: hub, env, ...options });

beforeAll(
  async () => {
    if (offline) return;
    mkdirSync(packDir);
    mkdirSync(hub);
    const packed = await run([process.execPath, "pm", "pack", "--destination", packDir, "--quiet"], { cwd: ROOT, timeoutMs: 60_000 });
    if (packed.code !== 0) throw new Error(`bun pm pack failed (${packed.code}): ${packed.stderr}`);
    tarball = resolve(packDir, packed.stdout.trim().split("\n").at(-1) ?? "");
    const listing = await run(["tar", "-tzf", tarball], { cwd: work });
    if (listing.code !== 0) throw new Error(`tar -tzf failed: ${listing.stderr}`);
    packedFiles = listing.stdout
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => line.replace(/^package\//, ""));

    writeFileSync(join(hub, "package.json"), `${JSON.stringify({ name: "hub", type: "module", private: true }, null, 2)}\n`);
    installed = await run([process.execPath, "add", tarball], { cwd: hub, timeoutMs: 120_000 });
  },
  { timeout: 150_000 },
);

afterAll(async () => {
  for (const service of running) {
    service.proc.kill("SIGKILL");
    await service.proc.exited;
  }
  rmSync(work, { recursive: true, force: true });
  if (!offline) expectNoSecretsInOutput();
});

describe.skipIf(offline)("the packed package, installed into a fresh project", () => {
  test("the tarball holds what a program needs and nothing of the checkout's own", () => {
    expect(existsSync(tarball)).toBe(true);
    expect(isInside(ROOT, tarball)).toBe(false);
    expect(REQUIRED_FILES.filter((file) => !packedFiles.includes(file))).toEqual([]);
    const stray = packedFiles.filter((file) => FORBIDDEN.some((pattern) => pattern.test(file)));
    expect(stray).toEqual([]);
  });

  test("bun add installs it, and the project resolves tokengate and its dependencies from its own node_modules", async () => {
    expect(installed).toBeDefined();
    expect({ code: installed?.code, stderr: installed?.code === 0 ? "" : installed?.stderr }).toEqual({ code: 0, stderr: "" });

    // Nothing of the checkout is within reach: not an ancestor, not on PATH, no NODE_PATH.
    expect(isInside(ROOT, hub)).toBe(false);
    expect(isInside(hub, ROOT)).toBe(false);
    const env = isolatedEnvironment();
    expect(env.NODE_PATH).toBeUndefined();
    expect(env.PATH.split(":").filter((entry) => isInside(ROOT, resolve(entry)))).toEqual([]);

    const installedDir = join(hub, "node_modules", "tokengate");
    expect(existsSync(join(installedDir, "index.ts"))).toBe(true);
    const manifest = JSON.parse(readFileSync(join(installedDir, "package.json"), "utf8")) as { version: string };
    const ours = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(manifest.version).toBe(ours.version);
    // The bin bunx runs is the installed package's own entry point.
    expect(realpathSync(join(hub, "node_modules", ".bin", "tokengate"))).toBe(join(installedDir, "tokengate.ts"));

    // Resolved as the example will resolve them, by a process whose cwd is the project.
    const script = [
      `console.log(import.meta.resolve("tokengate"));`,
      `console.log(import.meta.resolve("tokengate/client"));`,
      `for (const dependency of ["zod", "jose", "@simplewebauthn/server", "uqr"]) console.log(Bun.resolveSync(dependency, ${JSON.stringify(installedDir)}));`,
    ].join("\n");
    const resolved = await run([process.execPath, "-e", script], { cwd: hub });
    expect(resolved.code).toBe(0);
    const paths = resolved.stdout
      .trim()
      .split("\n")
      .map((line) => (line.startsWith("file://") ? Bun.fileURLToPath(line) : line));
    expect(paths.slice(0, 2)).toEqual([join(installedDir, "index.ts"), join(installedDir, "client", "tokengate.ts")]);
    expect(paths).toHaveLength(6);
    for (const path of paths) expect(isInside(join(hub, "node_modules"), path)).toBe(true);

    const version = await tokengate(["version"], {});
    expect(version.stdout).toBe(`tokengate ${ours.version} (bun ${Bun.version})\n`);
  });

  test("the sensor-hub example: curl gets 200, 401 and 403; a revoked key's socket closes with 4403", async () => {
    copyFileSync(join(ROOT, "examples", "sensor-hub", "server.ts"), join(hub, "server.ts"));
    const dataDir = join(hub, "hub-data");
    const example = new Service("the sensor-hub example", [process.execPath, "run", "server.ts"], hub, {
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PORT: "0",
      PAIRING: "false",
      LOG_LEVEL: "warn",
    });
    const url = (await example.waitFor(/sensor hub on (http:\/\/\S+?)\/?\n/))[1]!;
    const { port } = new URL(url);

    // Keys made with the installed CLI next to the running example; the scopes its routes require
    // were recorded in the store, so no --allow-new-scope is needed.
    const create = async (args: string[]) => {
      const created = await tokengate(["keys", "create", ...args, "--json"], { DATA_DIR: dataDir }, { printsSecret: true });
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: "" });
      const key = JSON.parse(created.stdout) as { id: string; key: string; scopes: string[] };
      trackSecret(key.key);
      return key;
    };
    const tablet = await create(["--name", "tablet", "--scopes", "sensors:read,sensors:stream"]);
    expect(tablet.scopes).toEqual(["sensors:read", "sensors:stream"]);
    // No key can hold no scope at all (`--scopes ""` is a usage error): this one holds only the
    // defaults, none of which the example's routes accept.
    const lamp = await create(["--name", "lamp"]);
    expect(lamp.scopes).not.toContain("sensors:read");

    const readings = `${url}/api/readings`;
    const granted = await curl(["-H", `X-Auth-Token: ${tablet.key}`, readings]);
    expect(granted.status).toBe(200);
    expect((JSON.parse(granted.body) as { for: string }).for).toBe("tablet");
    expect((await curl([readings])).status).toBe(401);
    expect((await curl(["-H", `X-Auth-Token: ${lamp.key}`, readings])).status).toBe(403);
    const relay = await curl([
      "-X",
      "POST",
      "-H",
      `X-Auth-Token: ${tablet.key}`,
      "-H",
      "content-type: application/json",
      "--data",
      '{"on":true}',
      `${url}/api/relays/heater`,
    ]);
    expect(relay.status).toBe(403);
    expect(relay.body).toContain("relay:write");
    expect((await curl(["-H", `X-Auth-Token: ${tablet.key}`, `${url}/api/relays/heater`])).status).toBe(200);

    // The console page bundles from node_modules as it does from a checkout.
    const page = await curl([`${url}/`]);
    expect(page.status).toBe(200);
    expect(page.body).toContain("tokengate console");
    expect((await curl([`${url}/index.js`])).status).toBe(200);

    const socket = new WsProbe(`ws://127.0.0.1:${port}/api/stream`, { headers: new Headers({ "x-auth-token": tablet.key }) });
    expect(JSON.parse(String(await socket.nextMessage(0, 5_000)))).toEqual({ hello: "tablet" });
    const revoked = await tokengate(["keys", "revoke", tablet.id], { DATA_DIR: dataDir });
    expect(revoked.code).toBe(0);
    const closed = await Promise.race([
      socket.closed,
      Bun.sleep(5_000).then(() => ({ code: 0, reason: "still open 5 s after the revocation" })),
    ]);
    expect(closed.code).toBe(4403);
    expect((await curl(["-H", `X-Auth-Token: ${tablet.key}`, readings])).status).toBe(401);

    expect(await example.stop()).toBe(0);
  });

  test("bunx tokengate serve starts on a fresh data dir", async () => {
    const dataDir = join(work, "serve-data", "fresh");
    expect(existsSync(dataDir)).toBe(false);
    const server = new Service("bunx tokengate serve", [process.execPath, "x", "--no-install", "tokengate", "serve"], hub, {
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_FORMAT: "json",
    });
    const listening = (await server.waitFor(/^.*"msg":"listening".*$/m))[0];
    const { port } = JSON.parse(listening) as { port: number };
    const url = `http://127.0.0.1:${port}`;

    expect((await curl([`${url}/healthz`])).status).toBe(200);
    const token = trackSecret(readFileSync(join(dataDir, "auth_token"), "utf8").trim());
    const data = await curl(["-H", `X-Auth-Token: ${token}`, `${url}/secure-data`]);
    expect(data.status).toBe(200);
    expect(JSON.parse(data.body)).toEqual({ message: "✅ Access granted", data: "Here is your secret data!" });
    expect((await curl([`${url}/secure-data`])).status).toBe(401);

    expect(await server.stop()).toBe(0);
  });
});
