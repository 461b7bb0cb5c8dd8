/**
 * A session's last use: noted in memory on every request, written to the store at once the first
 * time and then at most once a minute, so a busy page does not write per request and another
 * instance still sees the session alive.
 */
import { expect, test } from "bun:test";
import { createSessionActivity, ENDED_SESSION_KEPT_MS, SESSION_TOUCH_INTERVAL_MS } from "../../auth/authn/session-activity.ts";
import type { SessionRecord } from "../../auth/store/store.ts";

function setup() {
  const clock = { at: 1_000_000 };
  const writes: Array<Array<{ id: string; at: number }>> = [];
  const prunes: number[] = [];
  const activity = createSessionActivity(
    { touchSessions: async (uses) => void writes.push([...uses]), pruneSessions: async (before) => (prunes.push(before), 0) },
    () => clock.at,
  );
  return { clock, writes, prunes, activity };
}

const record = (id: string, lastSeenAt: number) => ({ id, lastSeenAt }) as SessionRecord;

test("the first use is written on the next flush; later uses at most once per interval, the latest of them", async () => {
  const { clock, writes, activity } = setup();
  activity.noteUse("a");
  await activity.flush();
  expect(writes).toEqual([[{ id: "a", at: 1_000_000 }]]);
  for (let step = 0; step < 50; step++) {
    clock.at += 1_000;
    activity.noteUse("a");
    await activity.flush();
  }
  expect(writes).toHaveLength(1);
  clock.at += SESSION_TOUCH_INTERVAL_MS;
  await activity.flush();
  expect(writes).toHaveLength(2);
  expect(writes[1]).toEqual([{ id: "a", at: 1_050_000 }]);
});

test("a use in memory counts for idleness before it is written; a later stored use (another instance) is adopted", () => {
  const { clock, activity } = setup();
  expect(activity.lastUse(record("a", 5))).toBe(5);
  activity.noteUse("a");
  expect(activity.lastUse(record("a", 5))).toBe(clock.at);
  activity.adopt("a", clock.at + 10);
  expect(activity.lastUse(record("a", 5))).toBe(clock.at + 10);
  activity.adopt("a", 1);
  expect(activity.lastUse(record("a", 5))).toBe(clock.at + 10);
});

test("a failed write is not lost: the next flush writes it", async () => {
  const clock = { at: 1_000 };
  let fail = true;
  const writes: string[] = [];
  const activity = createSessionActivity(
    {
      touchSessions: async (uses) => {
        if (fail) throw new Error("store away");
        writes.push(...uses.map((use) => use.id));
      },
      pruneSessions: async () => 0,
    },
    () => clock.at,
  );
  activity.noteUse("a");
  await expect(activity.flush()).rejects.toThrow("store away");
  fail = false;
  await activity.flush();
  expect(writes).toEqual(["a"]);
});

test("a session quiet for an interval after its last write is not written again, and its stored stamp still counts", async () => {
  const { clock, writes, activity } = setup();
  for (let index = 0; index < 100; index++) activity.noteUse(`s${index}`);
  await activity.flush();
  clock.at += SESSION_TOUCH_INTERVAL_MS;
  await activity.flush();
  clock.at += SESSION_TOUCH_INTERVAL_MS;
  await activity.flush();
  expect(writes).toHaveLength(1);
  expect(activity.lastUse(record("s1", 0))).toBe(1_000_000);
});

test("once an hour, sessions that ended more than 30 days ago are forgotten", async () => {
  const { clock, prunes, activity } = setup();
  await activity.flush();
  await activity.flush();
  expect(prunes).toEqual([1_000_000 - ENDED_SESSION_KEPT_MS]);
  clock.at += 3_600_000;
  await activity.flush();
  expect(prunes).toEqual([1_000_000 - ENDED_SESSION_KEPT_MS, 4_600_000 - ENDED_SESSION_KEPT_MS]);
});
