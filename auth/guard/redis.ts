/**
 * The shared `AttemptStore`: failed-attempt counters in Redis (`Bun.redis`), so N instances
 * behind a load balancer allow one limit's worth of guesses, not N. Each subject is one sorted set
 * of failure times, trimmed to the window and given the window as expiry atomically (a Lua script),
 * so a crash between the steps can never leave a counter that lives forever.
 */
import { RedisClient } from "bun";
import type { AttemptStore } from "./guard.ts";

// KEYS[1] a sorted set of failure times, ARGV[1] now (ms), ARGV[2] window (ms), ARGV[3] a unique member.
// A sliding window, like the in-memory store: failures older than the window drop out one by one.
const COUNT_SCRIPT = `redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])`;
/** Counters of the fixed-window releases were plain strings under the bare prefix; these live apart. */
const WINDOW_KEY = "sliding:";

/** Reconnects are tried at most this often while Redis is away. */
const RECONNECT_EVERY_MS = 1_000;
/** A command not answered by then counts as failed: the guard counts locally instead of waiting. */
const COMMAND_TIMEOUT_MS = 500;

export interface RedisAttemptStore extends AttemptStore {
  close(): void;
}

/** `prefix` keeps instances of different deployments (and tests) apart on one Redis. */
export function createRedisAttemptStore(url: string, prefix = "tokengate:attempts:"): RedisAttemptStore {
  // Commands sent while the connection is (re)opening wait for it, but never longer than the
  // command timeout below.
  const client = new RedisClient(url, { connectionTimeout: 2_000, autoReconnect: true });
  client.connect().catch(() => undefined);
  let lastReconnect = 0;
  /** Bun stops reconnecting after maxRetries; a later failure starts it again, so recovery needs no restart. */
  const reconnect = () => {
    if (client.connected || performance.now() - lastReconnect < RECONNECT_EVERY_MS) return;
    lastReconnect = performance.now();
    client.connect().catch(() => undefined);
  };
  const attempt = async <T>(work: () => Promise<T>): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([work(), timeout]);
    } catch (error) {
      reconnect();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    countFailure: (subject, now, windowMs) =>
      attempt(async () =>
        Number(
          await client.send("EVAL", [
            COUNT_SCRIPT,
            "1",
            prefix + WINDOW_KEY + subject,
            String(now),
            String(windowMs),
            `${now}:${crypto.randomUUID()}`,
          ]),
        ),
      ),
    forget: (subject) => attempt(async () => void (await client.del(prefix + WINDOW_KEY + subject))),
    close: () => client.close(),
  };
}
