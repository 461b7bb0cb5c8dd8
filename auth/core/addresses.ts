/**
 * Client addresses: matching IPs against configured lists (exact addresses and IPv4 CIDRs), and
 * finding the real client behind trusted proxies. Pure. `X-Forwarded-For` is only believed when
 * the peer itself is a trusted proxy; otherwise anyone could pick an address to hide behind.
 */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function ipv4ToNumber(address: string): number | undefined {
  const match = IPV4.exec(address);
  if (match === null) return undefined;
  const parts = match.slice(1, 5).map(Number);
  if (parts.some((part) => part > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** `::ffff:192.168.1.5` (how Bun reports IPv4 on a dual-stack socket) → `192.168.1.5`. */
export function normalizeAddress(address: string): string {
  const lower = address.trim().toLowerCase();
  return lower.startsWith("::ffff:") && IPV4.test(lower.slice(7)) ? lower.slice(7) : lower;
}

/** An address or IPv4 CIDR as written in config, or `undefined` if it is neither. */
export function parseAddressPattern(text: string): string | undefined {
  const value = text.trim().toLowerCase();
  const [base, bits, extra] = value.split("/");
  if (extra !== undefined || base === undefined) return undefined;
  if (bits !== undefined) {
    const width = Number(bits);
    return ipv4ToNumber(base) !== undefined && /^\d{1,2}$/.test(bits) && width <= 32 ? value : undefined;
  }
  return ipv4ToNumber(base) !== undefined || /^[0-9a-f:]+$/.test(base) ? value : undefined;
}

export interface AddressList {
  has(address: string): boolean;
}

export function createAddressList(patterns: readonly string[]): AddressList {
  const exact = new Set<string>();
  const ranges: Array<{ base: number; mask: number }> = [];
  for (const pattern of patterns) {
    const [base, bits] = pattern.split("/");
    if (bits === undefined) {
      exact.add(normalizeAddress(base!));
      continue;
    }
    const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
    ranges.push({ base: (ipv4ToNumber(base!)! & mask) >>> 0, mask });
  }
  return {
    has(address) {
      const normalized = normalizeAddress(address);
      if (exact.has(normalized)) return true;
      const number = ipv4ToNumber(normalized);
      return number !== undefined && ranges.some((range) => (number & range.mask) >>> 0 === range.base);
    },
  };
}

/** The eight groups of an IPv6 address (`::` expanded, an embedded IPv4 tail converted), or `undefined`. */
export function expandIpv6(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const v4 = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (v4 !== null) {
    const value = ipv4ToNumber(v4[2]!);
    if (value === undefined) return undefined;
    text = `${v4[1]}${(value >>> 16).toString(16)}:${(value & 0xffff).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2 || !/^[0-9a-f:]+$/.test(text)) return undefined;
  const parse = (part: string) =>
    part === "" ? [] : part.split(":").map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? parseInt(group, 16) : NaN));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 ? missing < 1 : missing !== 0) || [...head, ...tail].some(Number.isNaN)) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** A bare IPv4 or IPv6 address, normalized; `undefined` for anything else. */
export function parseIp(text: string): string | undefined {
  const address = normalizeAddress(text);
  if (ipv4ToNumber(address) !== undefined) return address;
  return address.includes(":") && expandIpv6(address) !== undefined ? address : undefined;
}

/**
 * One hop as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::7`, `[2001:db8::7]` or
 * `[2001:db8::7]:443` → the address; `undefined` for anything else (a name, junk, `unknown`).
 */
export function parseHop(text: string): string | undefined {
  const hop = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(hop);
  if (bracketed !== null) return bracketed[1]!.includes(":") ? parseIp(bracketed[1]!) : undefined;
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop);
  return parseIp(withPort === null ? hop : withPort[1]!);
}

/** `X-Forwarded-For: a, b, c` → its hops, or `undefined` if any hop is not an address. */
export function parseForwardedFor(header: string): string[] | undefined {
  const hops = header.split(",").map(parseHop);
  return hops.every((hop) => hop !== undefined) ? (hops as string[]) : undefined;
}

export interface ForwardedElement {
  readonly for: string;
  readonly proto: string | undefined;
}

/** One `key=value` or `key="quoted value"` pair of RFC 7239 (§4), lower-cased key. */
function parseForwardedPair(pair: string): [string, string] | undefined {
  const match = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s",;]*))\s*$/.exec(pair);
  if (match === null) return undefined;
  return [match[1]!.toLowerCase(), match[2] === undefined ? match[3]! : match[2].replace(/\\(.)/g, "$1")];
}

/**
 * RFC 7239 `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"` → one element per
 * hop, or `undefined` when malformed or when a hop's `for` is not an address (`unknown` and
 * obfuscated names included: the gate cannot count or ban those).
 */
export function parseForwarded(header: string): ForwardedElement[] | undefined {
  const elements: ForwardedElement[] = [];
  for (const element of header.split(",")) {
    const fields = new Map<string, string>();
    for (const pair of element.split(";")) {
      const parsed = parseForwardedPair(pair);
      if (parsed === undefined || fields.has(parsed[0])) return undefined;
      fields.set(parsed[0], parsed[1]);
    }
    const address = fields.has("for") ? parseHop(fields.get("for")!) : undefined;
    if (address === undefined) return undefined;
    elements.push({ for: address, proto: fields.get("proto")?.toLowerCase() });
  }
  return elements;
}

/**
 * The rightmost hop that is not a trusted proxy: entries left of it are claims the client made.
 * When every hop is a trusted proxy, the leftmost is where the request started.
 */
function firstUntrusted(peer: string, hops: readonly string[], trustedProxies: AddressList): string {
  for (let index = hops.length - 1; index >= 0; index--) if (!trustedProxies.has(hops[index]!)) return hops[index]!;
  return hops[0] ?? peer;
}

/** What the forwarding headers of a request say, as read by `clientAddress`. */
export interface ForwardingHeaders {
  readonly forwardedFor: string | null;
  readonly forwarded: string | null;
}

/**
 * The client behind the connection: the peer itself, or, when the peer is a trusted proxy, the
 * rightmost forwarded hop that is not a trusted proxy. `undefined` when a trusted proxy sent
 * headers that cannot be read, or `Forwarded` and `X-Forwarded-For` that name different clients:
 * the caller refuses such a request (400) rather than guess, and never takes it for the proxy.
 */
export function clientAddress(peer: string, headers: ForwardingHeaders, trustedProxies: AddressList): string | undefined {
  const direct = normalizeAddress(peer);
  if ((headers.forwardedFor === null && headers.forwarded === null) || !trustedProxies.has(direct)) return direct;
  const legacy = headers.forwardedFor === null ? undefined : parseForwardedFor(headers.forwardedFor);
  const standard = headers.forwarded === null ? undefined : parseForwarded(headers.forwarded);
  if ((headers.forwardedFor !== null && legacy === undefined) || (headers.forwarded !== null && standard === undefined)) return undefined;
  const fromLegacy = legacy === undefined ? undefined : firstUntrusted(direct, legacy, trustedProxies);
  const fromStandard =
    standard === undefined
      ? undefined
      : firstUntrusted(
          direct,
          standard.map((element) => element.for),
          trustedProxies,
        );
  if (fromLegacy !== undefined && fromStandard !== undefined && fromLegacy !== fromStandard) return undefined;
  return fromStandard ?? fromLegacy;
}

/**
 * The guard's bucket for an address: IPv4 as is; a global IPv6 address per /64, since one client
 * usually holds a whole /64 and could otherwise take a fresh address for every guess. Link-local
 * (fe80::/10), unique-local (fc00::/7) and loopback addresses stay whole: every device of a LAN
 * shares those /64s, and one guesser must not lock the whole LAN out (the per-key and per-user
 * counters still catch one that rotates addresses).
 */
export function guardBucketOf(address: string): string {
  const normalized = normalizeAddress(address);
  if (!normalized.includes(":")) return normalized;
  const groups = expandIpv6(normalized);
  if (groups === undefined || isLanIpv6(groups)) return normalized;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(":")}::/64`;
}

function isLanIpv6(groups: readonly number[]): boolean {
  const first = groups[0]!;
  const loopback = groups.every((group, index) => group === (index === 7 ? 1 : 0));
  return (first & 0xffc0) === 0xfe80 || (first & 0xfe00) === 0xfc00 || loopback;
}

// RFC 1918 private ranges, loopback, IPv4 link-local and RFC 6598 shared space (carrier NAT,
// also what overlay VPNs such as Tailscale hand out).
const LOCAL_IPV4 = createAddressList(["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]);

/**
 * Whether an address belongs to this machine or a local network: the private IPv4 ranges,
 * IPv6 loopback, unique-local (fc00::/7) and link-local (fe80::/10). What first-run pairing
 * accepts, so a device that is port-forwarded to the internet cannot be paired from outside.
 */
export function isLocalNetwork(address: string): boolean {
  const normalized = normalizeAddress(address);
  if (LOCAL_IPV4.has(normalized)) return true;
  if (ipv4ToNumber(normalized) !== undefined || !/^[0-9a-f:]+$/.test(normalized)) return false;
  return normalized === "::1" || /^f[cd][0-9a-f]{2}:/.test(normalized) || /^fe[89ab][0-9a-f]:/.test(normalized);
}

/** What `os.networkInterfaces()` reports per address (only the fields used here). */
export interface InterfaceAddress {
  readonly address: string;
  readonly family: string;
  readonly internal: boolean;
}

/**
 * The URLs a browser uses to reach a server listening on `host`: every non-internal IPv4
 * address for a wildcard bind, else the bound address itself.
 */
export function listReachableUrls(scheme: string, host: string, port: number, interfaces: readonly InterfaceAddress[]): string[] {
  if (host !== "0.0.0.0" && host !== "::") return [`${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}/`];
  return interfaces.filter((net) => !net.internal && net.family === "IPv4").map((net) => `${scheme}://${net.address}:${port}/`);
}

/**
 * Why binding `host:port` failed, in words, with the variable to change; `undefined` for codes
 * without a plain explanation. Said the same way at startup and by `tokengate doctor`. The message
 * reads after the variable's name ("PORT 8000 on 0.0.0.0 is already in use …").
 */
export function explainListenFailure(
  code: string | undefined,
  host: string,
  port: number,
): { variable: "HOST" | "PORT"; message: string } | undefined {
  switch (code) {
    case "EADDRINUSE":
      return {
        variable: "PORT",
        message: `${port} on ${host} is already in use by another program (perhaps another tokengate); stop it or choose another PORT`,
      };
    case "EACCES":
      return { variable: "PORT", message: `${port} is a privileged port this user may not listen on; choose a PORT above 1023` };
    case "EADDRNOTAVAIL":
      return {
        variable: "HOST",
        message: `${host} is not an address of this device; use 0.0.0.0 (all addresses) or one of its own addresses`,
      };
    default:
      return undefined;
  }
}
