/**
 * Forward auth behind the reverse proxies people run: real nginx (`auth_request`) and real Caddy
 * (`forward_auth`), each a subprocess with a generated config on free ports, in front of the
 * recording upstream of tests/support/upstream.ts (HTTP and a WebSocket echo; it keeps every
 * request's and handshake's headers, so a test can prove what never arrived). Where a proxy binary
 * is missing these tests say so and skip, except in CI, where that is a failure.
 *
 * The ban cases run on gates and proxies of their own: every client here is loopback, and a ban of
 * 127.0.0.1 on the shared gate would refuse every later test in the file.
 */
import { insertApiKey } from "../support/keys.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "../../auth/secrets/keys.ts";
import { curl, rawRequest, startTestApp, WsProbe, type TestApp } from "../support/harness.ts";
import {
  caddyfileFor,
  hasProxy,
  nginxConfigAround,
  requireProxyBinaries,
  startReverseProxy,
  type ProxyKind,
  type RunningProxy,
} from "../support/reverse-proxies.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";
import { startUpstream } from "../support/upstream.ts";

requireProxyBinaries();

const dir = mkdtempSync(join(tmpdir(), "tokengate-proxies-"));
const routesFile = join(dir, "routes.toml");
writeFileSync(
  routesFile,
  `[[route]]\nname = "grafana"\nmatch = { path_prefix = "/grafana/" }\nupstream = "http://127.0.0.1:9"\nscope = "grafana"\n`,
);
/** The gate's environment behind a proxy on loopback: the proxy is trusted, and loopback can be banned. */
const GATE_ENV = { ROUTES_FILE: routesFile, TRUSTED_PROXIES: "127.0.0.1", BAN_EXEMPT: "" };

let app: TestApp;
let tablet: { id: string; token: string };
let doorbell: { id: string; token: string };
const upstream = startUpstream();

async function addKey(gate: TestApp, name: string, scopes: string[]) {
  const key = await insertApiKey(gate.store, { name, scopes });
  return { id: key.id, token: key.token };
}

beforeAll(async () => {
  app = await startTestApp(GATE_ENV);
  tablet = await addKey(app, "dashboard tablet", ["grafana"]);
  doorbell = await addKey(app, "doorbell", ["camera:view"]);
  await app.app.keyring.refresh();
});
afterAll(async () => {
  await app[Symbol.asyncDispose]();
  upstream[Symbol.dispose]();
  rmSync(dir, { recursive: true, force: true });
});

/** The identity lines of the README's nginx configuration, shared by both protected locations. */
const NGINX_IDENTITY = `
      auth_request /_tokengate;
      auth_request_set $auth_user $upstream_http_x_auth_user;
      auth_request_set $auth_id $upstream_http_x_auth_id;
      auth_request_set $auth_scopes $upstream_http_x_auth_scopes;
      auth_request_set $auth_kind $upstream_http_x_auth_kind;
      auth_request_set $auth_status $upstream_status;
      auth_request_set $auth_retry_after $upstream_http_retry_after;
      error_page 500 = @tokengate_refused;
      proxy_set_header X-Auth-User $auth_user;
      proxy_set_header X-Auth-Id $auth_id;
      proxy_set_header X-Auth-Scopes $auth_scopes;
      proxy_set_header X-Auth-Kind $auth_kind;
      proxy_set_header X-Auth-Token "";
      proxy_set_header Authorization "";`;

/**
 * The README's nginx configuration, plus: a WebSocket location (HTTP/1.1 and the Upgrade and
 * Connection headers toward the upstream), and `@tokengate_refused`, which gives a client the
 * gate's 429 and Retry-After (nginx's `auth_request` turns any status but 2xx, 401 and 403 into a
 * 500 of its own).
 */
function nginxConfig(work: string, port: number, gatePort: number): string {
  return nginxConfigAround(
    work,
    `  map $http_upgrade $connection_upgrade { default upgrade; "" close; }
  server {
    listen 127.0.0.1:${port};
    location = /_tokengate {
      internal;
      proxy_pass http://127.0.0.1:${gatePort}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Uri "";
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
    location @tokengate_refused {
      add_header Retry-After $auth_retry_after always;
      if ($auth_status = 429) {
        return 429 "Too many failed attempts\\n";
      }
      return 500;
    }
    location /grafana/ {${NGINX_IDENTITY}
      proxy_pass http://127.0.0.1:${upstream.port};
    }
    location /grafana/live/ {${NGINX_IDENTITY}
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_pass http://127.0.0.1:${upstream.port};
    }
  }`,
  );
}

