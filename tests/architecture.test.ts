/**
 * The layering of ARCHITECTURE.md, checked against the code: every relative import under auth/
 * points to the same folder or a lower layer, the pure layers import no I/O, and every folder
 * under auth/ has its place in the order (a new one must be added here and in ARCHITECTURE.md).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "./support/harness.ts";

/** Bottom first. `app.ts` sits alone between the endpoints and the CLI. */
const LAYERS = [
  "core",
  "secrets",
  "config",
  "store",
  "authn",
  "guard",
  "ws",
  "http",
  "oauth",
  "session",
  "admin",
  "forward",
  "proxy",
  "app.ts",
  "library",
  "cli",
] as const;
/** Layers whose modules are pure: no file system, network or process access of their own. */
const PURE = new Set(["core", "secrets"]);

const AUTH = join(ROOT, "auth");

function listSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listSources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

/** `auth/http/gate.ts` → "http"; `auth/app.ts` → "app.ts". */
function layerOf(file: string): string {
  const [first, second] = relative(AUTH, file).split("/");
  return second === undefined ? first! : first!;
}

/** Every specifier of an import or export statement (static, dynamic and type-only alike). */
function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^"']*?from\s*["']([^"']+)["']/g)) found.push(match[1]!);
  for (const match of source.matchAll(/(?:^|\n)\s*import\s*["']([^"']+)["']/g)) found.push(match[1]!);
  for (const match of source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) found.push(match[1]!);
  return found;
}

const files = listSources(AUTH);
const rank = (layer: string) => LAYERS.indexOf(layer as (typeof LAYERS)[number]);

describe("layers (ARCHITECTURE.md)", () => {
  test("every file under auth/ is in a known layer", () => {
    const unknown = files.filter((file) => rank(layerOf(file)) === -1).map((file) => relative(ROOT, file));
    expect(unknown).toEqual([]);
  });

  test("no import points to a higher layer", () => {
    const upward: string[] = [];
    for (const file of files) {
      for (const specifier of importsOf(readFileSync(file, "utf8"))) {
        if (!specifier.startsWith(".")) continue;
        const target = resolve(dirname(file), specifier);
        const from = layerOf(file);
        // console/index.html (the page bundle) is imported by app.ts, outside auth/.
        const to = target.startsWith(`${AUTH}/`) ? layerOf(target) : undefined;
        if (to === undefined) continue;
        if (rank(to) > rank(from)) upward.push(`${relative(ROOT, file)} → ${relative(ROOT, target)} (${from} imports ${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("the pure layers import no I/O: no node: modules, no Bun runtime values", () => {
    const impure: string[] = [];
    for (const file of files.filter((candidate) => PURE.has(layerOf(candidate)))) {
      // Types cost nothing at run time: only value imports are I/O.
      const source = readFileSync(file, "utf8").replace(/(?:^|\n)\s*import\s+type\b[^;]*;/g, "\n");
      for (const specifier of importsOf(source)) {
        if (specifier.startsWith("node:") || specifier === "bun") impure.push(`${relative(ROOT, file)}: ${specifier}`);
      }
      if (/\bBun\.(?:file|write|spawn|serve|connect|listen|env|stdin|stdout)\b/.test(source))
        impure.push(`${relative(ROOT, file)}: Bun I/O`);
    }
    expect(impure).toEqual([]);
  });

  test("the rule itself catches an upward import (the reader is not blind)", () => {
    const sample =
      'import { startApp } from "../app.ts";\nimport type { X } from "../http/gate.ts";\nconst y = await import("../cli/commands.ts");';
    expect(importsOf(sample)).toEqual(["../app.ts", "../http/gate.ts", "../cli/commands.ts"]);
    expect(rank(layerOf(join(AUTH, "http/gate.ts")))).toBeGreaterThan(rank(layerOf(join(AUTH, "core/errors.ts"))));
  });
});
