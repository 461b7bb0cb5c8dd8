/**
 * Every secret a test uses is registered here, and everything the servers under test print is
 * captured here, so each test file can end by proving that no secret reached any output.
 */
import { expect } from "bun:test";
import { generateToken } from "../../auth/tokens.ts";

const secrets = new Set<string>();
const captured: string[] = [];

export function trackSecret(secret: string): string {
  secrets.add(secret);
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
  expect(captured.length).toBeGreaterThan(0);
  const all = captured.join("");
  const leaked = [...secrets].filter((secret) => encodings(secret).some((form) => all.includes(form)));
  // Report how many leaked, never which: the failure message itself must not print a secret.
  expect({ leaked: leaked.length, scannedSecrets: secrets.size }).toEqual({ leaked: 0, scannedSecrets: secrets.size });
}