/** The README's Caddy configuration: `reverse_proxy` passes WebSocket upgrades by itself. */
function caddyConfig(port: number, gatePort: number): string {
  return caddyfileFor(
    port,
    `  route {
    forward_auth 127.0.0.1:${gatePort} {
      uri /auth/verify
      copy_headers X-Auth-User X-Auth-Id X-Auth-Scopes X-Auth-Kind
    }
    request_header -X-Auth-Token
    request_header -Authorization
    reverse_proxy 127.0.0.1:${upstream.port}
  }`,
  );
}

type Proxy = RunningProxy;

function startProxy(kind: ProxyKind, gate: TestApp): Promise<Proxy> {
  const gatePort = gate.app.listener.server.port!;
  return startReverseProxy(kind, dir, (work, port) => (kind === "nginx" ? nginxConfig(work, port, gatePort) : caddyConfig(port, gatePort)));
}

/** A WebSocket handshake as raw bytes, so a refusal's status can be read (a WebSocket client only sees 1006). */
function rawUpgrade(port: number, path: string, extra: Record<string, string> = {}) {
  const lines = Object.entries(extra).map(([name, value]) => `${name}: ${value}\r\n`);
  return rawRequest(
    port,
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${lines.join("")}\r\n`,
  );
}

for (const kind of ["nginx", "caddy"] as const) {
  describe.skipIf(!hasProxy(kind))(`behind real ${kind}`, () => {
    let proxy: Proxy;
    beforeAll(async () => {
      proxy = await startProxy(kind, app);
    });
    afterAll(() => proxy.stop());

    test("allowed: the upstream answers, gets the identity, and never the credential or a spoofed identity", async () => {
      const before = upstream.received.length;
      const spoofed = {
        "X-Auth-User": "admin",
        "X-Auth-Id": "bootstrap",
        "X-Auth-Kind": "bootstrap",
        "X-Auth-Scopes": "*",
        "X-Forwarded-Uri": "/elsewhere",
      };
      const response = await fetch(`${proxy.url}/grafana/d/home`, { headers: { "X-Auth-Token": tablet.token, ...spoofed } });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ method: "GET", target: "/grafana/d/home" });
      const got = upstream.received.slice(before);
      expect(got).toHaveLength(1);
      expect(got[0]!.headers["x-auth-user"]).toBe("dashboard tablet");
      expect(got[0]!.headers["x-auth-scopes"]).toBe("grafana");
      expect(got[0]!.headers["x-auth-id"]).toBe(tablet.id);
      expect(got[0]!.headers["x-auth-kind"]).toBe("key");
      expect(JSON.stringify(got)).not.toContain(tablet.token);
    });

    test.each([
      ["no credential", {}, 401],
      ["a wrong key", { "X-Auth-Token": "WRONG" }, 401],
      ["a key without the scope", { "X-Auth-Token": "DOORBELL" }, 403],
    ])("%s: refused, and the upstream is never asked", async (_name, headers: Record<string, string>, status) => {
      const before = upstream.received.length;
      const sent = Object.fromEntries(
        Object.entries(headers).map(([name, value]) => [name, value === "DOORBELL" ? doorbell.token : trackSecret(generateApiKey().token)]),
      );
      const response = await fetch(`${proxy.url}/grafana/d/home`, { headers: sent });
      expect(response.status).toBe(status);
      expect(upstream.received.length).toBe(before);
    });

    test.each([
      ["X-Auth-Token", (token: string) => ({ "X-Auth-Token": token })],
      ["Authorization: Bearer", (token: string) => ({ Authorization: `Bearer ${token}` })],
    ])(
      "a WebSocket upgrade with the key in %s: allowed, echoes through the proxy, the handshake carries the identity and never the key",
      async (_form, credential) => {
        const before = upstream.received.length;
        const probe = new WsProbe(`ws://127.0.0.1:${proxy.port}/grafana/live/socket?panel=7`, {
          headers: new Headers({ ...credential(tablet.token), "X-Auth-User": "admin", "X-Auth-Scopes": "*" }),
        });
        expect(await probe.opened).toBe(true);
        expect(await probe.nextMessage(0)).toBe("upstream hello ");
        probe.socket.send("ping through the proxy");
        expect(await probe.nextMessage(1)).toBe("ping through the proxy");
        probe.socket.close(1000, "done");
        expect((await probe.closed).code).toBe(1000);
        const handshakes = upstream.received.slice(before);
        expect(handshakes).toHaveLength(1);
        expect(handshakes[0]).toMatchObject({ websocket: true, target: "/grafana/live/socket?panel=7" });
        expect(handshakes[0]!.headers).toMatchObject({
          "x-auth-user": "dashboard tablet",
          "x-auth-id": tablet.id,
          "x-auth-scopes": "grafana",
          "x-auth-kind": "key",
        });
        expect(handshakes[0]!.headers["x-auth-token"] ?? "").toBe("");
        expect(handshakes[0]!.headers["authorization"] ?? "").toBe("");
        expect(JSON.stringify(handshakes)).not.toContain(tablet.token);
        expect(JSON.stringify(handshakes)).not.toContain(encodeURIComponent(tablet.token));
      },
    );

    test.each([
      ["no credential", 401, {}],
      ["a key without the scope", 403, { "X-Auth-Token": "DOORBELL" }],
    ])("a WebSocket upgrade with %s: refused with %d, never upgraded, the upstream never asked", async (_name, status, headers) => {
      const before = upstream.received.length;
      const sent = Object.fromEntries(Object.entries(headers).map(([name]) => [name, doorbell.token]));
      const response = await rawUpgrade(proxy.port, "/grafana/live/socket", sent);
      expect(response.status).toBe(status);
      expect(response.headers.get("upgrade")).toBeNull();
      if (status === 401) expect(response.headers.get("www-authenticate")).toContain("Bearer");
      expect(upstream.received.length).toBe(before);
      const probe = new WsProbe(`ws://127.0.0.1:${proxy.port}/grafana/live/socket`);
      expect(await probe.opened).toBe(false);
      expect(upstream.received.length).toBe(before);
    });
  });
}

