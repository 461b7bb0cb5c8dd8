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
      return number !== undefined && ranges.some((range) => ((number & range.mask) >>> 0) === range.base);
    },
  };
}

/**
 * The client behind the connection: the peer itself, or, when the peer is a trusted proxy, the
 * rightmost `X-Forwarded-For` entry that is not a trusted proxy (entries left of it are claims
 * made by whoever the proxy talked to, and can be forged).
 */
export function clientAddress(peer: string, forwardedFor: string | null, trustedProxies: AddressList): string {
  const direct = normalizeAddress(peer);
  if (forwardedFor === null || !trustedProxies.has(direct)) return direct;
  const hops = forwardedFor.split(",").map((hop) => normalizeAddress(hop));
  for (let index = hops.length - 1; index >= 0; index--) {
    const hop = hops[index]!;
    if (hop === "" || !(ipv4ToNumber(hop) !== undefined || /^[0-9a-f:]+$/.test(hop))) return direct;
    if (!trustedProxies.has(hop)) return hop;
  }
  return direct;
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
 * without a plain explanation. Said the same way at startup and by `tokengate doctor`.
 */
export function explainListenFailure(code: string | undefined, host: string, port: number): { variable: "HOST" | "PORT"; message: string } | undefined {
  switch (code) {
    case "EADDRINUSE":
      return { variable: "PORT", message: `port ${port} on ${host} is already in use, taken by another program; stop it or choose another PORT` };
    case "EACCES":
      return { variable: "PORT", message: `this user may not listen on port ${port}; choose a PORT above 1023` };
    case "EADDRNOTAVAIL":
      return { variable: "HOST", message: `${host} is not an address of this device; use 0.0.0.0 (all addresses) or one of its own addresses` };
    default:
      return undefined;
  }
}
