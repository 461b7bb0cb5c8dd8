import { describe, expect, test } from "bun:test";
import {
  formatApiKey,
  generateApiKey,
  judgeDuration,
  KEY_LIFETIME,
  keyState,
  parseApiKey,
  parseDuration,
  parseScopes,
  ROTATION_OVERLAP,
  UNSHOWABLE_IN_NAME,
  type KeyState,
} from "../../auth/secrets/keys.ts";
import { findUnknownScopes, listKnownScopes } from "../../auth/http/scopes.ts";

describe("api key format", () => {
  test("generated keys parse back into their id and secret", () => {
    for (let i = 0; i < 200; i++) {
      const key = generateApiKey();
      expect(key.token).toMatch(/^tg_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
      expect(parseApiKey(key.token)).toEqual({ id: key.id, secret: key.secret });
    }
  });

  test.each([
    ["no prefix", "3f9a0c12be45_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ["short id", "tg_3f9a0c12be4_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ["upper-case id", "tg_3F9A0C12BE45_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ["short secret", "tg_3f9a0c12be45_AAAA"],
    ["long secret", `tg_3f9a0c12be45_${"A".repeat(44)}`],
    ["bad secret alphabet", `tg_3f9a0c12be45_${"A".repeat(42)}=`],
    ["bootstrap-style token", "Zq8rT2vLx9mNpW4cYb7dHf3kJs6gAe5uQm2x"],
  ])("%s is not a key", (_name, token) => {
    expect(parseApiKey(token)).toBeUndefined();
  });

  test("secrets with underscores still split at the fixed-length id", () => {
    const secret = `_${"b".repeat(41)}_`;
    expect(parseApiKey(formatApiKey("00aa11bb22cc", secret))).toEqual({ id: "00aa11bb22cc", secret });
  });
});

describe("keyState", () => {
  test.each<[string, number | null, number | null, number, KeyState]>([
    ["no expiry", null, null, 1_000, "active"],
    ["before expiry", 2_000, null, 1_999, "active"],
    ["at expiry", 2_000, null, 2_000, "expired"],
    ["revoked", null, 500, 1_000, "revoked"],
    ["revoked and expired", 800, 500, 1_000, "revoked"],
    ["revocation scheduled later", null, 5_000, 1_000, "active"],
  ])("%s", (_name, expiresAt, revokedAt, now, state) => {
    expect(keyState({ expiresAt, revokedAt }, now)).toBe(state);
  });
});

describe("parseDuration", () => {
  test.each<[string, number | undefined]>([
    ["90s", 90_000],
    ["15m", 900_000],
    ["1h", 3_600_000],
    ["30d", 2_592_000_000],
    ["2w", 1_209_600_000],
    ["0s", 0],
    // Well-formed but absurd: parsed, then refused by judgeDuration with the range in words.
    ["100000000d", 8_640_000_000_000_000],
    [`${"9".repeat(400)}d`, undefined],
    ["1.5h", undefined],
    ["10", undefined],
    ["-1d", undefined],
    ["1y", undefined],
    ["", undefined],
  ])("%s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe("judgeDuration", () => {
  const DAY = 86_400_000;
  test.each([
    ["a key lifetime of 1s", 1_000, KEY_LIFETIME, undefined],
    ["a key lifetime of 100 years", 36_500 * DAY, KEY_LIFETIME, undefined],
    ["a key lifetime of 0s", 0, KEY_LIFETIME, "must be from 1s to 36500d (100 years)"],
    ["a key lifetime past 100 years", 36_501 * DAY, KEY_LIFETIME, "must be from 1s to 36500d (100 years)"],
    ["a key lifetime past the end of Date", 100_000_000 * DAY, KEY_LIFETIME, "must be from 1s to 36500d (100 years)"],
    ["a negative key lifetime", -DAY, KEY_LIFETIME, "must be from 1s to 36500d (100 years)"],
    ["a key lifetime that is not a number", Number.NaN, KEY_LIFETIME, "must be from 1s to 36500d (100 years)"],
    ["an overlap of 0s", 0, ROTATION_OVERLAP, undefined],
    ["an overlap of 365d", 365 * DAY, ROTATION_OVERLAP, undefined],
    ["an overlap of 366d", 366 * DAY, ROTATION_OVERLAP, "must be from 0s (stop at once) to 365d"],
  ])("%s", (_case, ms, range, problem) => {
    expect(judgeDuration(ms, range)).toBe(problem);
  });
});

describe("known scopes", () => {
  const roles = new Map<string, readonly string[]>([
    ["admin", ["*"]],
    ["viewer", ["data:read", "ws:connect"]],
    ["kiosk", ["display:show"]],
  ]);

  test("the routes' scopes, *, and every scope a role grants; public and any-credential routes add none", () => {
    expect(listKnownScopes(roles)).toEqual(["*", "data:read", "display:show", "ws:connect"]);
    expect(listKnownScopes(new Map())).toEqual(["*", "data:read", "ws:connect"]);
  });

  test("a configured route table extends the set", () => {
    expect(listKnownScopes(new Map(), [{ scope: "camera:view" }, { scope: null }, { scope: "" }])).toEqual([
      "*",
      "camera:view",
      "data:read",
      "ws:connect",
    ]);
  });

  test.each([
    [["data:read", "ws:connect"], []],
    [["data:raed"], ["data:raed"]],
    [["*", "ws:conect", "data:read"], ["ws:conect"]],
  ])("findUnknownScopes(%p)", (scopes, unknown) => {
    expect(findUnknownScopes(scopes, listKnownScopes(roles))).toEqual(unknown);
  });
});

describe("parseScopes", () => {
  test.each<[string, string[] | undefined]>([
    ["data:read", ["data:read"]],
    ["data:read,ws:connect", ["data:read", "ws:connect"]],
    ["data:read ws:connect data:read", ["data:read", "ws:connect"]],
    ["*", ["*"]],
    ["", undefined],
    ["Data:Read", undefined],
    ["data:read;drop", undefined],
    ["data:", undefined],
  ])("%s", (text, scopes) => {
    expect(parseScopes(text)).toEqual(scopes);
  });
});

describe("UNSHOWABLE_IN_NAME", () => {
  test.each([
    ["a tab", "kitchen\tlamp", true],
    ["a C1 control", "kitchen\u0085lamp", true],
    ["a right-to-left override", "lamp\u202Egnp.exe", true],
    ["a first-strong isolate", "lamp\u2068x\u2069", true],
    ["plain words", "kitchen lamp", false],
    ["accents and emoji", "Küche 💡", false],
    ["right-to-left letters", "מנורה", false],
  ])("%s: refused %p", (_what, name, refused) => {
    expect(UNSHOWABLE_IN_NAME.test(name)).toBe(refused);
  });
});
