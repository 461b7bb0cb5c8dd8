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

/** The README's nginx configuration for browsers: /auth/ to the gate, the login header turned into a 302. */
export function browserNginxConfig(
  work: string,
  port: number,
  gatePort: number,
  upstreamPort: number,
  options: { readonly websockets?: boolean } = {},
): string {
  // A service's WebSockets need HTTP/1.1 and the upgrade headers passed on in its location.
  const sockets =
    options.websockets === true
      ? `
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";`
      : "";
  return nginxConfigAround(
    work,
    `  server {
    listen 127.0.0.1:${port};
    location = /_tokengate {
      internal;
      proxy_pass http://127.0.0.1:${gatePort}/auth/verify?login=header;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
    location /auth/ {
      proxy_pass http://127.0.0.1:${gatePort};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
    location @tokengate_login {
      if ($tg_login) {
        return 302 $tg_login;
      }
      add_header WWW-Authenticate $tg_challenge always;
      default_type application/json;
      return 401 '{"detail":"Invalid or missing token"}';
    }
    location /app/ {
      auth_request /_tokengate;
      auth_request_set $tg_login $upstream_http_x_tokengate_login;
      auth_request_set $tg_challenge $upstream_http_www_authenticate;
      auth_request_set $tg_cookie $upstream_http_x_tokengate_cookie;
      auth_request_set $auth_user $upstream_http_x_auth_user;
      error_page 401 = @tokengate_login;
      proxy_set_header X-Auth-User $auth_user;
      proxy_set_header Cookie $tg_cookie;
      proxy_set_header X-Auth-Token "";
      proxy_set_header Authorization "";${sockets}
      proxy_pass http://127.0.0.1:${upstreamPort};
    }
  }`,
  );
}

/** The README's Caddy configuration for browsers: /auth/* to the gate; forward_auth hands the 302 to the browser. */
export function browserCaddyConfig(port: number, gatePort: number, upstreamPort: number): string {
  return caddyfileFor(
    port,
    `  route {
    reverse_proxy /auth/* 127.0.0.1:${gatePort}
    forward_auth 127.0.0.1:${gatePort} {
      uri /auth/verify
      copy_headers X-Auth-User X-Auth-Id X-Auth-Scopes X-Auth-Kind X-Tokengate-Cookie>Cookie
    }
    request_header -X-Auth-Token
    request_header -Authorization
    reverse_proxy 127.0.0.1:${upstreamPort}
  }`,
  );
}