for (const kind of ["nginx", "caddy"] as const) {
  describe.skipIf(!hasProxy(kind))(`bans behind real ${kind} (a gate and a proxy of their own)`, () => {
    let gate: TestApp;
    let proxy: Proxy;
    let key: { id: string; token: string };
    beforeAll(async () => {
      gate = await startTestApp(GATE_ENV);
      key = await addKey(gate, "kitchen tablet", ["grafana"]);
      await gate.app.keyring.refresh();
      proxy = await startProxy(kind, gate);
    });
    afterAll(async () => {
      await proxy.stop();
      await gate[Symbol.asyncDispose]();
    });

    test("ten wrong keys from one client ban it: 429 with Retry-After, then even its valid key gets 429; another client is not banned", async () => {
      const before = upstream.received.length;
      // Each guess claims another address: the proxy, not the client, tells the gate who is asking.
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) {
        const guess = trackSecret(generateApiKey().token);
        const response = await fetch(`${proxy.url}/grafana/d/home`, {
          headers: { "X-Auth-Token": guess, "X-Forwarded-For": `203.0.113.${i + 1}`, "X-Real-IP": `198.51.100.${i + 1}` },
        });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
      expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 401, 401, 401, 429]);

      const banned = await fetch(`${proxy.url}/grafana/d/home`, { headers: { "X-Auth-Token": key.token } });
      await banned.arrayBuffer();
      expect(banned.status).toBe(429);
      expect(Number(banned.headers.get("retry-after"))).toBeGreaterThan(0);
      const socket = await rawUpgrade(proxy.port, "/grafana/live/socket", { "X-Auth-Token": key.token });
      expect(socket.status).toBe(429);
      expect(upstream.received.length).toBe(before);

      // The gate counted and banned the client the proxy named, never the proxy or a claimed address.
      const audited = gate.audit.map((line) => JSON.parse(line) as Record<string, unknown>);
      const failures = audited.filter((line) => line.audit === "auth.failure");
      expect(failures.map((line) => [line.reason, line.address])).toEqual([
        ...Array<[string, string]>(9).fill(["invalid_token", "127.0.0.1"]),
        ["too_many_requests", "127.0.0.1"],
      ]);
      expect(audited.filter((line) => line.audit === "ban.started").map((line) => line.subject)).toEqual(["addr:127.0.0.1"]);

      // A second client behind the same proxy (another loopback address) still gets in.
      const other = await curl(["--interface", "127.0.0.2", "-H", `X-Auth-Token: ${key.token}`, `${proxy.url}/grafana/d/home`]);
      expect(other.status).toBe(200);
      expect(upstream.received.slice(before)).toHaveLength(1);
      expect(upstream.received.at(-1)!.headers["x-auth-user"]).toBe("kitchen tablet");
    });
  });
}

test("no secret reached any output or the upstream", () => {
  expect(JSON.stringify(upstream.received)).not.toContain(tablet.token);
  expectNoSecretsInOutput();
});
