/**
 * Real nginx and Caddy as subprocesses for the tests that put them in front of the gate: a
 * generated config on a free loopback port, started and waited for, stopped at the end. Where a
 * binary is missing the tests skip, except in CI, where that is a failure.
 */
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "bun:test";
import { clockEnvironment } from "./harness.ts";

export const BINARIES = { nginx: "/usr/sbin/nginx", caddy: "/usr/bin/caddy" } as const;
export type ProxyKind = keyof typeof BINARIES;

/** In CI a missing proxy is a failed test, not a silent skip. */
export function requireProxyBinaries(): void {
  for (const [name, path] of Object.entries(BINARIES)) {
    if (!existsSync(path) && process.env.CI === "true") {
      test(`${name} is installed (CI must run the proxy tests)`, () =>
        expect(`${path} exists`).toBe(`${path} is missing: .ci/run should have installed it`));
    }
  }
}

export const hasProxy = (kind: ProxyKind) => existsSync(BINARIES[kind]);

export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export interface RunningProxy {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts `kind` with the config `configFor(work, port)` returns (nginx: a whole nginx.conf; Caddy:
 * a Caddyfile) in a new folder under `parent`, and waits until it answers.
 */
export async function startReverseProxy(
  kind: ProxyKind,
  parent: string,
  configFor: (work: string, port: number) => string,
): Promise<RunningProxy> {
  const work = mkdtempSync(join(parent, `${kind}-`));
  const port = freePort();
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work, XDG_DATA_HOME: work, XDG_CONFIG_HOME: work, ...clockEnvironment() };
  const file = join(work, kind === "nginx" ? "nginx.conf" : "Caddyfile");
  writeFileSync(file, configFor(work, port));
  const command =
    kind === "nginx"
      ? [BINARIES.nginx, "-p", work, "-c", file, "-g", "daemon off; user root;"]
      : [BINARIES.caddy, "run", "--config", file, "--adapter", "caddyfile"];
  const proc = Bun.spawn(command, { env, stdout: "ignore", stderr: "pipe" });
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    const answered = await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    );
    if (answered) break;
    await Bun.sleep(50);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

/**
 * An nginx.conf around `server`: one worker, every file under `work`, no access log. The tests'
 * server blocks (the README's configurations) go inside `http { … }`.
 */
export function nginxConfigAround(work: string, http: string): string {
  return `worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${work}/body; proxy_temp_path ${work}/proxy; fastcgi_temp_path ${work}/fastcgi; uwsgi_temp_path ${work}/uwsgi; scgi_temp_path ${work}/scgi;
${http}
}
`;
}

/** A Caddyfile for one site on loopback, without the admin endpoint or automatic HTTPS. */
export function caddyfileFor(port: number, site: string): string {
  return `{
  admin off
  auto_https off
}
http://127.0.0.1:${port} {
${site}
}
`;
}
