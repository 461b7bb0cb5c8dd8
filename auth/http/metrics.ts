/**
 * `GET /metrics`: the Prometheus scrape. A client on this machine (loopback) or in METRICS_ALLOW,
 * by its address with trusted proxies resolved, is answered as it is; anyone else needs a credential
 * with `metrics:read`, through the gate like any protected route (401, 403, bans, audit). Also the
 * process's own figures: resident memory read at each scrape, event-loop lag sampled by a timer.
 */
import { createAddressList } from "../core/addresses.ts";
import type { GateMetrics } from "../core/gate-metrics.ts";
import { EXPOSITION_TYPE } from "../core/metrics.ts";
import type { AddressResolver } from "./clients.ts";
import type { PublicRoute } from "./routes.ts";

export const METRICS_PATH = "/metrics";
/** What a key or a role needs to scrape from an address that is not allowed by itself. */
export const METRICS_SCOPE = "metrics:read";

/** This machine may always scrape. */
const LOOPBACK = ["127.0.0.0/8", "::1"];

// The exposition is text, not a page: the same hardening as every JSON answer.
const HEADERS = new Headers({
  "content-type": EXPOSITION_TYPE,
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
});

export interface MetricsRouteOptions {
  readonly metrics: GateMetrics;
  /** METRICS_ALLOW: addresses and IPv4 CIDRs served without a credential, besides loopback. */
  readonly allow: readonly string[];
  readonly addressOf: AddressResolver;
}

export function createMetricsRoute(options: MetricsRouteOptions): PublicRoute {
  const allowed = createAddressList([...LOOPBACK, ...options.allow]);
  const scrape = (request: Request) =>
    new Response(request.method === "HEAD" ? null : options.metrics.registry.render(), { headers: HEADERS });
  const route = { kind: "http", path: METRICS_PATH, methods: ["GET", "HEAD"], handle: scrape } as const;
  return {
    ...route,
    scope: null,
    // A routes-file service on its own host (or under a /metrics prefix) keeps its own /metrics.
    yieldsToHostRoutes: true,
    restricted: {
      admits: (request, server) => allowed.has(options.addressOf(request, server)),
      otherwise: { ...route, scope: METRICS_SCOPE },
    },
  };
}

/** How often the event loop's lag is sampled. */
const LAG_SAMPLE_MS = 500;

/**
 * Samples the process for the scrape: RSS when it is rendered, and the event loop's lag (how late a
 * 500 ms timer fires) on an unref'd timer, so it never keeps the process alive. Returns the stop.
 */
export function startProcessSampler(metrics: GateMetrics): () => void {
  metrics.sample(() => metrics.process.rss.set(process.memoryUsage.rss()));
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // A chain of timeouts, each armed when the previous fired: an interval would catch up after a
  // stall and report the lag as smaller than it was.
  const arm = () => {
    const due = performance.now() + LAG_SAMPLE_MS;
    timer = setTimeout(() => {
      metrics.process.eventLoopLag.observe(Math.max(0, performance.now() - due) / 1000);
      if (!stopped) arm();
    }, LAG_SAMPLE_MS);
    timer.unref();
  };
  arm();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
