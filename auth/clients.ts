/**
 * Facts about the client behind a request that need the live connection: its address (trusted
 * proxies resolved) and whether a password may travel over its transport.
 */
import type { Server } from "bun";
import { clientAddress, normalizeAddress, type AddressList } from "./addresses.ts";
import type { WsData } from "./ws.ts";

/** The client address of a request: the peer, or the forwarded client when the peer is a trusted proxy. */
export type AddressResolver = (request: Request, server: Server<WsData>) => string;

export function createAddressResolver(trustedProxies: AddressList): AddressResolver {
  return (request, server) =>
    clientAddress(server.requestIP(request)?.address ?? "-", request.headers.get("x-forwarded-for"), trustedProxies);
}

const isLoopback = (address: string) => address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);

/** Whether a password may be accepted on this request: it came over TLS, or never left this machine. */
export type TransportCheck = (request: Request, server: Server<WsData>) => boolean;

export function createTransportCheck(trustedProxies: AddressList, addressOf: AddressResolver): TransportCheck {
  return (request, server) => {
    if (request.url.startsWith("https:")) return true;
    const peer = normalizeAddress(server.requestIP(request)?.address ?? "-");
    // A TLS-terminating proxy we trust tells us how the client reached it.
    if (trustedProxies.has(peer) && request.headers.get("x-forwarded-proto")?.trim().toLowerCase() === "https") return true;
    return isLoopback(addressOf(request, server));
  };
}
