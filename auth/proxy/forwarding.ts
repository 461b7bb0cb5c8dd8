/**
 * What a proxied service is told, and what the client gets back. Toward the service: hop-by-hop
 * headers removed (RFC 9110 §7.6.1, with those the Connection header names), the gate's credential
 * removed (X-Auth-Token always, Authorization only when it carried the gate's token), every
 * client-made identity header removed and the gate's own set, X-Forwarded-For/-Proto/-Host and
 * RFC 7239 `Forwarded` set (a trusted proxy's chain kept and extended). Back to the client: the
 * service's answer minus hop-by-hop headers. Pure.
 */
import type { Principal } from "../core/principal.ts";
import { FOREIGN_IDENTITY_HEADERS, IDENTITY_HEADER_PREFIX, setIdentityHeaders } from "../forward/identity.ts";

const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Set here from what the gate saw: a client's own values would be believed by the service. */
const FORWARDING: ReadonlySet<string> = new Set([
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-uri",
  "x-forwarded-method",
  "x-original-uri",
  "x-original-method",
  "x-real-ip",
  "forwarded",
]);

/** Made fresh by the connection to the service (its own Host, its own handshake, its own 100-continue). */
const PER_CONNECTION: ReadonlySet<string> = new Set([
  "host",
  "expect",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "sec-websocket-accept",
]);

export interface ForwardingFacts {
  /** The address that connected to the gate. */
  readonly peer: string;
  /** Whether that peer is a trusted proxy: its X-Forwarded-* and Forwarded are kept and extended. */
  readonly peerTrusted: boolean;
  readonly proto: "http" | "https";
  /** The Host the client asked for. */
  readonly host: string | null;
  /** The gate's credential came in Authorization (else Authorization is the service's own and passes). */
  readonly authorizationIsOurs: boolean;
  /** Who the gate let through, told to the service when the route has identity_headers. */
  readonly identity: Principal | undefined;
}

/** Header names a Connection header lists: hop-by-hop for this one message (RFC 9110 §7.6.1). */
function connectionOptions(value: string | null): ReadonlySet<string> | undefined {
  if (value === null) return undefined;
  return new Set(value.split(",").map((name) => name.trim().toLowerCase()));
}

function isWithheld(name: string, named: ReadonlySet<string> | undefined, facts: ForwardingFacts): boolean {
  return (
    HOP_BY_HOP.has(name) ||
    PER_CONNECTION.has(name) ||
    FORWARDING.has(name) ||
    name === "x-auth-token" ||
    name.startsWith(IDENTITY_HEADER_PREFIX) ||
    FOREIGN_IDENTITY_HEADERS.has(name) ||
    (name === "authorization" && facts.authorizationIsOurs) ||
    named?.has(name) === true
  );
}

/** `for=` / `host=` of a Forwarded element: IPv6 and anything not a plain token is quoted (RFC 7239 §4, §6). */
function forwardedNode(value: string): string {
  const node = value.includes(":") && !value.includes("[") && value.split(":").length > 2 ? `[${value}]` : value;
  return /^[A-Za-z0-9.!#$%&'*+^_`|~-]+$/.test(node) ? node : `"${node.replace(/["\\]/g, "")}"`;
}

function setForwarding(out: Headers, incoming: Headers, facts: ForwardingFacts): void {
  const kept = (name: string) => (facts.peerTrusted ? incoming.get(name) : null);
  const chain = kept("x-forwarded-for");
  out.set("x-forwarded-for", chain === null ? facts.peer : `${chain}, ${facts.peer}`);
  out.set("x-forwarded-proto", kept("x-forwarded-proto") ?? facts.proto);
  const host = kept("x-forwarded-host") ?? facts.host;
  if (host !== null) out.set("x-forwarded-host", host);
  let element = `for=${forwardedNode(facts.peer)};proto=${facts.proto}`;
  if (facts.host !== null) element += `;host=${forwardedNode(facts.host)}`;
  const earlier = kept("forwarded");
  out.set("forwarded", earlier === null ? element : `${earlier}, ${element}`);
}

/** The headers the service receives for a client's request. */
export function upstreamRequestHeaders(incoming: Headers, facts: ForwardingFacts): Headers {
  const named = connectionOptions(incoming.get("connection"));
  const out = new Headers();
  for (const [name, value] of incoming) if (!isWithheld(name, named, facts)) out.append(name, value);
  setForwarding(out, incoming, facts);
  if (facts.identity !== undefined) setIdentityHeaders(out, facts.identity);
  return out;
}

/** The headers the client receives with the service's answer. */
export function clientResponseHeaders(incoming: Headers): Headers {
  const named = connectionOptions(incoming.get("connection"));
  const out = new Headers();
  for (const [name, value] of incoming) {
    if (HOP_BY_HOP.has(name) || named?.has(name) === true) continue;
    if (name === "set-cookie") continue;
    out.append(name, value);
  }
  // Headers iteration joins repeated Set-Cookie lines with ", ", which breaks cookies with dates.
  for (const cookie of incoming.getSetCookie()) out.append("set-cookie", cookie);
  return out;
}

/** The subprotocols to offer the service: the client's, minus the gate's own `tokengate` entries. */
export function serviceSubprotocols(header: string | null): string[] {
  if (header === null) return [];
  return header
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "" && name !== "tokengate" && !name.startsWith("tokengate."));
}
