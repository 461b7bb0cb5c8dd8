/**
 * The routes file (ROUTES_FILE, TOML): the user's own services that tokengate guards. The text is
 * parsed and every entry validated with zod (`parseRoutesFile`, pure); `loadRoutesFile` reads the
 * file for the composition roots. The answer is the routes or every problem at once, each naming
 * the file, the entry and the fix.
 */
import { z } from "zod";
import { hostOf, parseHostPattern } from "../core/origins.ts";
import { parseScopes } from "../secrets/keys.ts";
import { readFileSync } from "node:fs";
import { describeFsError } from "./bootstrap.ts";
import type { ConfigProblem } from "./config.ts";

/** Paths tokengate answers itself: a route may not take them over. */
const RESERVED_PATHS = ["/secure-data", "/ws", "/healthz", "/auth/", "/.well-known/", "/index.js", "/index.css"];

/** The largest body a route may allow (its default): the server's own limit when a routes file is set. */
export const MAX_BODY_BYTES = 1024 ** 4;

const NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const PATH_PREFIX = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;

function isUpstreamUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (
      (url.protocol === "http:" || url.protocol === "https:") &&
      url.username === "" &&
      url.password === "" &&
      url.search === "" &&
      url.hash === ""
    );
  } catch {
    return false;
  }
}

const routeSchema = z.strictObject({
  name: z.string().regex(NAME, 'must be 1 to 40 lower-case letters, digits, - or _, starting with a letter, e.g. name = "grafana"'),
  match: z
    .strictObject({
      path_prefix: z
        .string()
        .regex(PATH_PREFIX, 'must start with / and hold only URL path characters, e.g. path_prefix = "/grafana/"')
        .optional(),
      host: z
        .string()
        .refine((host) => parseHostPattern(host) !== undefined && !host.startsWith("*."), 'must be one host name, e.g. host = "cam.local"')
        .optional(),
    })
    .refine(
      (match) => match.path_prefix !== undefined || match.host !== undefined,
      'needs path_prefix, host or both, e.g. match = { path_prefix = "/grafana/" }',
    ),
  upstream: z
    .string()
    .refine(
      isUpstreamUrl,
      'must be an http:// or https:// URL without credentials, query or fragment, e.g. upstream = "http://127.0.0.1:3000"',
    ),
  scope: z
    .string()
    .refine((scope) => scope !== "*" && parseScopes(scope)?.length === 1, 'must be one scope such as "grafana" or "camera:view"'),
  strip_prefix: z.boolean().default(false),
  websocket: z.boolean().default(false),
  identity_headers: z.boolean().default(true),
  timeout_seconds: z.number().int().min(1).max(3600).default(30),
  max_body_bytes: z.number().int().min(0).max(MAX_BODY_BYTES).default(MAX_BODY_BYTES),
});

const fileSchema = z.strictObject({ route: z.array(routeSchema).max(500).default([]) });

export type ServiceRoute = Readonly<z.output<typeof routeSchema>>;

/** Where in the file a zod issue points, in the words of the file: `route 2 ("grafana") match.host`. */
function placeOf(path: readonly PropertyKey[], entries: unknown): string {
  if (path[0] !== "route" || typeof path[1] !== "number") return path.map(String).join(".") || "the file";
  const entry = Array.isArray(entries) ? (entries[path[1]] as { name?: unknown } | undefined) : undefined;
  const name = typeof entry?.name === "string" ? ` (${JSON.stringify(entry.name.slice(0, 40))})` : "";
  const field = path.slice(2).map(String).join(".");
  return `route ${path[1] + 1}${name}${field === "" ? "" : ` ${field}`}`;
}

/** A path prefix that would answer in place of one of tokengate's own paths. */
function shadows(prefix: string): string | undefined {
  return RESERVED_PATHS.find((reserved) => prefix === "/" || reserved.startsWith(prefix) || prefix.startsWith(reserved));
}

