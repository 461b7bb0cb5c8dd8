/**
 * Debian's Chromium for the browser tests, through playwright-core (no browser download): where it
 * is, whether it is here, and how it is started on these machines. In CI a missing Chromium is a
 * failed test, never a silent skip.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const chromiumAvailable = existsSync(CHROMIUM);

/** Registers the CI failure (or the local skip warning) for a file whose tests need Chromium. */
export function requireChromium(what: string): void {
  if (!chromiumAvailable && process.env.CI === "true") {
    test(`Chromium is installed (CI must run the ${what})`, () => {
      expect(`${CHROMIUM} exists`).toBe(`${CHROMIUM} is missing: .ci/run should have installed Debian's chromium`);
    });
  }
  if (!chromiumAvailable) console.warn(`${what} skipped: ${CHROMIUM} not found (apt-get install chromium)`);
}

/**
 * Root in a sandbox, no GPU, and a closed network: without these flags Chromium retries outbound
 * calls. `extra` adds a test's own (a host mapping, a pinned certificate).
 */
export function launchChromium(extra: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extra,
    ],
  });
}
