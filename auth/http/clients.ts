/**
 * Facts about the client behind a request that need the live connection: its address (trusted
 * proxies resolved) and whether a password may travel over its transport.
 */
import { clientAddress, normalizeAddress, parseForwarded, type AddressList } from "../core/addresses.ts";
import { GateError } from "../core/errors.ts";
import type { GateServer } from "../ws/data.ts";

/** The client address of a request: the peer, or the forwarded client when the peer is a trusted proxy. */
export type AddressResolver = (request: Request, server: GateServer) => string;

/** The address of the connection's peer (the proxy, when there is one), or `-` when Bun cannot tell. */
export function peerAddress(request: Request, server: GateServer): string {
  return server.requestIP(request)?.address ?? "-";
}

/** Whether the connection's peer is one of the trusted proxies, the only ones whose forwarding headers are read. */
export function isTrustedPeer(request: Request, server: GateServer, trustedProxies: AddressList): boolean {
  return trustedProxies.has(normalizeAddress(peerAddress(request, server)));
}

/** Stands for a client whose trusted proxy sent unreadable forwarding headers: not loopback, not local, never exempt. */
export const UNREADABLE_CLIENT = "unreadable-forwarded-client";

const forwardingOf = (request: Request) => ({
  forwardedFor: request.headers.get("x-forwarded-for"),
  forwarded: request.headers.get("forwarded"),
});

export function createAddressResolver(trustedProxies: AddressList): AddressResolver {
  return (request, server) => clientAddress(peerAddress(request, server), forwardingOf(request), trustedProxies) ?? UNREADABLE_CLIENT;
}

const BAD_FORWARDING = new GateError(
  "invalid_request",
  "The proxy's X-Forwarded-For or Forwarded header does not name the client's address (or the two disagree); fix the proxy's configuration",
);

/** A request whose trusted proxy sent unreadable forwarding headers, or `undefined` when they are fine. */
export type ForwardingCheck = (request: Request, server: GateServer) => GateError | undefined;

/** Without trusted proxies forwarding headers are never read, so there is nothing to check. */
export function createForwardingCheck(trustedProxies: AddressList): ForwardingCheck {
  return (request, server) => {
    // Runs on every request once TRUSTED_PROXIES is set: nothing is allocated unless a header is there.
    const forwardedFor = request.headers.get("x-forwarded-for");
    const forwarded = request.headers.get("forwarded");
    if (forwardedFor === null && forwarded === null) return undefined;
    return clientAddress(peerAddress(request, server), { forwardedFor, forwarded }, trustedProxies) === undefined
      ? BAD_FORWARDING
      : undefined;
  };
}

const isLoopback = (address: string) => address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);

/** Whether a password may be accepted on this request: it came over TLS, or never left this machine. */
export type TransportCheck = (request: Request, server: GateServer) => boolean;

/** The scheme a trusted TLS-terminating proxy says the client used: RFC 7239 `proto`, else X-Forwarded-Proto. */
function forwardedProto(request: Request): string | undefined {
  const forwarded = request.headers.get("forwarded");
  const standard = (forwarded === null ? undefined : parseForwarded(forwarded))?.at(-1)?.proto;
  const legacy = request.headers.get("x-forwarded-proto")?.trim().toLowerCase();
  // A proxy that writes one of the two passes the other through as the client sent it: when both
  // are there they must agree, so a client's own `Forwarded: proto=https` cannot stand for TLS.
  if (standard !== undefined && legacy !== undefined && standard !== legacy) return undefined;
  return legacy ?? standard;
}

/** Whether the client reached us over TLS: directly, or through a TLS-terminating proxy we trust that says so. */
export function createSecureTransportCheck(trustedProxies: AddressList): TransportCheck {
  return (request, server) =>
    request.url.startsWith("https:") || (isTrustedPeer(request, server, trustedProxies) && forwardedProto(request) === "https");
}

export function createTransportCheck(trustedProxies: AddressList, addressOf: AddressResolver): TransportCheck {
  const secure = createSecureTransportCheck(trustedProxies);
  return (request, server) => secure(request, server) || isLoopback(addressOf(request, server));
}
