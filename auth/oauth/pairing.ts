/**
 * First-run pairing. A device with no API keys and no users yet shows a one-time 6-digit code on
 * its own console (the server's terminal, or `tokengate pair` / `bun run cli pair` run on the
 * device); a browser on the local network trades that code on the console page for the first
 * admin key, so nobody has to copy a secret out of a log or a file. A code lives 5 minutes, works
 * once, dies after 5 wrong tries from anywhere, and each wrong try also counts toward the
 * guessing client's ban. Only the code's digest is stored; the store decides every redemption in
 * one transaction.
 */
import type { AuditLog } from "../guard/audit.ts";
import type { AddressResolver } from "../http/clients.ts";
import { isLocalNetwork } from "../core/addresses.ts";
import { GateError } from "../core/errors.ts";
import type { Guard } from "../guard/guard.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { jsonResponse, readForm, toOAuthResponse, tokenResponse, withStoreFailures } from "../http/responses.ts";
import { generateApiKey, UNSHOWABLE_IN_NAME } from "../secrets/keys.ts";
import type { Logger } from "../core/log.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { HttpRoute, PublicRoute } from "../http/routes.ts";
import type { GateServer } from "../ws/data.ts";
import type { NewKey, PairingStore } from "../store/store.ts";
import { digestToken } from "../secrets/tokens.ts";

export const PAIRING_PATH = "/auth/pair";
export const PAIRING_TTL_MS = 5 * 60_000;
/** Wrong tries, from all clients together, after which the code is dead: 5 in 10⁶ is the odds. */
export const PAIRING_MAX_FAILURES = 5;
export const PAIRED_KEY_SCOPES: readonly string[] = ["*"];
const DEFAULT_KEY_NAME = "admin (paired in a browser)";

// 4 294 000 000 is the largest multiple of 10⁶ below 2³²: drawing below it keeps every code equally likely.
const UNBIASED_LIMIT = Math.floor(2 ** 32 / 1_000_000) * 1_000_000;

/** Six digits from the platform CSPRNG, uniformly (leading zeros kept). */
export function generatePairingCode(): string {
  const draw = new Uint32Array(1);
  do crypto.getRandomValues(draw);
  while (draw[0]! >= UNBIASED_LIMIT);
  return String(draw[0]! % 1_000_000).padStart(6, "0");
}

/**
 * The command that makes a new code where this code runs: the compiled binary's entry point lives
 * under `/$bunfs/` and it is installed as `tokengate`; an installed package runs from
 * `node_modules/tokengate/` (`bunx tokengate pair`); a checkout runs the CLI with `bun run cli`.
 * (Bun.main, not import.meta.path: a --bytecode build keeps each module's source path.)
 */
export function pairCommand(entryPoint: string = Bun.main, modulePath: string = import.meta.path): string {
  if (entryPoint.startsWith("/$bunfs/")) return "tokengate pair";
  // Installed, this file is the package's, whatever program started (a library user's server too).
  return /[\\/]node_modules[\\/]tokengate[\\/]/.test(modulePath) ? "bunx tokengate pair" : "bun run cli pair";
}

/** `123456`, `123 456` or `123-456` → `123456`; anything else → `undefined`. */
export function parsePairingCode(text: string): string | undefined {
  const digits = text.trim().replace(/[\s-]/g, "");
  return /^\d{6}$/.test(digits) ? digits : undefined;
}

/** How the code is shown: two groups of three, easy to read aloud and to type. */
export function formatPairingCode(code: string): string {
  return `${code.slice(0, 3)} ${code.slice(3)}`;
}

export interface IssuedPairingCode {
  readonly code: string;
  readonly expiresAt: number;
}

/** A fresh code (replacing any earlier one), or `undefined` when the device has credentials already. */
export async function issuePairingCode(store: PairingStore, now: number): Promise<IssuedPairingCode | undefined> {
  const code = generatePairingCode();
  const expiresAt = now + PAIRING_TTL_MS;
  return (await store.issuePairingCode(digestToken(code), now, expiresAt)) ? { code, expiresAt } : undefined;
}

const NOT_LOCAL = new GateError("access_denied", "Pairing works only from this device or its local network");
const ALREADY_PAIRED = new GateError(
  "access_denied",
  "This device already has credentials; pairing is only for its first key. Sign in with a key or password instead",
);
const BAD_CODE = new GateError("invalid_request", "code must be the 6 digits shown on the device");
const BAD_NAME = new GateError("invalid_request", "name must be 1 to 200 characters without control characters");
function wrongCode(command: string): GateError {
  return new GateError(
    "wrong_grant_secret",
    `The pairing code is wrong, expired or already used; get a new one on the device (${command}, or restart the server in a terminal)`,
  );
}

export interface PairingRouteOptions {
  readonly store: PairingStore;
  readonly addressOf: AddressResolver;
  readonly guard?: Guard | undefined;
  readonly audit?: AuditLog | undefined;
  /** Counts refusals by kind (METRICS). */
  readonly metrics?: GateMetrics | undefined;
  readonly logger: Logger;
  readonly now: () => number;
  /** Makes the new key usable on this instance before the browser receives it. */
  readonly afterPairing: () => Promise<void>;
  /** What to run on the device for a new code; by default the one that exists here (`pairCommand`). */
  readonly command?: string | undefined;
}

