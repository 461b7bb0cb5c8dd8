/**
 * The package's public surface, pinned: the `exports` map, every name each entry exports and its
 * kind (class, function, type). An export added or removed by accident fails here; one added on
 * purpose is added to these lists in the same change.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as client from "../../client/tokengate.ts";
import * as library from "../../index.ts";
import { ROOT } from "../support/harness.ts";

/** `class` for a constructor written with `class`, `function` for the rest, `value` otherwise. */
function kindOf(value: unknown): string {
  if (typeof value !== "function") return "value";
  return /^class\b/.test(Function.prototype.toString.call(value)) ? "class" : "function";
}

const runtimeSurface = (module: Record<string, unknown>) =>
  Object.fromEntries(
    Object.keys(module)
      .sort()
      .map((name) => [name, kindOf(module[name])]),
  );

/** Names exported as types only (`type X` in an export list): what the source declares, since they vanish at runtime. */
function typeExports(file: string): string[] {
  const source = readFileSync(join(ROOT, file), "utf8");
  return [...source.matchAll(/\btype\s+([A-Z][A-Za-z]+)\s*[,}]/g)].map((match) => match[1]!).sort();
}

test("package.json exports exactly the library, the typed client and itself; the bin is the CLI and server", () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as Record<string, unknown>;
  expect(manifest.exports).toEqual({ ".": "./index.ts", "./client": "./client/tokengate.ts", "./package.json": "./package.json" });
  expect(manifest.bin).toEqual({ tokengate: "./tokengate.ts" });
  expect(manifest.name).toBe("tokengate");
});

test('"tokengate": openGate, the Gate class, GateConfigError, and its types', () => {
  expect(runtimeSurface(library)).toEqual({ Gate: "class", GateConfigError: "class", openGate: "function" });
  expect(typeof library.openGate.fromEnv).toBe("function");
  expect(typeExports("index.ts")).toEqual([
    "GateOptions",
    "GateServeOptions",
    "GateSocketData",
    "GateSocketOptions",
    "GateWebSocket",
    "Principal",
    "ProtectedHandler",
  ]);
});

test('"tokengate/client": the typed browser client', () => {
  expect(runtimeSurface(client)).toEqual({
    TokengateClient: "class",
    backoffDelay: "function",
    bearerProtocol: "function",
    checkToken: "function",
    describeClose: "function",
    explainRefusal: "function",
    httpOrigin: "function",
  });
});

test("every export of the library entry has TSDoc where it is declared", () => {
  const source = readFileSync(join(ROOT, "auth/library/gate.ts"), "utf8");
  for (const name of [
    "Gate",
    "openGate",
    "GateOptions",
    "GateServeOptions",
    "GateSocketData",
    "GateSocketOptions",
    "GateWebSocket",
    "ProtectedHandler",
  ]) {
    const declaration = new RegExp(`/\\*\\*(?:(?!\\*/)[\\s\\S])*\\*/\\s*export (?:async )?(?:class|function|interface|type) ${name}\\b`);
    expect({ name, documented: declaration.test(source) }).toEqual({ name, documented: true });
  }
  const errors = readFileSync(join(ROOT, "auth/library/open.ts"), "utf8");
  expect(errors).toMatch(/\/\*\*[^]*?\*\/\s*export class GateConfigError/);
});
