/**
 * Every secret a test uses is registered here, and everything the servers under test print is
 * captured here, so each test file can end by proving that no secret reached any output.
 *
 * Test files run one after another in one process, and each ends with a scan; a scan covers the
 * output captured since the previous scan, against the secrets registered since then: exactly
 * the file's own. (Scanning everything against everything grows quadratically with the suite.)
 */
import { expect } from "bun:test";
import { generateToken } from "../../auth/secrets/tokens.ts";

let secrets: string[] = [];
let captured: string[] = [];

export function trackSecret(secret: string): string {
  secrets.push(secret);
  return secret;
}

/** A fresh strong secret, registered for the leak scan. */
export function newSecret(): string {
  return trackSecret(generateToken());
}

export function captureOutput(text: string): void {
  captured.push(text);
}

/** The forms a secret could take on its way to a log: plain, URL-encoded, subprotocol-encoded. */
function encodings(secret: string): string[] {
  return [secret, encodeURIComponent(secret), Buffer.from(secret, "latin1").toString("base64url")];
}

export function expectNoSecretsInOutput(): void {
  const output = captured.join("");
  const scanned = [...new Set(secrets)];
  captured = [];
  secrets = [];
  expect(output.length).toBeGreaterThan(0);
  const leaked = scanned.filter((secret) => encodings(secret).some((form) => output.includes(form)));
  // Report how many leaked, never which: the failure message itself must not print a secret.
  expect({ leaked: leaked.length, scannedSecrets: scanned.length }).toEqual({ leaked: 0, scannedSecrets: scanned.length });
}
