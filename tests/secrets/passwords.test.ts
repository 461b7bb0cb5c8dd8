import { describe, expect, test } from "bun:test";
import { parseRoleScopes } from "../../auth/config/config.ts";
import { checkPassword, createPasswordVerifier, DUMMY_HASH, hashPassword } from "../../auth/secrets/passwords.ts";
import { scopesForRoles } from "../../auth/authn/users.ts";

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
    expect(await verifier.verify("correct horse battery", hash, ["192.0.2.1"])).toBe("match");
    expect(await verifier.verify("wrong horse battery", hash, ["192.0.2.1"])).toBe("mismatch");
  });

  test("no user means a full dummy verification and never a match", async () => {
    expect(DUMMY_HASH).toStartWith("$argon2id$v=19$m=65536,t=2,p=1$");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 4 });
    expect(await verifier.verify("anything", undefined, ["192.0.2.1"])).toBe("mismatch");
  });

  test("a garbage stored hash is a mismatch, not a crash", async () => {
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 4 });
    expect(await verifier.verify("anything", "$argon2id$garbage", ["192.0.2.1"])).toBe("mismatch");
  });

  test("concurrency and queue bounds: the overflow is told 'busy' at once", async () => {
    const hash = await hashPassword("correct horse battery");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 2 });
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, index) => verifier.verify("correct horse battery", hash, [`192.0.2.${index}`])),
    );
    expect(outcomes.filter((outcome) => outcome === "match")).toHaveLength(3);
    expect(outcomes.filter((outcome) => outcome === "busy")).toHaveLength(3);
    expect(verifier.active + verifier.queued).toBe(0);
  });

  test("one client holds at most one queue place: it cannot make sign-in busy for everyone", async () => {
    const hash = await hashPassword("correct horse battery");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 8 });
    // The flooding client: one runs, one waits, the other 18 are told busy at once.
    const flood = Array.from({ length: 20 }, () => verifier.verify("wrong horse battery", hash, ["198.51.100.66"]));
    expect(verifier.queued).toBe(1);
    const others = ["192.0.2.10", "192.0.2.11", "192.0.2.12"].map((client) => verifier.verify("correct horse battery", hash, [client]));
    expect(verifier.queued).toBe(4);
    expect(await Promise.all(others)).toEqual(["match", "match", "match"]);
    const flooded = await Promise.all(flood);
    expect(flooded.filter((outcome) => outcome === "busy")).toHaveLength(18);
    expect(flooded.filter((outcome) => outcome === "mismatch")).toHaveLength(2);
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

describe("queue places are shared by address and by account", () => {
  test("one account tried from many addresses holds one queue place: others still get theirs", async () => {
    const hash = await hashPassword("correct horse battery");
    const verifier = createPasswordVerifier({ concurrency: 1, queueLimit: 8 });
    const flood = Array.from({ length: 12 }, (_, index) =>
      verifier.verify("wrong horse battery", hash, [`addr:203.0.113.${index}`, "user:alice"]),
    );
    expect(verifier.queued).toBe(1);
    const other = verifier.verify("correct horse battery", hash, ["addr:192.0.2.7", "user:bob"]);
    expect(verifier.queued).toBe(2);
    expect(await other).toBe("match");
    expect((await Promise.all(flood)).filter((outcome) => outcome === "busy")).toHaveLength(10);
  });
});
