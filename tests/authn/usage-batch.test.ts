/** Last-used bookkeeping on its own: batched in memory, written on flush, kept and retried when the write fails. */
import { describe, expect, test } from "bun:test";
import { BOOTSTRAP_PRINCIPAL, type Principal } from "../../auth/core/principal.ts";
import { createUsageBatch } from "../../auth/authn/usage-batch.ts";
import type { KeyUsage } from "../../auth/store/store.ts";

const keyPrincipal = (id: string): Principal => ({
  id,
  kind: "key",
  name: id,
  scopes: [],
  expiresAt: null,
  roles: [],
  session: null,
  tokenId: null,
});

describe("usage batch", () => {
  test("one entry per key per window: the latest time, the first address; other principals are not recorded", async () => {
    const written: KeyUsage[][] = [];
    let clock = 1_000;
    const batch = createUsageBatch({ recordUsage: async (usages) => void written.push([...usages]) }, () => clock, undefined);
    let remoteCalls = 0;
    batch.recordUse(keyPrincipal("a"), () => ((remoteCalls += 1), "192.0.2.1"));
    clock = 2_000;
    batch.recordUse(keyPrincipal("a"), () => ((remoteCalls += 1), "192.0.2.2"));
    batch.recordUse(BOOTSTRAP_PRINCIPAL, () => ((remoteCalls += 1), "192.0.2.3"));
    await batch.flushUsage();
    expect(written).toEqual([[{ id: "a", at: 2_000, addr: "192.0.2.1" }]]);
    expect(remoteCalls).toBe(1);
    await batch.flushUsage();
    expect(written).toHaveLength(1);
  });

  test("a failed write keeps the batch for the next flush, unless a newer use of the key arrived meanwhile", async () => {
    const written: KeyUsage[][] = [];
    const errors: unknown[] = [];
    let fail = true;
    let clock = 1_000;
    const batch = createUsageBatch(
      {
        recordUsage: async (usages) => {
          if (fail) {
            // A use that lands while the write is failing is newer than the batch's.
            clock = 3_000;
            batch.recordUse(keyPrincipal("b"), () => "198.51.100.9");
            throw new Error("disk full");
          }
          written.push([...usages]);
        },
      },
      () => clock,
      (error) => errors.push(error),
    );
    batch.recordUse(keyPrincipal("a"), () => "192.0.2.1");
    batch.recordUse(keyPrincipal("b"), () => "192.0.2.2");
    await batch.flushUsage();
    expect(errors).toHaveLength(1);
    fail = false;
    await batch.flushUsage();
    expect(written).toEqual([
      [
        { id: "b", at: 3_000, addr: "198.51.100.9" },
        { id: "a", at: 1_000, addr: "192.0.2.1" },
      ],
    ]);
  });
});
