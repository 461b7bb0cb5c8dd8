/**
 * One request on its way through the gate: where it goes, with which parameters, and what its
 * access-log line will say. The steps fill in who acted as they learn it; the log reads it at the end.
 */
import type { StatusSeries } from "../core/gate-metrics.ts";
import { elapsedMs, roundMs, type Logger } from "../core/log.ts";
import type { Principal } from "../core/principal.ts";
import type { QueryParam } from "../core/query.ts";
import { redactTarget } from "../core/redact.ts";
import type { GateServer } from "../ws/data.ts";
import { peerAddress } from "./clients.ts";

export class Exchange {
  /** The principal's public id once known (never a secret). */
  principal = "-";
  /** The peer's address when Bun can no longer tell it (after an upgrade). */
  remote: string | undefined;
  /** What the proxied service answered: route, status (0 when it never did) and latency. */
  upstream: { readonly route: string; readonly status: number; readonly ms: number } | undefined;

  constructor(
    readonly request: Request,
    readonly server: GateServer,
    readonly path: string,
    /** Parsed once: the credential reader and the log redactor read the same parameters. */
    readonly params: readonly QueryParam[],
    readonly started: number,
  ) {}

  /** What a proxied service answered (status 0: it never did), since `started`: for the access log and the route's series. */
  noteUpstream(route: string, status: number, started: number, series: StatusSeries | undefined): void {
    const ms = elapsedMs(started);
    this.upstream = { route, status, ms };
    series?.answered(status, ms / 1000);
  }

  actAs(principal: Principal, remote?: string): void {
    this.principal = principal.id;
    this.remote = remote;
  }

  /** The access-log line: method, redacted target, status, latency (`ms` since `started`), principal id, peer. */
  log(logger: Logger, status: number, ms: number): void {
    logger.access({
      method: this.request.method,
      target: redactTarget(this.path, this.params),
      status,
      ms: roundMs(ms),
      principal: this.principal,
      remote: this.remote ?? peerAddress(this.request, this.server),
      upstream: this.upstream,
    });
  }
}
