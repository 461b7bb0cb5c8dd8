/**
 * Live reload of the routes file: edits in place and by rename (as editors save) replace the
 * table; a bad edit keeps the old one and says why; SIGHUP reloads a running server; traffic
 * follows the new table at once.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RouteTable, loadRoutesFile } from "../../auth/config/routes-file.ts";
import { watchRoutesFile } from "../../auth/config/routes-reload.ts";
import { createLogger } from "../../auth/core/log.ts";
import { ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret } from "../support/secrets.ts";
import { startUpstream } from "../support/upstream.ts";

const dir = mkdtempSync(join(tmpdir(), "tokengate-reload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const route = (name: string, prefix: string, upstream = "http://127.0.0.1:3000") =>
  `[[route]]\nname = "${name}"\nmatch = { path_prefix = "${prefix}" }\nupstream = "${upstream}"\nscope = "${name}"\n`;

async function waitUntil(check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check() && performance.now() < deadline) await Bun.sleep(10);
  return check();
}

function watched(file: string) {
  const lines: string[] = [];
  const logger = createLogger({ now: Date.now, level: "info", format: "json", sink: { write: (line) => void lines.push(line) } });
  const loaded = loadRoutesFile(file);
  if (!loaded.ok) throw new Error("fixture invalid");
  const table = new RouteTable(loaded.routes);
  return { table, lines, watch: watchRoutesFile(file, table, logger) };
}

describe("watching the routes file", () => {
  test("an edit in place and a save by rename both replace the table", async () => {
    const file = join(dir, "a.toml");
    writeFileSync(file, route("grafana", "/grafana/"));
    const { table, lines, watch } = watched(file);
    try {
      writeFileSync(file, route("grafana", "/grafana/") + route("camera", "/camera/"));
      expect(await waitUntil(() => table.routes.length === 2)).toBe(true);
      writeFileSync(`${file}.tmp`, route("node-red", "/red/"));
      renameSync(`${file}.tmp`, file);
      expect(await waitUntil(() => table.routes[0]?.name === "node-red")).toBe(true);
      expect(lines.some((line) => line.includes('"routes file reloaded"'))).toBe(true);
    } finally {
      watch.close();
    }
  });

  test("a bad edit keeps the previous table and logs the file, the entry and the fix", async () => {
    const file = join(dir, "b.toml");
    writeFileSync(file, route("grafana", "/grafana/"));
    const { table, lines, watch } = watched(file);
    try {
      writeFileSync(file, route("grafana", "/grafana/").replace('scope = "grafana"', 'scope = "two words"'));
      expect(await waitUntil(() => lines.some((line) => line.includes("not reloaded")))).toBe(true);
      expect(table.routes.map((entry) => entry.scope)).toEqual(["grafana"]);
      const line = lines.find((text) => text.includes("not reloaded"))!;
      expect(line).toContain(file);
      expect(line).toContain('route 1 (\\"grafana\\") scope');
    } finally {
      watch.close();
    }
  });

  test("a symlinked file is followed: a ConfigMap's ..data swap, and edits where the link points", async () => {
    // The layout of a Kubernetes ConfigMap volume: routes.toml → ..data/routes.toml, ..data → a dated folder.
    const volume = join(dir, "configmap");
    mkdirSync(join(volume, "..v1"), { recursive: true });
    mkdirSync(join(volume, "..v2"), { recursive: true });
    writeFileSync(join(volume, "..v1", "routes.toml"), route("one", "/one/"));
    writeFileSync(join(volume, "..v2", "routes.toml"), route("two", "/two/"));
    symlinkSync("..v1", join(volume, "..data"));
    symlinkSync("..data/routes.toml", join(volume, "routes.toml"));
    const { table, watch } = watched(join(volume, "routes.toml"));
    try {
      expect(table.routes[0]?.name).toBe("one");
      symlinkSync("..v2", join(volume, "..data_tmp"));
      renameSync(join(volume, "..data_tmp"), join(volume, "..data"));
      expect(await waitUntil(() => table.routes[0]?.name === "two")).toBe(true);
    } finally {
      watch.close();
    }
    const elsewhere = join(dir, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "real.toml"), route("three", "/three/"));
    symlinkSync(join(elsewhere, "real.toml"), join(dir, "linked.toml"));
    const linked = watched(join(dir, "linked.toml"));
    try {
      writeFileSync(join(elsewhere, "real.toml"), route("four", "/four/"));
      expect(await waitUntil(() => linked.table.routes[0]?.name === "four")).toBe(true);
    } finally {
      linked.watch.close();
    }
  });

  test("reload() of an unchanged file changes nothing", () => {
    const file = join(dir, "c.toml");
    writeFileSync(file, route("grafana", "/grafana/"));
    const { table, watch } = watched(file);
    const before = table.routes;
    expect(watch.reload("SIGHUP")).toBe(false);
    expect(table.routes).toBe(before);
    watch.close();
  });
});

describe("a running server", () => {
  test("follows edits to its routes file, keeps serving through a bad one, and reloads on SIGHUP", async () => {
    using upstream = startUpstream();
    const file = join(dir, "server.toml");
    writeFileSync(file, route("first", "/first/", upstream.url));
    const token = newSecret();
    const server = new ServerProcess(
      { PORT: "0", HOST: "127.0.0.1", AUTH_TOKEN: token, ROUTES_FILE: file, DATA_DIR: join(dir, "data") },
      dir,
    );
    try {
      const base = `http://127.0.0.1:${await server.port()}`;
      const ask = async (path: string) => (await fetch(`${base}${path}`, { headers: { "x-auth-token": token } })).status;
      expect(await ask("/first/x")).toBe(200);
      expect(await ask("/second/x")).toBe(404);

      writeFileSync(file, route("first", "/first/", upstream.url) + route("second", "/second/", upstream.url));
      expect(await waitUntil(() => server.stdout.includes("routes file reloaded"))).toBe(true);
      expect(await ask("/second/x")).toBe(200);

      writeFileSync(file, "[[route]]\nname = 'broken'\n");
      expect(await waitUntil(() => server.stdout.includes("not reloaded"))).toBe(true);
      expect(await ask("/second/x")).toBe(200);

      server.proc.kill("SIGHUP");
      expect(await waitUntil(() => server.logLines().some((line) => line.reason === "SIGHUP"))).toBe(true);
      expect(server.proc.exitCode).toBeNull();
      expect(await ask("/first/x")).toBe(200);
    } finally {
      await server.stop();
    }
    expectNoSecretsInOutput();
  }, 20_000);
});
