import { describe, expect, test } from "bun:test";
import { createSecretMatcher, digestToken, digestsEqual, generateToken } from "../../auth/secrets/tokens.ts";

describe("generateToken", () => {
  test("gives 256 bits as 43 base64url characters, different every time", () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => generateToken()));
    expect(tokens.size).toBe(1000);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe("createSecretMatcher", () => {
  const secret = generateToken();
  const matches = createSecretMatcher(digestToken(secret));

  test.each([
    ["the secret", secret, true],
    ["a prefix", secret.slice(0, -1), false],
    ["an extension", `${secret}x`, false],
    ["one character changed", `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`, false],
    ["empty", "", false],
    ["a very long input", "x".repeat(100_000), false],
  ])("%s", (_name, candidate, expected) => {
    expect(matches(candidate)).toBe(expected);
  });

  test("digests are fixed length whatever the input length", () => {
    expect(digestToken("").byteLength).toBe(32);
    expect(digestToken("x".repeat(10_000)).byteLength).toBe(32);
  });

  test("digestsEqual refuses digests of the wrong length instead of throwing", () => {
    expect(digestsEqual(new Uint8Array(31), new Uint8Array(31))).toBe(false);
    expect(digestsEqual(digestToken("a"), digestToken("a"))).toBe(true);
  });
});
