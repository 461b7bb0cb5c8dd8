/**
 * Prometheus's own checker for a scrape (`promtool check metrics`, from Debian's `prometheus`
 * package), and a reader of the text format for assertions. In CI a missing promtool is a failed
 * test, never a silent skip; on a developer's machine the check is skipped with a warning.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";

export const PROMTOOL = process.env.PROMTOOL_PATH ?? "/usr/bin/promtool";
export const promtoolAvailable = existsSync(PROMTOOL);

/** Registers the CI failure (or the local skip warning) for a file whose tests need promtool. */
export function requirePromtool(what: string): void {
  if (!promtoolAvailable && process.env.CI === "true") {
    test(`promtool is installed (CI must run the ${what})`, () => {
      expect(`${PROMTOOL} exists`).toBe(`${PROMTOOL} is missing: .ci/run should have installed Debian's prometheus`);
    });
  }
  if (!promtoolAvailable) console.warn(`${what} skipped: ${PROMTOOL} not found (apt-get install prometheus)`);
}

/** `promtool check metrics` on a scrape: its exit code and what it said (lint problems, one a line). */
export async function checkMetrics(scrape: string): Promise<{ exitCode: number; output: string }> {
  const proc = Bun.spawn([PROMTOOL, "check", "metrics"], { stdin: new Blob([scrape]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, output: `${stdout}${stderr}`.trim() };
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of a text-format scrape (comments skipped); throws on a line it cannot read. */
export function parseSamples(scrape: string): Sample[] {
  return scrape
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const match = SAMPLE.exec(line);
      if (match === null) throw new Error(`not a sample line: ${line.slice(0, 80)}`);
      const labels: Record<string, string> = {};
      for (const [, name, value] of (match[2] ?? "").matchAll(LABEL))
        labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      return { name: match[1]!, labels, value: Number(match[3] === "+Inf" ? Infinity : match[3]) };
    });
}

/** The one sample with this name and these labels (others may be present), or undefined. */
export function findSample(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): Sample | undefined {
  return samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
}

/** The sum over every sample of this name whose labels include these. */
export function sumSamples(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((total, sample) => total + sample.value, 0);
}
