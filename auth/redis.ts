/**
 * The shared `AttemptStore`: failed-attempt counters in Redis (`Bun.redis`), so N instances
 * behind a load balancer allow one limit's worth of guesses, not N. Each counter is one key
 * that INCR creates with its window as expiry, atomically (a Lua script), so a crash between the
 * two steps can never leave a counter that lives forever.
 */
import { RedisClient } from "bun";
import type { AttemptStore } from "./guard.ts";

// KEYS[1] counter, ARGV[1] window in ms. Fixed window from the first failure, like the in-memory store.
const COUNT_SCRIPT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

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
    countFailure: (subject, _now, windowMs) =>
      attempt(async () => Number(await client.send("EVAL", [COUNT_SCRIPT, "1", prefix + subject, String(windowMs)]))),
    forget: (subject) => attempt(async () => void (await client.del(prefix + subject))),
    close: () => client.close(),
  };
}
