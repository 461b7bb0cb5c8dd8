/**
 * Password hashing (argon2id via Bun.password) and verification under a bound. One argon2id
 * verify costs ~120 ms of CPU and 64 MiB here, so verifications run a few at a time, a short queue
 * absorbs bursts, and past that callers are told to come back later instead of starving the
 * server (WebSocket, key and JWT traffic never wait behind this queue).
 */
import type { GateMetrics, VerificationSeries } from "../core/gate-metrics.ts";

export const ARGON2_OPTIONS = { algorithm: "argon2id", memoryCost: 65_536, timeCost: 2 } as const;

/**
 * A hash of a random password nobody knows, with the same parameters as real hashes. Unknown and
 * disabled users are verified against it, so every username costs the same time.
 */
export const DUMMY_HASH =
  "$argon2id$v=19$m=65536,t=2,p=1$5WYh0j4g+i6Qd1nwafbPQkGn7i1pmWdW3ONJRT7mxqM$4r6hkIXIBBk4mK6WgswN4HeKF3qV6CCRGkUmoDdG1F8";

/**
 * RFC 8265 OpaqueString's normalization (NFC), applied wherever a password enters: Basic
 * credentials, the password grant, and the CLI that sets it. A password typed decomposed (NFD, as
 * some keyboards and macOS produce) then matches the same password typed composed.
 */
export function preparePassword(text: string): string {
  return text.normalize("NFC");
}

export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_BYTES = 1024;

/** Why a new password is unacceptable, or `undefined`. Never repeats the password. */
export function checkPassword(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `must have at least ${MIN_PASSWORD_LENGTH} characters`;
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `must be at most ${MAX_PASSWORD_BYTES} bytes`;
  if (/[\x00-\x1f\x7f]/.test(password)) return "must not contain control characters";
  return undefined;
}

export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, ARGON2_OPTIONS);
}

export type VerifyOutcome = "match" | "mismatch" | "busy";

export interface PasswordVerifier {
  /**
   * Verifies against `hash`, or against the dummy hash when there is no user (same cost). Each of
   * `holders` (the caller's address bucket, the username tried) may hold at most one place in the
   * queue: neither one client nor one account, from however many addresses, can fill it.
   */
  verify(password: string, hash: string | undefined, holders: readonly string[]): Promise<VerifyOutcome>;
  readonly active: number;
  readonly queued: number;
}

export interface VerifierLimits {
  /** Verifications running at once (each one occupies a core for ~120 ms). */
  readonly concurrency: number;
  /** Verifications waiting; one more is refused as "busy". */
  readonly queueLimit: number;
}

type Verify = PasswordVerifier["verify"];

/** Each verification timed from the call to its outcome: the queue's wait and argon2id together, as the client waits. */
function timeVerifications(verify: Verify, series: VerificationSeries): Verify {
  return (password, hash, holders) => {
    const started = performance.now();
    return verify(password, hash, holders).then((outcome) => {
      const counted = outcome === "match" ? series.valid : outcome === "mismatch" ? series.invalid : series.unavailable;
      counted.checks.inc();
      counted.duration.observe((performance.now() - started) / 1000);
      return outcome;
    });
  };
}

/** `metrics`: the queue's depth and running checks (read at each scrape), its refusals and each check's time. */
export function createPasswordVerifier(limits: VerifierLimits, metrics?: GateMetrics): PasswordVerifier {
  let active = 0;
  const waiting: Array<() => void> = [];
  /** Holders with a verification in the queue (not the ones running). */
  const queuedHolders = new Set<string>();

  const run = async (password: string, hash: string | undefined): Promise<VerifyOutcome> => {
    active += 1;
    try {
      const matched = await Bun.password.verify(password, hash ?? DUMMY_HASH).catch(() => false);
      // The dummy hash's password is unknown, but an unknown user must never verify regardless.
      return matched && hash !== undefined ? "match" : "mismatch";
    } finally {
      active -= 1;
      waiting.shift()?.();
    }
  };

  const verify: Verify = (password, hash, holders) => {
    if (active < limits.concurrency && waiting.length === 0) return run(password, hash);
    const refused =
      waiting.length >= limits.queueLimit ? "queueFull" : holders.some((holder) => queuedHolders.has(holder)) ? "holderQueued" : undefined;
    if (refused !== undefined) {
      metrics?.passwordQueue[refused].inc();
      return Promise.resolve("busy");
    }
    for (const holder of holders) queuedHolders.add(holder);
    return new Promise<void>((resolve) => waiting.push(resolve)).then(() => {
      for (const holder of holders) queuedHolders.delete(holder);
      return run(password, hash);
    });
  };
  metrics?.sample(() => {
    metrics.passwordQueue.depth.set(waiting.length);
    metrics.passwordQueue.running.set(active);
  });

  return {
    verify: metrics === undefined ? verify : timeVerifications(verify, metrics.passwordChecks),
    get active() {
      return active;
    },
    get queued() {
      return waiting.length;
    },
  };
}
