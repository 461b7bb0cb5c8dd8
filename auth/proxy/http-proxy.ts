/**
 * Forwarding one authenticated HTTP request to its service with `fetch`, bodies streamed both ways
 * (nothing is buffered: a 1 GiB upload or download passes with flat memory). The service that
 * cannot be reached is a 502 naming the route (never its address), one slower than the route's
 * timeout a 504, a body past the route's limit a 413; a service breaking off mid-answer ends the
 * client's connection, as the answer can no longer be whole.
 */
import { GateError } from "../core/errors.ts";
import type { StatusSeries } from "../core/gate-metrics.ts";
import type { Exchange } from "../http/exchange.ts";
import { toResponse } from "../http/responses.ts";
import { stripResponseHeaders } from "./forwarding.ts";

/** What forwarding needs of a route, prepared once per route. */
export interface HttpTarget {
  readonly name: string;
  readonly timeoutMs: number;
  /**
   * How long the client's connection may stay silent: the route's timeout (and a margin), not
   * HTTP_IDLE_TIMEOUT_SECONDS, so a slow answer within the timeout arrives and a service that stalls
   * mid-answer is cut about as soon (Bun applies idle timeouts in ticks of a few seconds).
   */
  readonly quietSeconds: number;
  readonly maxBodyBytes: number;
  readonly down: GateError;
  readonly slow: GateError;
  readonly tooLarge: GateError;
  /** A redirect to the service's own address → the same place through the gate. */
  readonly relocate: (location: string) => string;
  /** Why the service could not be reached (an error code such as ECONNREFUSED), for the log. */
  readonly reportDown: (error: unknown) => void;
  /** The route's upstream answers by status, and their latency (absent: METRICS=false). */
  readonly upstream?: StatusSeries | undefined;
}

export function describeFailures(name: string, timeoutSeconds: number, maxBodyBytes: number) {
  return {
    down: new GateError("bad_gateway", `The service "${name}" cannot be reached; check that it is running`),
    slow: new GateError("gateway_timeout", `The service "${name}" did not answer within ${timeoutSeconds} s`),
    tooLarge: new GateError("payload_too_large", `The request body is larger than the service "${name}" takes (${maxBodyBytes} bytes)`),
  };
}

/** What happens as a request body streams to the service. */
interface BodyWatch {
  /** Past the route's limit: the stream fails there, so the upload stops. */
  onExceeded(): void;
  /** The whole body was read from the client: the wait for the answer starts now. */
  onEnd(): void;
}

/** The body counted as it streams (a chunked one has no declared length to judge beforehand). */
function watchBody(body: ReadableStream<Uint8Array>, limit: number, watch: BodyWatch): ReadableStream<Uint8Array> {
  let size = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size > limit) {
          watch.onExceeded();
          controller.error(new RangeError("body too large"));
        } else controller.enqueue(chunk);
      },
      flush: () => watch.onEnd(),
    }),
  );
}

export interface Forwarding {
  readonly exchange: Exchange;
  readonly target: HttpTarget;
  readonly url: string;
  readonly headers: Headers;
}

const BAD_LENGTH = new GateError("invalid_request", "Content-Length must be one whole number (sent once, or repeated with the same value)");

/** `N`, or `N, N` as Bun joins a repeated header: the length, or `undefined` when the values differ or are not numbers. */
export function parseContentLength(value: string): number | undefined {
  const values = value.split(",").map((part) => part.trim());
  if (values.some((part) => !/^\d{1,16}$/.test(part) || part !== values[0])) return undefined;
  return Number(values[0]);
}

/** The body to send on, or the 413 for a declared length past the limit (decided before the service is asked). */
function bodyFor(request: Request, headers: Headers, target: HttpTarget, watch: BodyWatch): ReadableStream<Uint8Array> | null | GateError {
  if (request.body === null) return null;
  const declared = headers.get("content-length");
  if (declared === null) return watchBody(request.body, target.maxBodyBytes, watch);
  const length = parseContentLength(declared);
  if (length === undefined) return BAD_LENGTH;
  // The service gets one clean value (fetch refuses a list).
  if (declared !== String(length)) headers.set("content-length", String(length));
  return length > target.maxBodyBytes ? target.tooLarge : watchBody(request.body, length, watch);
}

const abortSlow = (controller: AbortController) => controller.abort();

/**
 * The route's timeout covers the wait for the service's answer once the request is sent: an upload
 * is not timed while it streams (a slow link or a GiB), only the silence after it. While it streams,
 * the connection's idle timeout (quietSeconds) ends an upload that stalls.
 */
class AnswerTimer {
  readonly controller = new AbortController();
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #settled = false;

  constructor(private readonly timeoutMs: number) {}

  start(): void {
    if (!this.#settled && this.#timeout === undefined) this.#timeout = setTimeout(abortSlow, this.timeoutMs, this.controller);
  }

  settle(): void {
    this.#settled = true;
    clearTimeout(this.#timeout);
  }

  get expired(): boolean {
    return this.controller.signal.aborted;
  }
}

export async function forwardHttp({ exchange, target, url, headers }: Forwarding): Promise<Response> {
  const { request } = exchange;
  const timer = new AnswerTimer(target.timeoutMs);
  let exceeded = false;
  const body = bodyFor(request, headers, target, { onExceeded: () => (exceeded = true), onEnd: () => timer.start() });
  if (body instanceof GateError) return toResponse(body);
  if (body === null) timer.start();
  exchange.server.timeout(request, target.quietSeconds);
  const started = performance.now();
  const note = (status: number) => exchange.noteUpstream(target.name, status, started, target.upstream);
  try {
    // A client that goes away mid-body cancels the streams, which ends the service's request too.
    const answer = await fetch(url, {
      method: request.method,
      headers,
      body,
      redirect: "manual",
      decompress: false,
      signal: timer.controller.signal,
    });
    note(answer.status);
    // Only a status HTTP knows may reach the client (Bun's client takes 600 or 999 as sent).
    if (answer.status < 200 || answer.status > 599) {
      void answer.body?.cancel().catch(() => undefined);
      return toResponse(target.down);
    }
    stripResponseHeaders(answer.headers);
    const location = answer.headers.get("location");
    if (location !== null) answer.headers.set("location", target.relocate(location));
    return answer;
  } catch (error) {
    note(0);
    if (exceeded) return toResponse(target.tooLarge);
    if (timer.expired) return toResponse(target.slow);
    // The client answered with 502 learns nothing of why; the operator does.
    if (!request.signal.aborted) target.reportDown(error);
    return toResponse(target.down);
  } finally {
    timer.settle();
  }
}
