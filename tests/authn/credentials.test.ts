import { isTokenShaped } from "../../auth/secrets/tokens.ts";
import { describe, expect, test } from "bun:test";
import {
  encodeSubprotocolToken,
  parseAuthorization,
  parseBasicCredentials,
  parseBearerToken,
  parseSubprotocols,
  readCredential,
  type CredentialInputs,
} from "../../auth/authn/credentials.ts";
import { GateError } from "../../auth/core/errors.ts";

const T = "abcDEF0123456789-._~+/=abcdef0123456789";
const OTHER = "zyxwvutsrqponmlkjihgfedcba9876543210ZZZ";

describe("isTokenShaped", () => {
  test.each([
    ["plain", T, true],
    ["empty", "", false],
    ["space inside", "abc def", false],
    ["comma (joined duplicate)", `${T}, ${T}`, false],
    ["tab", "abc\tdef", false],
    ["NUL", "abc\u0000def", false],
    ["DEL", "abc\u007fdef", false],
    ["non-ASCII", "abcé", false],
    ["too long", "a".repeat(4097), false],
    ["longest allowed", "a".repeat(4096), true],
  ])("%s", (_name, value, expected) => {
    expect(isTokenShaped(value)).toBe(expected);
  });
});

describe("parseAuthorization / parseBearerToken", () => {
  test.each([
    ["Bearer", `Bearer ${T}`, T],
    ["lower-case scheme", `bearer ${T}`, T],
    ["upper-case scheme", `BEARER ${T}`, T],
    ["several spaces", `Bearer   ${T}`, T],
    ["no token", "Bearer", undefined],
    ["no token, trailing space", "Bearer ", undefined],
    ["two tokens", `Bearer ${T} ${T}`, undefined],
    ["joined duplicates", `Bearer ${T}, Bearer ${T}`, undefined],
    ["other scheme", `Basic ${T}`, undefined],
    ["garbage", "%%%", undefined],
  ])("%s", (_name, header, expected) => {
    expect(parseBearerToken(header)).toBe(expected);
  });

  test("keeps the scheme of other schemes for the caller", () => {
    expect(parseAuthorization("Basic dXNlcjpwYXNz")).toEqual({ scheme: "basic", value: "dXNlcjpwYXNz" });
    expect(parseAuthorization(" Bearer x")).toBeUndefined();
  });
});

describe("parseSubprotocols", () => {
  test("decodes the bearer entry and keeps the offered list", () => {
    expect(parseSubprotocols(`tokengate, ${encodeSubprotocolToken(T)}`)).toEqual({
      offered: ["tokengate", encodeSubprotocolToken(T)],
      token: T,
    });
  });

  test.each([
    ["two bearer entries", `tokengate, ${encodeSubprotocolToken(T)}, ${encodeSubprotocolToken(T)}`],
    ["empty entry", "tokengate, , x"],
    ["not base64url", "tokengate, tokengate.bearer.a+b"],
    ["impossible base64 length", "tokengate, tokengate.bearer.abcde"],
    ["decodes to a token with a space", `tokengate, tokengate.bearer.${Buffer.from("a b").toString("base64url")}`],
    ["empty token", "tokengate, tokengate.bearer."],
  ])("refuses %s", (_name, header) => {
    expect(parseSubprotocols(header)).toBeUndefined();
  });
});

