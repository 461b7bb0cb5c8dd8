/**
 * Which Host and Origin headers the gate answers. Pure.
 * - Host: DNS rebinding makes a hostile page's own hostname resolve to this box; answering only
 *   names we know (IP literals, localhost, the machine's name, *.local, ALLOWED_HOSTS) defeats it.
 * - Origin: a page on another origin must not open an authenticated WebSocket with the user's
 *   ambient credentials (CSWSH), nor read responses, unless that origin is allowed.
 */

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOSTNAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The lower-cased host of a Host header (port and brackets removed), or `undefined` if malformed. */
export function hostOf(header: string): string | undefined {
  const value = header.trim().toLowerCase();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end === -1) return undefined;
    const rest = value.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    const inner = value.slice(1, end);
    return /^[0-9a-f:.]+$/.test(inner) && inner.includes(":") ? `[${inner}]` : undefined;
  }
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(value);
  if (match === null) return undefined;
  const host = match[1]!.replace(/\.$/, "");
  return IPV4.test(host) || HOSTNAME.test(host) ? host : undefined;
}

/** `gate.lan` matches itself; `*.lan` matches any name under `lan`. */
export function parseHostPattern(text: string): string | undefined {
  const value = text.trim().toLowerCase();
  const bare = value.startsWith("*.") ? value.slice(2) : value;
  return HOSTNAME.test(bare) || IPV4.test(bare) ? value : undefined;
}

export interface HostPolicy {
  /** Whether to answer a request with this Host header (null: HTTP/1.0 client without Host). */
  allows(header: string | null): boolean;
}

export function createHostPolicy(options: { readonly machineHostname: string; readonly patterns: readonly string[] }): HostPolicy {
  const exact = new Set(["localhost", options.machineHostname.toLowerCase(), `${options.machineHostname.toLowerCase()}.local`]);
  const suffixes = [".local", ".localhost"];
  for (const pattern of options.patterns) {
    if (pattern.startsWith("*.")) suffixes.push(pattern.slice(1));
    else exact.add(pattern);
  }
  const seen = new Map<string, boolean>();
  const decide = (header: string): boolean => {
    const host = hostOf(header);
    if (host === undefined) return false;
    if (host.startsWith("[") || IPV4.test(host) || exact.has(host)) return true;
    return suffixes.some((suffix) => host.endsWith(suffix));
  };
  return {
    allows(header) {
      if (header === null) return true;
      let verdict = seen.get(header);
      if (verdict === undefined) {
        verdict = decide(header);
        // Remember a bounded number of answers: the Host header is the same on nearly every request.
        if (seen.size < 256) seen.set(header, verdict);
      }
      return verdict;
    },
  };
}

/** `https://dash.lan:8443` → its canonical origin; `undefined` for anything that is not an origin. */
export function parseOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  if (url.username !== "" || url.password !== "" || (url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    return undefined;
  }
  return url.origin;
}

export interface OriginPolicy {
  /** Whether a browser page at `origin` may use this server (null: not a browser, allowed). */
  allows(origin: string | null, hostHeader: string | null): boolean;
}

export function createOriginPolicy(allowed: readonly string[]): OriginPolicy {
  const listed = new Set(allowed);
  return {
    allows(origin, hostHeader) {
      if (origin === null) return true;
      if (listed.has(origin)) return true;
      // Same origin: the page was served by this very host (scheme aside, the host:port match).
      const canonical = parseOrigin(origin);
      if (canonical === undefined || hostHeader === null) return false;
      return new URL(canonical).host === hostHeader.trim().toLowerCase();
    },
  };
}
