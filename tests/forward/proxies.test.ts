/**
 * Forward auth behind the reverse proxies people run: real nginx (`auth_request`) and real Caddy
 * (`forward_auth`), each a subprocess with a generated config on free ports, in front of a Bun
 * upstream that records every request it receives. Where a proxy binary is missing these tests say
 * so and skip, except in CI, where that is a failure.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { clockEnvironment, startTestApp, type TestApp } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const NGINX = "/usr/sbin/nginx";
const CADDY = "/usr/bin/caddy";
for (const [name, path] of [
  ["nginx", NGINX],
  ["caddy", CADDY],
] as const) {
  if (!existsSync(path) && process.env.CI === "true") {
    test(`${name} is installed (CI must run the proxy tests)`, () =>
      expect(`${path} exists`).toBe(`${path} is missing: .ci/run should have installed it`));
  }
}

const dir = mkdtempSync(join(tmpdir(), "tokengate-proxies-"));
const routesFile = join(dir, "routes.toml");
writeFileSync(
  routesFile,
  `[[route]]\nname = "grafana"\nmatch = { path_prefix = "/grafana/" }\nupstream = "http://127.0.0.1:9"\nscope = "grafana"\n`,
);

let app: TestApp;
let tablet: { id: string; token: string };
let doorbell: { id: string; token: string };
const received: Array<Record<string, string>> = [];
const upstream = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(request) {
    received.push({ ...Object.fromEntries(request.headers), url: request.url });
    return new Response("upstream says hello");
  },
});

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

async function addKey(name: string, scopes: string[]) {
  const key = await insertApiKey(app.store, { name, scopes });
  return { id: key.id, token: key.token };
}

beforeAll(async () => {
  app = await startTestApp({ ROUTES_FILE: routesFile, TRUSTED_PROXIES: "127.0.0.1", BAN_EXEMPT: "" });
  tablet = await addKey("dashboard tablet", ["grafana"]);
  doorbell = await addKey("doorbell", ["camera:view"]);
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

function nginxConfig(work: string, port: number, gatePort: number): string {
  return `worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${work}/body; proxy_temp_path ${work}/proxy; fastcgi_temp_path ${work}/fastcgi; uwsgi_temp_path ${work}/uwsgi; scgi_temp_path ${work}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = /_tokengate {
      internal;
      proxy_pass http://127.0.0.1:${gatePort}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Uri "";
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
    location /grafana/ {
      auth_request /_tokengate;
      auth_request_set $auth_user $upstream_http_x_auth_user;
      auth_request_set $auth_id $upstream_http_x_auth_id;
      auth_request_set $auth_scopes $upstream_http_x_auth_scopes;
      auth_request_set $auth_kind $upstream_http_x_auth_kind;
      proxy_set_header X-Auth-User $auth_user;
      proxy_set_header X-Auth-Id $auth_id;
      proxy_set_header X-Auth-Scopes $auth_scopes;
      proxy_set_header X-Auth-Kind $auth_kind;
      proxy_set_header X-Auth-Token "";
      proxy_set_header Authorization "";
      proxy_pass http://127.0.0.1:${upstream.port};
    }
  }
}
`;
}

function caddyConfig(port: number, gatePort: number): string {
  return `{
  admin off
  auto_https off
}
http://127.0.0.1:${port} {
  route {
    forward_auth 127.0.0.1:${gatePort} {
      uri /auth/verify
      copy_headers X-Auth-User X-Auth-Id X-Auth-Scopes X-Auth-Kind
    }
    request_header -X-Auth-Token
    request_header -Authorization
    reverse_proxy 127.0.0.1:${upstream.port}
  }
}
`;
}

interface Proxy {
  readonly url: string;
  stop(): Promise<void>;
}

async function startProxy(kind: "nginx" | "caddy"): Promise<Proxy> {
  const work = mkdtempSync(join(dir, `${kind}-`));
  const port = freePort();
  const gatePort = app.app.listener.server.port!;
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work, XDG_DATA_HOME: work, XDG_CONFIG_HOME: work, ...clockEnvironment() };
  let command: string[];
  if (kind === "nginx") {
    writeFileSync(join(work, "nginx.conf"), nginxConfig(work, port, gatePort));
    command = [NGINX, "-p", work, "-c", join(work, "nginx.conf"), "-g", "daemon off; user root;"];
  } else {
    writeFileSync(join(work, "Caddyfile"), caddyConfig(port, gatePort));
    command = [CADDY, "run", "--config", join(work, "Caddyfile"), "--adapter", "caddyfile"];
  }
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
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

for (const kind of ["nginx", "caddy"] as const) {
  describe.skipIf(!existsSync(kind === "nginx" ? NGINX : CADDY))(`behind real ${kind}`, () => {
    let proxy: Proxy;
    beforeAll(async () => {
      proxy = await startProxy(kind);
    });
    afterAll(() => proxy.stop());

    test("allowed: the upstream answers, gets the identity, and never the credential or a spoofed identity", async () => {
      const before = received.length;
      const spoofed = {
        "X-Auth-User": "admin",
        "X-Auth-Id": "bootstrap",
        "X-Auth-Kind": "bootstrap",
        "X-Auth-Scopes": "*",
        "X-Forwarded-Uri": "/elsewhere",
      };
      const response = await fetch(`${proxy.url}/grafana/d/home`, { headers: { "X-Auth-Token": tablet.token, ...spoofed } });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("upstream says hello");
      const got = received.slice(before);
      expect(got).toHaveLength(1);
      expect(got[0]!["x-auth-user"]).toBe("dashboard tablet");
      expect(got[0]!["x-auth-scopes"]).toBe("grafana");
      expect(got[0]!["x-auth-id"]).toBe(tablet.id);
      expect(got[0]!["x-auth-kind"]).toBe("key");
      expect(JSON.stringify(got)).not.toContain(tablet.token);
    });

    test.each([
      ["no credential", {}, 401],
      ["a wrong key", { "X-Auth-Token": "WRONG" }, 401],
      ["a key without the scope", { "X-Auth-Token": "DOORBELL" }, 403],
    ])("%s: refused, and the upstream is never asked", async (_name, headers: Record<string, string>, status) => {
      const before = received.length;
      const sent = Object.fromEntries(
        Object.entries(headers).map(([name, value]) => [name, value === "DOORBELL" ? doorbell.token : trackSecret(generateApiKey().token)]),
      );
      const response = await fetch(`${proxy.url}/grafana/d/home`, { headers: sent });
      expect(response.status).toBe(status);
      expect(received.length).toBe(before);
    });
  });
}

test("no secret reached any output or the upstream", () => {
  expect(JSON.stringify(received)).not.toContain(tablet.token);
  expectNoSecretsInOutput();
});
