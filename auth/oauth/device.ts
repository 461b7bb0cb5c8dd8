/**
 * Device login (OAuth 2.0 Device Authorization Grant, RFC 8628) for things without a keyboard.
 *
 *   POST /auth/device_authorization  (form: client_id, scope)  §3.1–3.2: a device code for the
 *        device, a user code for the person, where to enter it, how long and how often to poll
 *   GET  /auth/device[?user_code=…]  the console page's device view, where a signed-in person
 *        sees what the device asks for, may narrow it, and approves or denies (device-approval.ts)
 *   POST /auth/token grant_type=urn:ietf:params:oauth:grant-type:device_code  the device's poll
 *        (device-grant.ts)
 *
 * Devices are public clients: any client_id is accepted unless DEVICE_CLIENTS lists the allowed
 * ones. Codes live 10 minutes, work once, and are stored only as SHA-256; a device asking from an
 * address that already has 10 logins waiting is told to wait.
 */
import type { Clock } from "../core/clock.ts";
import { GateError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import type { AuditLog } from "../guard/audit.ts";
import type { Guard } from "../guard/guard.ts";
import { settleRefusal } from "../guard/refusals.ts";
import type { AddressResolver, TransportCheck } from "../http/clients.ts";
import { readForm, toOAuthResponse, tokenResponse, withStoreFailures } from "../http/responses.ts";
import type { HttpRoute } from "../http/routes.ts";
import {
  completeVerificationUri,
  deviceCredentialOf,
  formatUserCode,
  generateDeviceCode,
  generateDeviceLoginId,
  generateUserCode,
  type DeviceClients,
} from "../secrets/device-codes.ts";
import { DEFAULT_KEY_SCOPES, parseScopes } from "../secrets/keys.ts";
import { digestToken } from "../secrets/tokens.ts";
import type { DeviceLimits, DeviceStore, NewDeviceAuthorization } from "../store/store.ts";
import type { GateServer } from "../ws/data.ts";
import { createApprovalRoutes } from "./device-approval.ts";
import { DEVICE_MAX_FAILURES } from "./device-grant.ts";
import { CLIENT_CHALLENGE, readPublicClient } from "./token-shared.ts";

export { DEVICE_GRANT_TYPE, DEVICE_MAX_FAILURES } from "./device-grant.ts";

export const DEVICE_PATH = "/auth/device";
export const DEVICE_AUTHORIZATION_PATH = "/auth/device_authorization";
/** How long a device's codes live. */
export const DEVICE_TTL_MS = 10 * 60_000;
/** How long a device waits between polls at first (RFC 8628 §3.2's default). */
export const DEVICE_INTERVAL_SECONDS = 5;
/** What a device asking for no scope asks for: what a new key gets by default. */
export const DEVICE_DEFAULT_SCOPES: readonly string[] = DEFAULT_KEY_SCOPES;
export const DEVICE_LIMITS: DeviceLimits = { perAddress: 10, total: 1000, keepEndedMs: 60 * 60_000, maxFailures: DEVICE_MAX_FAILURES };

export interface DeviceRouteOptions {
  readonly store: DeviceStore;
  readonly clients: DeviceClients;
  /** Scopes this deployment knows: a device may ask only for these. */
  readonly knownScopes: () => readonly string[];
  /** PUBLIC_URL: where people open the gate; null: the origin the device's request reached. */
  readonly publicUrl: string | null;
  /** Whether the request reached the gate over TLS (directly or through a trusted proxy). */
  readonly secureTransport: TransportCheck;
  readonly addressOf: AddressResolver;
  readonly guard: Guard;
  readonly audit: AuditLog;
  /** Counts refusals (tokengate_refusals_total), as everywhere the audit log goes. */
  readonly metrics?: GateMetrics | undefined;
  readonly logger: Logger;
  readonly now: Clock;
  /** The console page, served in its device view. */
  readonly page: (request: Request) => Promise<Response>;
  /** A host the routes file gives to a service: approvals are not answered there (its pages share the origin). */
  readonly servesServiceHost: (host: string | null) => boolean;
}

const NO_CLIENT_ID = new GateError("invalid_request", "client_id is required: the name of the device, such as tv-box");
const CLIENT_NOT_ALLOWED = new GateError("invalid_client", "This client_id may not log in as a device here (DEVICE_CLIENTS)", {
  headers: CLIENT_CHALLENGE,
});
const SCOPES_SPELLING = new GateError(
  "invalid_request",
  'Ask for scopes with "scope" (RFC 8628), space-separated, such as data:read ws:connect',
);
const BAD_SCOPE = new GateError("invalid_scope", "scope must be space-separated scope names such as data:read ws:connect");
const EVERY_SCOPE = new GateError("invalid_scope", "A device may not ask for every scope (*): ask for the scopes it needs");
const UNKNOWN_SCOPE = new GateError("invalid_scope", "A device may ask only for scopes this gate knows (GET /admin/api/scopes lists them)");
const BUSY_ADDRESS = new GateError("too_many_requests", "Too many device logins are waiting from this address; finish one or wait", {
  headers: { "retry-after": "60" },
});
const BUSY = new GateError("temporarily_unavailable", "Too many device logins are waiting; try again in a minute", {
  headers: { "retry-after": "60" },
});

/**
 * Where a person approves devices: PUBLIC_URL when set, else the scheme and Host this request
 * reached (the Host passed the gate's allow-list before any route ran). A device that asked by
 * 127.0.0.1 gets a page on 127.0.0.1, which another machine cannot open: set PUBLIC_URL then.
 */
export function verificationUri(options: Pick<DeviceRouteOptions, "publicUrl" | "secureTransport">, request: Request, server: GateServer) {
  const origin = options.publicUrl ?? `${options.secureTransport(request, server) ? "https" : "http"}://${new URL(request.url).host}`;
  return `${origin}${DEVICE_PATH}`;
}

/** The scopes a device asked for: none means the default; `*` and scopes nobody knows are refused. */
function readRequestedScopes(requested: string | undefined, known: readonly string[]): readonly string[] | GateError {
  if (requested === undefined) return DEVICE_DEFAULT_SCOPES;
  const scopes = parseScopes(requested);
  if (scopes === undefined) return BAD_SCOPE;
  if (scopes.includes("*")) return EVERY_SCOPE;
  return scopes.every((scope) => known.includes(scope)) ? scopes : UNKNOWN_SCOPE;
}

/** Stores a new login with fresh codes; a user code already taken is drawn again (odds: one in 10⁷ per try). */
async function storeLogin(options: DeviceRouteOptions, asked: Omit<NewDeviceAuthorization, "deviceCodeHash" | "userCodeHash">) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const deviceCode = generateDeviceCode();
    const userCode = generateUserCode();
    const login = { ...asked, deviceCodeHash: digestToken(deviceCode), userCodeHash: digestToken(userCode) };
    const outcome = await options.store.startDeviceAuthorization(login, DEVICE_LIMITS);
    if (outcome === "started") return { deviceCode, userCode };
    if (outcome === "busy_address") return BUSY_ADDRESS;
    if (outcome === "busy") return BUSY;
  }
  return BUSY;
}

