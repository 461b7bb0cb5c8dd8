import { describe, expect, test } from "bun:test";
import { parseRoleScopes } from "../auth/config.ts";
import { checkPassword, createPasswordVerifier, DUMMY_HASH, hashPassword } from "../auth/passwords.ts";
import { scopesForRoles } from "../auth/users.ts";

describe("checkPassword", () => {
  test.each<[string, string, string | undefined]>([
    ["ten characters", "abcdefghij", undefined],
    ["too short", "abcdefghi", "at least 10"],
    ["control character", "abcdefghij\u0007", "control"],
    ["too many bytes", "é".repeat(600), "at most 1024 bytes"],
  ])("%s", (_name, password, problem) => {
    const result = checkPassword(password);
    if (problem === undefined) expect(result).toBeUndefined();
    else expect(result).toContain(problem);
  });
});

describe("argon2id hashing and verification", () => {
  test("hashes are argon2id with the pinned cost, and verify", async () => {
    const hash = await hashPassword("correct horse battery");
    expect(hash).toStartWith("$argon2id$v=19$m=65536,t=2,p=1$");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 4 });
    expect(await verifier.verify("correct horse battery", hash)).toBe("match");
    expect(await verifier.verify("wrong horse battery", hash)).toBe("mismatch");
  });

  test("no user means a full dummy verification and never a match", async () => {
    expect(DUMMY_HASH).toStartWith("$argon2id$v=19$m=65536,t=2,p=1$");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 4 });
    expect(await verifier.verify("anything", undefined)).toBe("mismatch");
  });

  test("a garbage stored hash is a mismatch, not a crash", async () => {
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 4 });
    expect(await verifier.verify("anything", "$argon2id$garbage")).toBe("mismatch");
  });

  test("concurrency and queue bounds: the overflow is told 'busy' at once", async () => {
    const hash = await hashPassword("correct horse battery");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 2 });
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => verifier.verify("correct horse battery", hash)));
    expect(outcomes.filter((outcome) => outcome === "match")).toHaveLength(3);
    expect(outcomes.filter((outcome) => outcome === "busy")).toHaveLength(3);
    expect(verifier.active + verifier.queued).toBe(0);
  });
});

describe("roles", () => {
  test("ROLE_SCOPES parsing and the union of a user's roles", () => {
    const roles = parseRoleScopes("admin=* ; viewer=data:read,ws:connect; kiosk=ws:connect")!;
    expect(scopesForRoles(["viewer", "kiosk"], roles)).toEqual(["data:read", "ws:connect"]);
    expect(scopesForRoles(["admin"], roles)).toEqual(["*"]);
    expect(scopesForRoles(["removed-role"], roles)).toEqual([]);
    expect(parseRoleScopes("admin")).toBeUndefined();
    expect(parseRoleScopes("Admin=*")).toBeUndefined();
  });
});