function checkTable(routes: readonly ServiceRoute[], file: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, string>();
  routes.forEach((route, index) => {
    const where = `${file}: route ${index + 1} (${JSON.stringify(route.name)})`;
    const shadowed = route.match.path_prefix === undefined ? undefined : shadows(route.match.path_prefix);
    if (shadowed !== undefined)
      problems.push({
        variable: "ROUTES_FILE",
        message: `${where} match.path_prefix would take over tokengate's own ${shadowed}; choose another prefix`,
      });
    const key = `${route.match.host ?? "*"} ${route.match.path_prefix ?? "/"}`;
    const earlier = seen.get(key) ?? (routes.findIndex((other) => other.name === route.name) < index ? route.name : undefined);
    if (earlier !== undefined)
      problems.push({
        variable: "ROUTES_FILE",
        message: `${where} repeats the name or the match of route "${earlier}"; each route needs its own`,
      });
    seen.set(key, route.name);
  });
  return problems;
}

export type RoutesFileResult =
  { readonly ok: true; readonly routes: readonly ServiceRoute[] } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** The routes file's text → its routes, or every problem (never the file's secrets: it holds none). */
export function parseRoutesFile(text: string, file: string): RoutesFileResult {
  let document: unknown;
  try {
    document = Bun.TOML.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message.replace(/^TOML Parse error: /, "") : "not TOML";
    return {
      ok: false,
      problems: [{ variable: "ROUTES_FILE", message: `${file} is not valid TOML (${why}); see the README's "Protect your own services"` }],
    };
  }
  const parsed = fileSchema.safeParse(document);
  if (!parsed.success) {
    const entries = (document as { route?: unknown }).route;
    return {
      ok: false,
      problems: parsed.error.issues.map((issue) => ({
        variable: "ROUTES_FILE",
        message: `${file}: ${placeOf(issue.path, entries)} ${issue.message}`,
      })),
    };
  }
  const problems = checkTable(parsed.data.route, file);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, routes: parsed.data.route };
}

/**
 * Whether `path` lies under `prefix` at a segment boundary: `/grafana` takes `/grafana` and
 * `/grafana/x`, never `/grafana..` or `/grafanax` (which could be glued onto the upstream's base
 * path as a dot segment once the prefix is stripped).
 */
export function isUnderPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith("/") || path.length === prefix.length || path.charCodeAt(prefix.length) === 47; // "/"
}

/** The route that serves a request (host and path): the longest matching prefix; a host route matches every path. */
export function findServiceRoute(routes: readonly ServiceRoute[], hostHeader: string | null, path: string): ServiceRoute | undefined {
  const host = hostHeader === null ? undefined : hostOf(hostHeader);
  let best: ServiceRoute | undefined;
  for (const route of routes) {
    const { host: wanted, path_prefix: prefix } = route.match;
    if (wanted !== undefined && wanted.toLowerCase() !== host) continue;
    if (prefix !== undefined && !isUnderPrefix(path, prefix)) continue;
    if (best === undefined || (prefix?.length ?? 0) > (best.match.path_prefix?.length ?? 0)) best = route;
  }
  return best;
}

/** Whether a route is matched by this Host header's name (the operator named it). */
export function routesServeHost(routes: readonly ServiceRoute[], hostHeader: string | null): boolean {
  if (hostHeader === null) return false;
  const name = hostOf(hostHeader);
  return routes.some((route) => route.match.host !== undefined && route.match.host.toLowerCase() === name);
}

/** Reads and parses ROUTES_FILE; a file that cannot be read is a problem naming it, like any other. */
export function loadRoutesFile(file: string | null): RoutesFileResult {
  if (file === null) return { ok: true, routes: [] };
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return {
      ok: false,
      problems: [
        {
          variable: "ROUTES_FILE",
          message: `names ${file}, which ${describeFsError(error)}; point it at the routes file (TOML) this user can read`,
        },
      ],
    };
  }
  return parseRoutesFile(text, file);
}

/**
 * The routes in force. The routes file may change while tokengate runs: a valid edit replaces the
 * whole table at once (readers take `routes` per request, so a request sees one table or the
 * other, never a mix); an invalid one leaves it as it was.
 */
export class RouteTable {
  #routes: readonly ServiceRoute[];

  constructor(routes: readonly ServiceRoute[]) {
    this.#routes = routes;
  }

  get routes(): readonly ServiceRoute[] {
    return this.#routes;
  }

  replace(routes: readonly ServiceRoute[]): void {
    this.#routes = routes;
  }
}
