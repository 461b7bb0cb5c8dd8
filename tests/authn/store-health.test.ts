/** The keyring's trust in its view, on its own: transitions are reported once, and a fresh view is trusted. */
import { expect, test } from "bun:test";
import { createStoreHealth } from "../../auth/authn/store-health.ts";

test("the owner hears each change of health once, not each failed or answered check", () => {
  const heard: unknown[] = [];
  const health = createStoreHealth((error) => heard.push(error));
  const down = new Error("connection refused");
  health.reportFailure(down);
  health.reportFailure(down);
  health.confirmSync(performance.now());
  health.confirmSync(performance.now());
  expect(heard).toEqual([down, undefined]);
});

test("a failure within STALE_AFTER_MS of the last answer leaves the view trusted", () => {
  const health = createStoreHealth(undefined);
  health.reportFailure(new Error("timeout"));
  health.judgeFreshness();
  expect(health.isStale()).toBe(false);
});
