/**
 * A bounded load test on loopback: clients hammer /secure-data with API keys while keys are
 * rotated (with overlap) and revoked through a second database connection, as the CLI would.
 * Requests are judged against what was true for their whole flight: valid keys must never get a
 * 401, and a key must never be accepted once its revocation has been applied. Requests in flight
 * while their key changed state are ambiguous by nature and are counted separately.
 * LOAD_SECONDS (default 6, at most 30) bounds the run.
 */
import { insertApiKey } from "./support/keys.ts";
import { expect, test } from "bun:test";
import { generateApiKey } from "../auth/secrets/keys.ts";
import { openDataDirStore } from "./support/stores.ts";
import { digestToken } from "../auth/secrets/tokens.ts";
import { startTestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "./support/secrets.ts";

const SECONDS = Math.min(Math.max(Number(process.env.LOAD_SECONDS ?? 6), 1), 30);
const CLIENTS = 16;
const OVERLAP_MS = 800;

interface Tracked {
  readonly token: string;
  readonly id: string;
  /** performance.now() from which the key is valid in the server's view. */
  readonly validFrom: number;
  /** performance.now() after which the key is no longer valid (revocation applied, or overlap over). */
  endsAt: number;
}

test(`keys rotated and revoked under load for ${SECONDS}s: 0 unexpected 401s, 0 accepts after revocation`, async () => {
  await using app = await startTestApp();
  const cli = await openDataDirStore(app.dataDir);
  const keys: Tracked[] = [];
  const add = async () => {
    const key = await insertApiKey(cli, { name: "load", scopes: ["data:read"] });
    await app.app.keyring.refresh();
    const tracked = { token: key.token, id: key.id, validFrom: performance.now(), endsAt: Number.POSITIVE_INFINITY };
    keys.push(tracked);
    return tracked;
  };
  for (let i = 0; i < 8; i++) await add();

  const deadline = performance.now() + SECONDS * 1000;
  const tally = {
    requests: 0,
    ok: 0,
    refused: 0,
    unexpected401: 0,
    acceptedAfterRevocation: 0,
    ambiguous: 0,
    other: 0,
    rotations: 0,
    revocations: 0,
  };

  const controller = (async () => {
    let step = 0;
    while (performance.now() < deadline - 500) {
      await Bun.sleep(150);
      const live = keys.filter((key) => key.endsAt === Number.POSITIVE_INFINITY);
      const victim = live[Math.floor(Math.random() * live.length)];
      if (victim === undefined) continue;
      if (step++ % 2 === 0) {
        // Rotation: the replacement is valid at once; the old key keeps working for the overlap.
        const next = generateApiKey();
        trackSecret(next.token);
        const endWall = Date.now() + OVERLAP_MS;
        await cli.rotateKey(
          victim.id,
          {
            id: next.id,
            name: "load",
            scopes: ["data:read"],
            secretHash: digestToken(next.secret),
            createdAt: Date.now(),
            expiresAt: null,
          },
          endWall,
        );
        await app.app.keyring.refresh();
        victim.endsAt = performance.now() + (endWall - Date.now());
        keys.push({ token: next.token, id: next.id, validFrom: performance.now(), endsAt: Number.POSITIVE_INFINITY });
        tally.rotations += 1;
      } else {
        await cli.revokeKey(victim.id, Date.now());
        await app.app.keyring.refresh();
        victim.endsAt = performance.now();
        tally.revocations += 1;
      }
    }
  })();

  const client = async () => {
    while (performance.now() < deadline) {
      // Mostly live keys (the path that must never fail), sometimes ended ones (must never pass).
      const live = keys.filter((candidate) => candidate.endsAt === Number.POSITIVE_INFINITY);
      const pool = Math.random() < 0.75 && live.length > 0 ? live : keys;
      const key = pool[Math.floor(Math.random() * pool.length)]!;
      const sentAt = performance.now();
      const response = await fetch(`${app.http}/secure-data`, { headers: { "X-Auth-Token": key.token } });
      await response.arrayBuffer();
      const doneAt = performance.now();
      tally.requests += 1;
      const validThroughout = sentAt >= key.validFrom && doneAt < key.endsAt - 20;
      const endedBefore = sentAt > key.endsAt + 20;
      if (response.status === 200) tally.ok += 1;
      else if (response.status === 401) tally.refused += 1;
      else tally.other += 1;
      if (validThroughout && response.status !== 200) tally.unexpected401 += 1;
      else if (endedBefore && response.status === 200) tally.acceptedAfterRevocation += 1;
      else if (!validThroughout && !endedBefore) tally.ambiguous += 1;
    }
  };

  await Promise.all([controller, ...Array.from({ length: CLIENTS }, client)]);
  await cli.close();
  console.log(`load: ${JSON.stringify(tally)}`);
  expect(tally.rotations + tally.revocations).toBeGreaterThanOrEqual(SECONDS * 2);
  expect(tally.requests).toBeGreaterThan(1_000);
  expect(tally.refused).toBeGreaterThan(0);
  expect({ unexpected401: tally.unexpected401, acceptedAfterRevocation: tally.acceptedAfterRevocation, other: tally.other }).toEqual({
    unexpected401: 0,
    acceptedAfterRevocation: 0,
    other: 0,
  });
}, 60_000);

test("no key used under load reached any output", () => {
  expectNoSecretsInOutput();
});