describe("readCredential", () => {
  const none: CredentialInputs = { xAuthToken: null, authorization: null };
  const code = (reading: ReturnType<typeof readCredential>): string =>
    reading instanceof GateError ? reading.code : reading === "none" ? "none" : reading.token;

  test.each<[string, CredentialInputs, string]>([
    ["nothing", none, "none"],
    ["X-Auth-Token", { ...none, xAuthToken: T }, T],
    ["Bearer", { ...none, authorization: `Bearer ${T}` }, T],
    ["both, equal", { xAuthToken: T, authorization: `Bearer ${T}` }, T],
    ["query", { ...none, queryTokens: [T] }, T],
    ["subprotocol", { ...none, subprotocols: `tokengate, ${encodeSubprotocolToken(T)}` }, T],
    ["marker only", { ...none, subprotocols: "tokengate" }, "none"],
    ["query and subprotocol, equal", { ...none, queryTokens: [T], subprotocols: `tokengate, ${encodeSubprotocolToken(T)}` }, T],
  ])("accepts %s", (_name, inputs, expected) => {
    const reading = readCredential(inputs);
    expect(reading === "none" ? "none" : reading instanceof GateError ? reading.code : reading.token).toBe(expected);
  });

  test.each<[string, CredentialInputs, string]>([
    ["both headers, different", { xAuthToken: T, authorization: `Bearer ${OTHER}` }, "invalid_request"],
    ["empty X-Auth-Token", { ...none, xAuthToken: "" }, "invalid_request"],
    ["X-Auth-Token with space", { ...none, xAuthToken: "abc def" }, "invalid_request"],
    ["X-Auth-Token joined duplicates", { ...none, xAuthToken: `${T}, ${T}` }, "invalid_request"],
    ["Bearer without token", { ...none, authorization: "Bearer" }, "invalid_request"],
    ["Bearer with comma", { ...none, authorization: `Bearer a,b` }, "invalid_request"],
    ["malformed Authorization", { ...none, authorization: "::" }, "invalid_request"],
    ["Basic only", { ...none, authorization: "Basic dXNlcjpwYXNz" }, "missing_token"],
    ["query twice", { ...none, queryTokens: [T, T] }, "invalid_request"],
    ["empty query token", { ...none, queryTokens: [""] }, "invalid_request"],
    ["query and header differ", { xAuthToken: T, authorization: null, queryTokens: [OTHER] }, "invalid_request"],
    ["bearer subprotocol without marker", { ...none, subprotocols: encodeSubprotocolToken(T) }, "invalid_request"],
    [
      "subprotocol and query differ",
      { ...none, queryTokens: [T], subprotocols: `tokengate, ${encodeSubprotocolToken(OTHER)}` },
      "invalid_request",
    ],
  ])("refuses %s", (_name, inputs, expected) => {
    expect(code(readCredential(inputs))).toBe(expected);
  });

  test("error descriptions never repeat the presented token", () => {
    const reading = readCredential({ xAuthToken: `${T} x`, authorization: null });
    expect(reading).toBeInstanceOf(GateError);
    expect((reading as GateError).description).not.toContain(T);
  });
});

describe("parseBasicCredentials (RFC 7617)", () => {
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
  test.each<[string, string, { username: string; password: string } | undefined]>([
    ["simple", b64("alice:pw"), { username: "alice", password: "pw" }],
    ["colon in password", b64("alice:a:b:c"), { username: "alice", password: "a:b:c" }],
    ["empty password", b64("alice:"), { username: "alice", password: "" }],
    ["UTF-8", b64("jösé:pässwörd"), { username: "jösé", password: "pässwörd" }],
    ["no colon", b64("alice"), undefined],
    ["empty username", b64(":pw"), undefined],
    ["control byte", b64("alice:p\u0000w"), undefined],
    ["bad base64", "a!b=", undefined],
    ["bad padding length", "YWxpY2U6cHc", undefined],
    ["invalid UTF-8", Buffer.from([0x61, 0x3a, 0xc3, 0x28]).toString("base64"), undefined],
    ["empty", "", undefined],
  ])("%s", (_name, value, expected) => {
    const parsed = parseBasicCredentials(value);
    expect(parsed === undefined ? undefined : { username: parsed.username, password: parsed.password }).toEqual(expected);
  });

  test("the password never shows in JSON or inspection", () => {
    const parsed = parseBasicCredentials(b64("alice:hunter2-very-secret"))!;
    expect(JSON.stringify(parsed)).not.toContain("hunter2");
    expect(Bun.inspect(parsed)).not.toContain("hunter2");
  });
});
