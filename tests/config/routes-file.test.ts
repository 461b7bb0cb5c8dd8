/**
 * The routes file: valid files become routes; every bad entry is a problem that names the file, the
 * entry and the fix; a route may not take over tokengate's own paths.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findServiceRoute, loadRoutesFile, parseRoutesFile, type ServiceRoute } from "../../auth/config/routes-file.ts";
import { runCliProcess } from "../support/cli.ts";
import { makeTempDir, ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const GRAFANA = `
[[route]]
name = "grafana"
match = { path_prefix = "/grafana/" }
upstream = "http://127.0.0.1:3000"
scope = "grafana"
strip_prefix = true
websocket = true
identity_headers = true
`;

describe("parseRoutesFile", () => {
  test("the README's shape, with defaults for what it leaves out", () => {
    const parsed = parseRoutesFile(
      `${GRAFANA}\n[[route]]\nname = "camera"\nmatch = { host = "cam.local" }\nupstream = "http://192.0.2.30"\nscope = "camera:view"\n`,
      "routes.toml",
    );
    expect(parsed).toEqual({
      ok: true,
      routes: [
        {
          name: "grafana",
          match: { path_prefix: "/grafana/" },
          upstream: "http://127.0.0.1:3000",
          scope: "grafana",
          strip_prefix: true,
          websocket: true,
          identity_headers: true,
          timeout_seconds: 30,
          max_body_bytes: 1024 ** 4,
        },
        {
          name: "camera",
          match: { host: "cam.local" },
          upstream: "http://192.0.2.30",
          scope: "camera:view",
          strip_prefix: false,
          websocket: false,
          identity_headers: true,
          timeout_seconds: 30,
          max_body_bytes: 1024 ** 4,
        },
      ],
    });
  });

  test("an empty file is no routes", () => {
    expect(parseRoutesFile("", "routes.toml")).toEqual({ ok: true, routes: [] });
  });

  test.each([
    ["broken TOML", "[[route]\nname=", "routes.toml is not valid TOML"],
    ["an unknown key", GRAFANA.replace('scope = "grafana"', 'scope = "grafana"\nscopes = "x"'), 'routes.toml: route 1 ("grafana")'],
    [
      "a bad name",
      GRAFANA.replace('name = "grafana"', 'name = "Grafana UI"'),
      'route 1 ("Grafana UI") name must be 1 to 40 lower-case letters',
    ],
    ["no match", GRAFANA.replace('match = { path_prefix = "/grafana/" }', "match = {}"), "match needs path_prefix, host or both"],
    [
      "an upstream with a password",
      GRAFANA.replace("http://127.0.0.1:3000", "http://admin:pw@127.0.0.1:3000"),
      "upstream must be an http:// or https:// URL without credentials",
    ],
    ["a ws:// upstream", GRAFANA.replace("http://127.0.0.1:3000", "ws://127.0.0.1:3000"), "upstream must be an http:// or https:// URL"],
    ["a scope of *", GRAFANA.replace('scope = "grafana"', 'scope = "*"'), "scope must be one scope"],
    ["two scopes", GRAFANA.replace('scope = "grafana"', 'scope = "a b"'), "scope must be one scope"],
    ["a timeout of 0", GRAFANA.replace("identity_headers = true", "identity_headers = true\ntimeout_seconds = 0"), "timeout_seconds"],
    ["a prefix over /auth/", GRAFANA.replace('"/grafana/"', '"/auth/"'), "would take over tokengate's own /auth/"],
    ["a prefix of /", GRAFANA.replace('"/grafana/"', '"/"'), "would take over tokengate's own"],
    ["a prefix under /ws", GRAFANA.replace('"/grafana/"', '"/ws/x"'), "would take over tokengate's own /ws"],
    [
      "two routes with one name",
      `${GRAFANA}${GRAFANA.replace('"/grafana/"', '"/other/"')}`,
      'route 2 ("grafana") repeats the name or the match of route "grafana"',
    ],
  ])("%s is a problem naming the file and the entry", (_name, text, message) => {
    const parsed = parseRoutesFile(text, "routes.toml");
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems.every((problem) => problem.variable === "ROUTES_FILE")).toBe(true);
    expect(parsed.problems.map((problem) => problem.message).join("\n")).toContain(message);
  });

  test("a file that cannot be read names it", () => {
    const loaded = loadRoutesFile("/nonexistent/routes.toml");
    expect(loaded.ok ? "" : loaded.problems[0]!.message).toContain("names /nonexistent/routes.toml, which");
  });
});

describe("findServiceRoute", () => {
  const routes = (
    parseRoutesFile(
      `${GRAFANA}\n[[route]]\nname = "api"\nmatch = { path_prefix = "/grafana/api/" }\nupstream = "http://127.0.0.1:3001"\nscope = "grafana:api"\n[[route]]\nname = "cam"\nmatch = { host = "cam.local" }\nupstream = "http://127.0.0.1:3002"\nscope = "camera"\n`,
      "r.toml",
    ) as { ok: true; routes: readonly ServiceRoute[] }
  ).routes;
  test.each<[string | null, string, string | undefined]>([
    ["gate.local", "/grafana/d/1", "grafana"],
    ["gate.local", "/grafana/api/health", "api"],
    ["gate.local", "/grafanax", undefined],
    ["cam.local:8000", "/live", "cam"],
    ["CAM.local", "/", "cam"],
    ["other.local", "/live", undefined],
  ])("Host %p, path %s → %p", (host, path, name) => {
    expect(findServiceRoute(routes, host, path)?.name).toBe(name as never);
  });
});

describe("the routes file at the composition roots", () => {
  test("the CLI knows the routes' scopes; the server refuses a bad file with exit 78 naming the entry, and writes nothing", async () => {
    using dir = makeTempDir();
    const good = join(dir.path, "routes.toml");
    writeFileSync(
      good,
      `[[route]]\nname = "grafana"\nmatch = { path_prefix = "/grafana/" }\nupstream = "http://127.0.0.1:3000"\nscope = "grafana"\n`,
    );
    const create = (env: Record<string, string>) =>
      runCliProcess(["keys", "create", "--name", "tablet", "--scopes", "grafana", "--create-store"], {
        env: { DATA_DIR: join(dir.path, "data"), ...env },
      });
    expect((await create({})).code).toBe(2);
    const created = await create({ ROUTES_FILE: good });
    expect(created.code).toBe(0);
    trackSecret(created.stdout.trim().split("\n").at(-1)!);

    const bad = join(dir.path, "bad.toml");
    writeFileSync(bad, `[[route]]\nname = "camera"\nmatch = { host = "cam.local" }\nupstream = "ftp://cam.local"\nscope = "camera"\n`);
    const server = new ServerProcess({ ROUTES_FILE: bad, PORT: "0", HOST: "127.0.0.1", DATA_DIR: join(dir.path, "fresh") }, dir.path);
    expect(await server.exited()).toBe(78);
    expect(server.stderr).toContain(`ROUTES_FILE ${bad}: route 1 ("camera") upstream must be an http:// or https:// URL`);
    expect(existsSync(join(dir.path, "fresh"))).toBe(false);
  });
});

test("no secret reached any output", () => {
  expectNoSecretsInOutput();
});
