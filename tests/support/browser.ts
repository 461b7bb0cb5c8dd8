/**
 * Debian's Chromium for the browser tests, through playwright-core (no browser download): where it
 * is, whether it is here, and how it is started on these machines. In CI a missing Chromium is a
 * failed test, never a silent skip.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { AxeBuilder } from "@axe-core/playwright";
import jsQR from "jsqr";
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";

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

/** The phone every page is looked at on (a 390×844 touch screen), and a desktop window. */
export const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
export const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 900 } };

/**
 * One Chromium for a test file: required as `requireChromium` says, launched before the file's
 * tests (with `artifacts`, the screenshots' folder, made first) and closed after them. Call the
 * returned function inside a test for the browser.
 */
export function useChromium(what: string, artifacts?: string): () => Browser {
  requireChromium(what);
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!chromiumAvailable) return;
    if (artifacts !== undefined) mkdirSync(artifacts, { recursive: true });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (browser === undefined) throw new Error(`${what}: Chromium was not launched`);
    return browser;
  };
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

/**
 * A QR code as Chromium drew it (the SVG under `selector`), rasterised in the page and decoded by
 * jsQR in the test: an independent decoder reading the pixels, not the encoder's own matrix.
 */
export async function decodeQr(page: Page, selector: string): Promise<string | undefined> {
  const size = 400;
  // A string, as the page's own code: the tests' tsconfig has no DOM types.
  const pixels = await page.evaluate<number[]>(`(async () => {
    const svg = document.querySelector(${JSON.stringify(selector)});
    const image = new Image(${size}, ${size});
    image.src = "data:image/svg+xml;base64," + btoa(new XMLSerializer().serializeToString(svg));
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = ${size};
    canvas.height = ${size};
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, ${size}, ${size});
    return Array.from(context.getImageData(0, 0, ${size}, ${size}).data);
  })()`);
  return jsQR(Uint8ClampedArray.from(pixels), size, size)?.data;
}

/** Controls a finger must hit: each at least 44 × 44 CSS pixels (a checkbox counts by its label). */
export async function smallTargets(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {
    const controls = document.querySelectorAll("button, a, select, summary, input:not([type=checkbox]):not([type=hidden]), label.choice");
    const small = [];
    for (const control of controls) {
      const box = control.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      if (box.height < 44 || box.width < 44) small.push(control.tagName + " " + control.textContent.trim() + " " + box.width + "x" + box.height);
    }
    return small;
  })()`);
}

/** axe-core's serious and critical findings (WCAG 2.0, 2.1 and 2.2, A and AA) on the page as it stands. */
export async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21aa", "wcag22aa"]).analyze();
  return results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`);
}