/**
 * `GET /auth/pair` tells the console page whether the device is still unpaired, and while it is,
 * which command makes a code on it (`{"pairing":"open","command":"bun run cli pair"}`);
 * `POST /auth/pair` (form: `code`, optional `name`) trades a live code for the first admin key.
 */
export function createPairingRoutes(options: PairingRouteOptions): HttpRoute[] {
  const { store, logger } = options;
  const command = options.command ?? pairCommand();
  const refusedCode = wrongCode(command);
  const onStoreFailure = (error: Error) => logger.error("store unreachable while pairing", { error: error.message });
  // Keys and users are never deleted, so once the device has credentials pairing stays closed:
  // remembered here, a paired device answers both routes without touching the store.
  let closed = false;
  const isClosed = async () => (closed ||= await store.hasCredentials());

  const redeem: PublicRoute["handle"] = async (request, _principal, server) => {
    const address = options.addressOf(request, server);
    if (!isLocalNetwork(address)) return toOAuthResponse(NOT_LOCAL);
    if (closed) return toOAuthResponse(ALREADY_PAIRED);
    const params = await readForm(request);
    if (params instanceof GateError) return toOAuthResponse(params);
    const code = parsePairingCode(params.get("code") ?? "");
    if (code === undefined) return toOAuthResponse(BAD_CODE);
    const name = params.get("name")?.trim() || DEFAULT_KEY_NAME;
    if (name.length > 200 || UNSHOWABLE_IN_NAME.test(name)) return toOAuthResponse(BAD_NAME);

    const key = generateApiKey();
    const now = options.now();
    const record: NewKey = {
      id: key.id,
      name,
      scopes: PAIRED_KEY_SCOPES,
      secretHash: digestToken(key.secret),
      createdAt: now,
      expiresAt: null,
    };
    const outcome = await store.redeemPairingCode(digestToken(code), now, PAIRING_MAX_FAILURES, record);
    if (outcome === "closed" || outcome === "paired") closed = true;
    if (outcome === "closed") return toOAuthResponse(ALREADY_PAIRED);
    if (outcome !== "paired") {
      return toOAuthResponse(settleRefusal(options, { error: refusedCode, address, path: PAIRING_PATH }));
    }
    await options.afterPairing();
    options.audit?.record("pairing.completed", { key_id: record.id, name, address });
    logger.info("device paired: first admin key created", { key_id: record.id, address });
    return tokenResponse({ api_key: key.token, id: record.id, name, scopes: record.scopes, expires_at: null });
  };

  const status: PublicRoute["handle"] = async () =>
    jsonResponse(200, JSON.stringify((await isClosed()) ? { pairing: "closed" } : { pairing: "open", command }));

  return [
    {
      kind: "http",
      path: PAIRING_PATH,
      methods: ["GET", "HEAD", "POST"],
      scope: null,
      guarded: true,
      handle: withStoreFailures(
        async (request: Request, _principal: undefined, server: GateServer) =>
          (request.method === "POST" ? redeem : status)(request, undefined, server),
        onStoreFailure,
      ),
    },
  ];
}

/** The lines shown on the device's own terminal: the code, where to enter it, until when, how to get another. */
export function describePairingCode(issued: IssuedPairingCode, urls: readonly string[], command: string = pairCommand()): string {
  const until = new Date(issued.expiresAt).toTimeString().slice(0, 5);
  const where =
    urls.length === 0 ? "this server's address (this device listens on no network address a browser could reach)" : urls.join("  or  ");
  return [
    "",
    "  First-run pairing: this device has no API keys or users yet.",
    `  In a browser on your network, open  ${where}`,
    `  and enter the pairing code  ${formatPairingCode(issued.code)}`,
    `  It works once and expires at ${until} (5 minutes); \`${command}\` on this device makes a new one.`,
    "",
    "",
  ].join("\n");
}

export interface PairingOffer {
  readonly store: PairingStore;
  readonly logger: Logger;
  /** Where the browser finds the console page. */
  readonly urls: readonly string[];
  /** The device's terminal, when the server runs in one: the only place a code is ever shown. */
  readonly terminal: ((text: string) => void) | undefined;
  readonly now: () => number;
  /** What to run on the device for a code; by default the one that exists here (`pairCommand`). */
  readonly command?: string | undefined;
}

/**
 * At startup on a device with no credentials: show a code on the terminal, or, with no terminal
 * (systemd, Docker), log how to get one. A code never goes to the log.
 */
export async function offerPairing(offer: PairingOffer): Promise<void> {
  const { store, logger } = offer;
  const command = offer.command ?? pairCommand();
  try {
    if (await store.hasCredentials()) return;
    const issued = offer.terminal === undefined ? undefined : await issuePairingCode(store, offer.now());
    if (issued !== undefined) {
      offer.terminal!(describePairingCode(issued, offer.urls, command));
      logger.info("pairing code shown on the terminal", { expires_at: new Date(issued.expiresAt).toISOString() });
    } else {
      logger.warn(
        `this device has no API keys or users yet: run \`${command}\` on it for a one-time pairing code, then enter the code on the console page`,
        {
          console: offer.urls[0],
        },
      );
    }
  } catch (error) {
    logger.warn("could not check whether this device needs pairing", { error: error instanceof Error ? error.message : "unknown" });
  }
}