/** The device's request (§3.1), read into what it asks for, or the refusal. */
async function readDeviceRequest(options: DeviceRouteOptions, request: Request) {
  const params = await readForm(request);
  if (params instanceof GateError) return params;
  const clientId = readPublicClient(request, params);
  if (clientId instanceof GateError) return clientId;
  if (clientId === undefined) return NO_CLIENT_ID;
  if (deviceCredentialOf(options.clients, clientId) === undefined) return CLIENT_NOT_ALLOWED;
  // Otherwise ignored, and the device would get the defaults rather than what it meant to ask for.
  if (params.has("scopes")) return SCOPES_SPELLING;
  const scopes = readRequestedScopes(params.get("scope"), options.knownScopes());
  return scopes instanceof GateError ? scopes : { clientId, scopes };
}

/** `POST /auth/device_authorization` (§3.1–3.2). */
async function startDeviceLogin(options: DeviceRouteOptions, request: Request, server: GateServer): Promise<Response> {
  const address = options.addressOf(request, server);
  const refuse = (error: GateError) => toOAuthResponse(settleRefusal(options, { error, address, path: DEVICE_AUTHORIZATION_PATH }));
  const asked = await readDeviceRequest(options, request);
  if (asked instanceof GateError) return refuse(asked);
  const now = options.now();
  const id = generateDeviceLoginId();
  const login = { id, ...asked, clientAddress: address, createdAt: now, expiresAt: now + DEVICE_TTL_MS };
  const codes = await storeLogin(options, { ...login, intervalSeconds: DEVICE_INTERVAL_SECONDS });
  if (codes instanceof GateError) return refuse(codes);
  options.logger.info("device login started", { device: id, client_id: asked.clientId, address, scope: asked.scopes.join(" ") });
  const uri = verificationUri(options, request, server);
  return tokenResponse({
    device_code: codes.deviceCode,
    user_code: formatUserCode(codes.userCode),
    verification_uri: uri,
    verification_uri_complete: completeVerificationUri(uri, codes.userCode),
    expires_in: DEVICE_TTL_MS / 1000,
    interval: DEVICE_INTERVAL_SECONDS,
  });
}

export function createDeviceRoutes(options: DeviceRouteOptions): HttpRoute[] {
  const onStoreFailure = (error: Error) => options.logger.error("store unreachable during a device login", { error: error.message });
  return [
    {
      kind: "http",
      path: DEVICE_AUTHORIZATION_PATH,
      methods: ["POST"],
      scope: null,
      guarded: true,
      handle: withStoreFailures(
        (request: Request, _principal: undefined, server: GateServer) => startDeviceLogin(options, request, server),
        onStoreFailure,
      ),
    },
    {
      kind: "http",
      path: DEVICE_PATH,
      methods: ["GET", "HEAD"],
      scope: null,
      guarded: true,
      handle: (request) => options.page(request),
    },
    ...createApprovalRoutes({ ...options, pageUri: (request, server) => verificationUri(options, request, server) }),
  ];
}
