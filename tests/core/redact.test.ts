import { describe, expect, test } from "bun:test";
import { isCredentialName, parseQuery, valuesOf } from "../../auth/core/query.ts";
import { redactTarget, splitUrl } from "../../auth/core/redact.ts";

describe("splitUrl", () => {
  test.each([
    ["http://h:1/ws?token=x", "/ws", "token=x"],
    ["http://h:1/secure-data", "/secure-data", ""],
    ["http://h:1", "/", ""],
    ["http://h:1/a?b?c", "/a", "b?c"],
    ["http://h:1/ws??token=x", "/ws", "?token=x"],
  ])("%s", (url, path, query) => {
    expect(splitUrl(url)).toEqual({ path, query });
  });
});

describe("parseQuery: one reading for the credential reader and the log", () => {
  test.each<[string, Array<[string, string]>]>([
    ["token=a", [["token", "a"]]],
    ["?token=a", [["?token", "a"]]],
    ["&?token=a", [["?token", "a"]]],
    ["%3Ftoken=a", [["?token", "a"]]],
    ["to%6Ben=a%2Bb+c", [["token", "a+b c"]]],
    ["token", [["token", ""]]],
    [
      "%zz=1&a=%E0%A4%A",
      [
        ["%zz", "1"],
        ["a", "%E0%A4%A"],
      ],
    ],
    [
      "a=1&&b=2",
      [
        ["a", "1"],
        ["b", "2"],
      ],
    ],
  ])("%s", (query, pairs) => {
    expect(parseQuery(query).map((param) => [param.name, param.value])).toEqual(pairs);
  });

  test("valuesOf reads exact decoded names only", () => {
    const params = parseQuery("token=a&?token=b&TOKEN=c&to%6Ben=d");
    expect(valuesOf(params, "token")).toEqual(["a", "d"]);
  });

  test.each([
    ["token", true],
    ["?token", true],
    ["#token", true],
    ["TOKEN", true],
    ["access-token", true],
    ["X-Auth-Token", true],
    ["api_key", true],
    ["ticket", true],
    ["page", false],
    ["tokens_page", false],
  ])("isCredentialName(%p) is %p", (name, expected) => {
    expect(isCredentialName(name)).toBe(expected);
  });
});

describe("redactTarget: names kept, values gone", () => {
  test.each([
    ["/ws", "token=s3cr3t", "/ws?token=REDACTED"],
    ["/ws", "a=1&token=s3cr3t&b=2", "/ws?…=REDACTED&token=REDACTED&…=REDACTED"],
    ["/ws", "TOKEN=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "to%6Ben=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "?token=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "&?token=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "%3Ftoken=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "#token=s3cr3t", "/ws?…=REDACTED"],
    ["/ws", "access_token=s3cr3t&ticket=t", "/ws?access_token=REDACTED&ticket=REDACTED"],
    ["/ws", "token", "/ws?token=REDACTED"],
    ["/ws", "tg_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "/ws?…=REDACTED"],
    ["/a", "page=2&limit=50", "/a?page=2&limit=50"],
    ["/a", "page=s3cr3t%20x", "/a?page=REDACTED"],
    ["/a", "", "/a"],
  ])("%s?%s", (path, query, expected) => {
    expect(redactTarget(path, parseQuery(query))).toBe(expected);
  });

  test.each([
    ["/secure-data", "/secure-data"],
    ["/.well-known/jwks.json", "/.well-known/jwks.json"],
    ["/ws;token=tg_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "/…"],
    ["/ws%3Ftoken=s3cr3t", "/…"],
    ["/ws/;token=s3cr3t", "/ws/…"],
    ["/secure-data/tg_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ", "/secure-data/…"],
    ["/ws#token=s3cr3t", "/…"],
  ])("the path %s is logged as %s: a credential in it never is", (path, expected) => {
    expect(redactTarget(path, [])).toBe(expected);
  });

  test("caps very long targets", () => {
    expect(redactTarget(`/${"a".repeat(5000)}`, []).length).toBeLessThan(600);
  });
});
