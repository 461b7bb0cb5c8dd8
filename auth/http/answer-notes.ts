/**
 * What each answer of the gate leaves behind: its access-log line (as ACCESS_LOG says), its count
 * by route and status, and its time. Chosen once at startup; on every request it costs a branch
 * when there is nothing to note, else two clock reads (arrival, answer) shared by the log and the
 * histogram, and no closure for an answer given at once.
 */
import type { AccessLogMode, Logger } from "../core/log.ts";
import { UNMATCHED_ROUTE, type GateMetrics, type StatusSeries } from "../core/gate-metrics.ts";
import type { Exchange } from "./exchange.ts";
import type { ProxiedRoute, Route } from "./routes.ts";

export type Answer = Response | undefined | Promise<Response | undefined>;

/** An upgrade answers with no Response: it is noted as 101. */
const statusOf = (answer: Response | undefined) => (answer === undefined ? 101 : answer.status);

export class AnswerNotes {
  /** Whether answers are noted at all; when not, the arrival time is not read either. */
  readonly active: boolean;
  readonly #logger: Logger;
  readonly #logsStatus: (status: number) => boolean;
  readonly #metrics: GateMetrics | undefined;
  readonly #unmatched: StatusSeries | undefined;
  /**
   * Each route's series, found on its first request (the label is the route's path or a
   * routes-file route's name, never the request's path). Keyed by the route object: a reloaded
   * routes file brings new ones, and the old ones are collected.
   */
  readonly #byRoute = new WeakMap<Route | ProxiedRoute, StatusSeries>();

  constructor(logger: Logger, mode: AccessLogMode, metrics: GateMetrics | undefined) {
    const accessLog = logger.enabled("info") ? mode : "off";
    // In "refused" mode successful HTTP requests are not logged; refusals and upgrades always are.
    this.#logsStatus = accessLog === "off" ? () => false : accessLog === "all" ? () => true : (status) => status >= 400 || status === 101;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#unmatched = metrics?.routeSeries(UNMATCHED_ROUTE);
    this.active = accessLog !== "off" || metrics !== undefined;
  }

  /** The arrival time an exchange carries (0 when nothing is noted: no clock read). */
  arrival(): number {
    return this.active ? performance.now() : 0;
  }

  /** Every answer passes here once; one given at once (the usual success) without a closure. */
  note(exchange: Exchange, route: Route | ProxiedRoute | undefined, answer: Answer): Answer {
    if (!this.active) return answer;
    const series = this.#seriesOf(route);
    if (!(answer instanceof Promise)) {
      this.#finish(exchange, series, statusOf(answer));
      return answer;
    }
    return answer.then(
      (resolved) => {
        this.#finish(exchange, series, statusOf(resolved));
        return resolved;
      },
      // A handler that failed is answered 500 by the server's error handler: counted as such, then passed on.
      (error: unknown) => {
        series?.answered(500, (performance.now() - exchange.started) / 1000);
        throw error;
      },
    );
  }

  #seriesOf(route: Route | ProxiedRoute | undefined): StatusSeries | undefined {
    const metrics = this.#metrics;
    if (metrics === undefined || route === undefined) return this.#unmatched;
    let series = this.#byRoute.get(route);
    if (series === undefined) this.#byRoute.set(route, (series = metrics.routeSeries(route.kind === "proxied" ? route.name : route.path)));
    return series;
  }

  /** The clock is read once for the log line and the histogram: a read costs about as much as the rest of this. */
  #finish(exchange: Exchange, series: StatusSeries | undefined, status: number): void {
    const logged = this.#logsStatus(status);
    if (!logged && series === undefined) return;
    const ms = performance.now() - exchange.started;
    if (logged) exchange.log(this.#logger, status, ms);
    series?.answered(status, ms / 1000);
  }
}
