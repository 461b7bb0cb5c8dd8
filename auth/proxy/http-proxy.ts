/**
 * Forwarding one authenticated HTTP request to its service with `fetch`, bodies streamed both ways
 * (nothing is buffered: a 1 GiB upload or download passes with flat memory). The service that
 * cannot be reached is a 502 naming the route (never its address), one slower than the route's
 * timeout a 504, a body past the route's limit a 413; a service breaking off mid-answer ends the
 * client's connection, as the answer can no longer be whole.
 */
import { GateError } from "../core/errors.ts";
import type { Exchange } from "../http/exchange.ts";
import { toResponse } from "../http/responses.ts";
import { clientResponseHeaders } from "./forwarding.ts";

/** What forwarding needs of a route, prepared once per route. */
export interface HttpTarget {
  readonly name: string;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly down: GateError;
  readonly slow: GateError;
  readonly tooLarge: GateError;
  /** A redirect to the service's own address → the same place through the gate. */
  readonly relocate: (location: string) => string;
}

export function describeFailures(name: string, timeoutSeconds: number, maxBodyBytes: number) {
  return {
    down: new GateError("bad_gateway", `The service "${name}" cannot be reached; check that it is running`),
    slow: new GateError("gateway_timeout", `The service "${name}" did not answer within ${timeoutSeconds} s`),
    tooLarge: new GateError("payload_too_large", `The request body is larger than the service "${name}" takes (${maxBodyBytes} bytes)`),
  };
}

/** A chunked body counted as it streams: past `limit` the stream fails, so the upload stops there. */
function limitBody(body: ReadableStream<Uint8Array>, limit: number, onExceeded: () => void): ReadableStream<Uint8Array> {
  let size = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size > limit) {
          onExceeded();
          controller.error(new RangeError("body too large"));
        } else controller.enqueue(chunk);
      },
    }),
  );
}

export interface Forwarding {
  readonly exchange: Exchange;
  readonly target: HttpTarget;
  readonly url: string;
  readonly headers: Headers;
}

/** The body to send on, or the 413 for a declared length past the limit (decided before the service is asked). */
function bodyFor(request: Request, target: HttpTarget, onExceeded: () => void): ReadableStream<Uint8Array> | null | GateError {
  if (request.body === null) return null;
  const declared = request.headers.get("content-length");
  if (declared !== null) return Number(declared) > target.maxBodyBytes ? target.tooLarge : request.body;
  return limitBody(request.body, target.maxBodyBytes, onExceeded);
}

export async function forwardHttp({ exchange, target, url, headers }: Forwarding): Promise<Response> {
  const { request } = exchange;
  let exceeded = false;
  const body = bodyFor(request, target, () => (exceeded = true));
  if (body instanceof GateError) return toResponse(body);
  const started = performance.now();
  const timer = new AbortController();
  const timeout = setTimeout(() => timer.abort(), target.timeoutMs);
  const note = (status: number) =>
    (exchange.upstream = { route: target.name, status, ms: Math.round((performance.now() - started) * 100) / 100 });
  try {
    const answer = await fetch(url, {
      method: request.method,
      headers,
      body,
      redirect: "manual",
      decompress: false,
      signal: AbortSignal.any([timer.signal, request.signal]),
    });
    note(answer.status);
    const answerHeaders = clientResponseHeaders(answer.headers);
    const location = answerHeaders.get("location");
    if (location !== null) answerHeaders.set("location", target.relocate(location));
    return new Response(answer.body, { status: answer.status, statusText: answer.statusText, headers: answerHeaders });
  } catch {
    note(0);
    return toResponse(exceeded ? target.tooLarge : timer.signal.aborted ? target.slow : target.down);
  } finally {
    clearTimeout(timeout);
  }
}
