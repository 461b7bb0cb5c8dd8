/**
 * The one refusal table: each kind carries its wire code, status, close code and policy. Callers
 * pick a kind; whether a refusal counts as a guess or is audited is read from here and nowhere else.
 */
import { describe, expect, test } from "bun:test";
import {
  EXPIRED_TOKEN,
  GateError,
  INVALID_TOKEN,
  MISSING_TOKEN,
  POLICIES,
  REVOKED_TOKEN,
  type GateErrorKind,
} from "../../auth/core/errors.ts";

describe("refusal policies", () => {
  test.each<[GateErrorKind, string, number, number, boolean, boolean]>([
    ["missing_token", "missing_token", 401, 4401, false, false],
    ["unknown_token", "invalid_token", 401, 4401, true, true],
    ["revoked_token", "invalid_token", 401, 4403, false, true],
    ["expired_token", "invalid_token", 401, 4401, false, true],
    ["invalid_credentials", "invalid_credentials", 401, 4401, true, true],
    ["wrong_grant_secret", "invalid_grant", 400, 4400, true, true],
    ["invalid_grant", "invalid_grant", 400, 4400, false, true],
    ["wrong_client_secret", "invalid_client", 401, 4401, true, true],
    ["invalid_client", "invalid_client", 401, 4401, false, true],
    ["invalid_request", "invalid_request", 400, 4400, false, true],
    ["unsupported_grant_type", "unsupported_grant_type", 400, 4400, false, false],
    ["too_many_requests", "too_many_requests", 429, 4429, false, true],
    ["authorization_pending", "authorization_pending", 400, 4400, false, false],
    ["slow_down", "slow_down", 400, 4400, false, false],
    ["device_code_expired", "expired_token", 400, 4400, false, false],
    ["device_denied", "access_denied", 400, 4400, false, false],
  ])("%s: wire %s, %d, close %d, guess %p, audited %p", (kind, wire, status, close, guess, audited) => {
    const error = new GateError(kind, "x");
    expect(error.code).toBe(wire as never);
    expect(error.policy).toMatchObject({ status, close, guess, audited });
  });

  test("the shared refusals are the kinds their names say", () => {
    expect([MISSING_TOKEN.kind, INVALID_TOKEN.kind, REVOKED_TOKEN.kind, EXPIRED_TOKEN.kind]).toEqual([
      "missing_token",
      "unknown_token",
      "revoked_token",
      "expired_token",
    ]);
  });

  test("kinds that share a wire code answer with the same HTTP status (clients see one code)", () => {
    const statusByWire = new Map<string, Set<number>>();
    // The one exception: RFC 8628 §3.5's access_denied comes from the token endpoint, where RFC 6749 §5.2 makes every error 400.
    const policies = Object.entries(POLICIES).filter(([kind]) => kind !== "device_denied");
    for (const [, policy] of policies) statusByWire.set(policy.wire, (statusByWire.get(policy.wire) ?? new Set()).add(policy.status));
    for (const [wire, statuses] of statusByWire) expect([wire, statuses.size]).toEqual([wire, 1]);
  });
});
