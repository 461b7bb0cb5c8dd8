/** The verified-JWT cache on its own: bounded, and judged again on every use. */
import { describe, expect, test } from "bun:test";
import { EXPIRED_TOKEN, STORE_UNAVAILABLE, type GateError } from "../../auth/core/errors.ts";
import type { Principal } from "../../auth/core/principal.ts";
import { createJwtCache } from "../../auth/authn/jwt-cache.ts";

const userPrincipal = (name: string): Principal => ({
  id: `user:${name}`,
  kind: "user",
  name,
  scopes: ["data:read"],
  expiresAt: null,
  roles: [],
  session: null,
  tokenId: null,
});

describe("verified-JWT cache", () => {
  test("a token never verified here is not an answer; a remembered one is", () => {
    const cache = createJwtCache(() => undefined);
    const alice = userPrincipal("alice");
    expect(cache.judgeCached("a.b.c")).toBeUndefined();
    cache.remember("a.b.c", alice);
    expect(cache.judgeCached("a.b.c")).toBe(alice);
  });

  test("bounded: the oldest token goes first", () => {
    const cache = createJwtCache(() => undefined, 2);
    cache.remember("t1", userPrincipal("one"));
    cache.remember("t2", userPrincipal("two"));
    cache.remember("t3", userPrincipal("three"));
    expect(cache.judgeCached("t1")).toBeUndefined();
    expect(cache.judgeCached("t2")).toMatchObject({ name: "two" });
    expect(cache.judgeCached("t3")).toMatchObject({ name: "three" });
  });

  test("an expired token is dropped; a refusal that may pass (the store out of reach) keeps it", () => {
    let verdict: GateError | undefined = STORE_UNAVAILABLE;
    const cache = createJwtCache(() => verdict);
    const alice = userPrincipal("alice");
    cache.remember("t", alice);
    expect(cache.judgeCached("t")).toBe(STORE_UNAVAILABLE);
    verdict = undefined;
    expect(cache.judgeCached("t")).toBe(alice);
    verdict = EXPIRED_TOKEN;
    expect(cache.judgeCached("t")).toBe(EXPIRED_TOKEN);
    verdict = undefined;
    expect(cache.judgeCached("t")).toBeUndefined();
  });
});
