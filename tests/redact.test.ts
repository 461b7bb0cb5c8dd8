import { describe, expect, test } from "bun:test";
import { redactTarget, splitUrl } from "../auth/redact.ts";

describe("splitUrl", () => {
  test.each([
    ["http://h:1/ws?token=x", "/ws", "token=x"],
    ["http://h:1/secure-data", "/secure-data", ""],
    ["http://h:1", "/", ""],
    ["http://h:1/a?b?c", "/a", "b?c"],
  ])("%s", (url, path, query) => {
    expect(splitUrl(url)).toEqual({ path, query });
  });
});

describe("redactTarget", () => {
  test.each([
    ["/ws", "token=s3cr3t", "/ws?token=REDACTED"],
    ["/ws", "a=1&token=s3cr3t&b=2", "/ws?a=1&token=REDACTED&b=2"],
    ["/ws", "TOKEN=s3cr3t", "/ws?TOKEN=REDACTED"],
    ["/ws", "to%6Ben=s3cr3t", "/ws?to%6Ben=REDACTED"],
    ["/ws", "access_token=s3cr3t&ticket=t", "/ws?access_token=REDACTED&ticket=REDACTED"],
    ["/ws", "token", "/ws?token=REDACTED"],
    ["/ws", "%zz=1&token=s3cr3t", "/ws?%zz=1&token=REDACTED"],
    ["/a", "page=2", "/a?page=2"],
    ["/a", "", "/a"],
  ])("%s?%s", (path, query, expected) => {
    expect(redactTarget(path, query)).toBe(expected);
  });

  test("caps very long targets", () => {
    expect(redactTarget(`/${"a".repeat(5000)}`, "").length).toBeLessThan(600);
  });
});
