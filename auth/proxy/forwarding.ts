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
import { mayHoldSessionCookie, setsSessionCookie, withoutSessionCookies } from "../secrets/sessions.ts";
import { withoutTokenParam } from "./target.ts";

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
  "x-forwarded-prefix",
  "x-forwarded-server",
  "x-forwarded-ssl",
  "x-forwarded-scheme",
  "x-client-ip",
  "true-client-ip",
  "cf-connecting-ip",
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
  // CGI, WSGI and PHP read `X_Auth_User` as `X-Auth-User`: judge the name as such a server would.
  if (name.includes("_")) return isWithheldName(name.replaceAll("_", "-"), named, facts) || named?.has(name) === true;
  return isWithheldName(name, named, facts);
}

function isWithheldName(name: string, named: ReadonlySet<string> | undefined, facts: ForwardingFacts): boolean {
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

/**
 * A page opened as `/app/?token=…` names that URL in the Referer of its own requests: the service
 * must not learn the key from it. The fragment goes too (browsers never send one; a client might).
 */
function refererWithoutToken(referer: string): string {
  const hash = referer.indexOf("#");
  const url = hash === -1 ? referer : referer.slice(0, hash);
  const mark = url.indexOf("?");
  if (mark === -1) return url;
  const query = withoutTokenParam(url.slice(mark + 1));
  return query === "" ? url.slice(0, mark) : `${url.slice(0, mark)}?${query}`;
}

/** What a trusted proxy in front said about the hops before it (kept and extended), read before they are removed. */
interface EarlierHops {
  readonly chain: string | null;
  readonly proto: string | null;
  readonly host: string | null;
  readonly forwarded: string | null;
}

function readEarlierHops(headers: Headers, facts: ForwardingFacts): EarlierHops | undefined {
  if (!facts.peerTrusted) return undefined;
  return {
    chain: headers.get("x-forwarded-for"),
    proto: headers.get("x-forwarded-proto"),
    host: headers.get("x-forwarded-host"),
    forwarded: headers.get("forwarded"),
  };
}

function setForwarding(out: Headers, earlier: EarlierHops | undefined, facts: ForwardingFacts): void {
  const chain = earlier?.chain ?? null;
  out.set("x-forwarded-for", chain === null ? facts.peer : `${chain}, ${facts.peer}`);
  out.set("x-forwarded-proto", earlier?.proto ?? facts.proto);
  const host = earlier?.host ?? facts.host;
  if (host !== null) out.set("x-forwarded-host", host);
  let element = `for=${forwardedNode(facts.peer)};proto=${facts.proto}`;
  if (facts.host !== null) element += `;host=${forwardedNode(facts.host)}`;
  const before = earlier?.forwarded ?? null;
  out.set("forwarded", before === null ? element : `${before}, ${element}`);
}

/**
 * A request's headers made into those the service receives, in place: Bun's fetch sends a
 * request's own header list much faster than a Headers object built in JavaScript (measured: about
 * a third of the proxy's cost per request), and the gate has read all it needs from them by now.
 */
export function rewriteRequestHeaders(headers: Headers, facts: ForwardingFacts): Headers {
  const named = connectionOptions(headers.get("connection"));
  const withheld: string[] = [];
  for (const name of headers.keys()) if (isWithheld(name, named, facts)) withheld.push(name);
  const earlier = readEarlierHops(headers, facts);
  for (const name of withheld) headers.delete(name);
  const referer = headers.get("referer");
  if (referer !== null && /t|%/i.test(referer)) headers.set("referer", refererWithoutToken(referer));
  const cookie = headers.get("cookie");
  if (mayHoldSessionCookie(cookie)) {
    // The sign-in cookie is the gate's credential: the service gets the page's other cookies only.
    const kept = withoutSessionCookies(cookie!);
    if (kept === undefined) headers.delete("cookie");
    else headers.set("cookie", kept);
  }
  setForwarding(headers, earlier, facts);
  if (facts.identity !== undefined) setIdentityHeaders(headers, facts.identity);
  return headers;
}

/** The same, on a copy (the WebSocket client to the service takes its own). */
export function upstreamRequestHeaders(incoming: Headers, facts: ForwardingFacts): Headers {
  return rewriteRequestHeaders(new Headers(incoming), facts);
}

/**
 * The service's answer made fit for the client, in place (the answer then streams to the client
 * as Bun received it; a copied Response would pass every chunk through a JavaScript stream).
 */
export function stripResponseHeaders(headers: Headers): void {
  const named = connectionOptions(headers.get("connection"));
  for (const name of HOP_BY_HOP) if (headers.has(name)) headers.delete(name);
  if (named !== undefined) for (const name of named) headers.delete(name);
  if (headers.has("set-cookie")) withholdSessionCookies(headers);
}

/** A service may not set or clear the gate's sign-in cookie on its host (session fixation through a service). */
function withholdSessionCookies(headers: Headers): void {
  const all = headers.getSetCookie();
  if (!all.some(setsSessionCookie)) return;
  headers.delete("set-cookie");
  for (const value of all) if (!setsSessionCookie(value)) headers.append("set-cookie", value);
}

const PROTOCOL_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The subprotocols to offer the service: the client's, minus the gate's own `tokengate` entries;
 * `undefined` for a list the service's handshake would fail on (a repeated name, one that is not an
 * HTTP token), which is the client's mistake and must not read as the service being down.
 */
export function serviceSubprotocols(header: string | null): string[] | undefined {
  if (header === null) return [];
  const names = header.split(",").map((name) => name.trim());
  if (names.some((name) => !PROTOCOL_NAME.test(name)) || new Set(names).size !== names.length) return undefined;
  return names.filter((name) => name !== "tokengate" && !name.startsWith("tokengate."));
}
