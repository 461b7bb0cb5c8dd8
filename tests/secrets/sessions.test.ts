/**
 * The session cookie's format and parsing: pure functions that must never throw on what a browser
 * (or an attacker) sends, and must find every spelling of the gate's cookie when stripping it
 * from what a service receives.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  clearedSessionCookie,
  generateSessionToken,
  isSessionToken,
  parseSessionToken,
  readSessionCookies,
  sessionCookie,
  setsSessionCookie,
  withoutSessionCookies,
} from "../../auth/secrets/sessions.ts";
import { trackSecret } from "../support/secrets.ts";

describe("tokens", () => {
  test("tgs_<16 hex id>_<43 base64url>: parsed into id and secret; anything else is undefined", () => {
    const fresh = generateSessionToken();
    trackSecret(fresh.token);
    expect(parseSessionToken(fresh.token)).toEqual({ id: fresh.id, secret: fresh.secret });
    for (const bad of [
      "",
      "tgs_",
      fresh.token.slice(0, -1),
      `${fresh.token}A`,
      fresh.token.replace("tgs_", "tg_"),
      fresh.token.toUpperCase(),
    ]) {
      expect(parseSessionToken(bad)).toBeUndefined();
      expect(isSessionToken(bad)).toBe(false);
    }
  });
});

describe("cookies", () => {
  test("Set-Cookie over HTTP and over TLS", () => {
    expect(sessionCookie("tgs_x", false, 60.9)).toBe("tgs=tgs_x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax");
    expect(sessionCookie("tgs_x", true, 60)).toBe("__Host-tgs=tgs_x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
    expect(clearedSessionCookie(true)).toBe("__Host-tgs=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure");
  });

  test.each([
    ["a=1; tgs=v; b=2", false, ["v"]],
    ["tgs=v", true, []],
    ["__Host-tgs=v; tgs=w", true, ["v"]],
    [" tgs = v ", false, ["v"]],
    ["a=1, tgs=v", false, []],
    ["tgs=v,w", false, []],
    ["x=1,__Host-tgs=v", true, []],
    ["xtgs=v; tgsx=w", false, []],
    ["tgs", false, []],
    ["", false, []],
  ])("read %j (secure: %p) → %j", (header, secure, expected) => {
    expect(readSessionCookies(header, secure)).toEqual(expected);
  });

  test.each([
    ["a=1; tgs=v; b=2", "a=1; b=2"],
    ["tgs=v", undefined],
    ["__Host-tgs=v;tgs=w;c=3", "c=3"],
    [" tgs =v; a=1", "a=1"],
    ["a=1, tgs=v", "a=1, tgs=v"],
    ["x=1,tgs=tgs_00000000000000aa_AAAA; b=2", "b=2"],
    ["mytgs=1", "mytgs=1"],
  ])("strip %j → %j", (header, expected) => {
    expect(withoutSessionCookies(header)).toBe(expected);
  });

  test.each([
    ["tgs=planted; Path=/", true],
    ["__Host-tgs=x; Secure", true],
    [" tgs =x", true],
    ["app=1; Path=/", false],
    ["tgsx=1", false],
    ["x=1,tgs=planted; Path=/", true],
    ["x=1,__Host-tgs=y; Secure", true],
    ["app=tgs_00000000000000aa_AAAA", true],
  ])("a service's Set-Cookie %j sets ours: %p", (value, expected) => {
    expect(setsSessionCookie(value)).toBe(expected);
  });

  test("property: no header makes the parsers throw, and stripping leaves no cookie that reading would find", () => {
    const piece = fc.oneof(fc.constantFrom("tgs", "__Host-tgs", " tgs ", "a", "TGS", "tgs_x"), fc.string({ maxLength: 12 }));
    const pair = fc
      .tuple(piece, fc.constantFrom("=", "", "=="), fc.string({ maxLength: 12 }))
      .map(([name, eq, value]) => `${name}${eq}${value}`);
    const header = fc.array(pair, { maxLength: 6 }).chain((pairs) => fc.constantFrom(";", "; ", ",", ", ").map((glue) => pairs.join(glue)));
    fc.assert(
      fc.property(header, fc.boolean(), (text, secure) => {
        const kept = withoutSessionCookies(text);
        expect(readSessionCookies(kept ?? "", secure)).toEqual([]);
        expect(readSessionCookies(kept ?? "", !secure)).toEqual([]);
      }),
      { numRuns: 2_000 },
    );
  });
});
