/**
 * A proxied WebSocket: the service's socket is opened first (so its chosen subprotocol can be the
 * client's answer), then the client is upgraded and frames are piped both ways. Backpressure is
 * passed on: a client that reads slowly pauses reading from the service, a service that reads
 * slowly pauses reading from the client. Close codes and reasons go across; the gate's own closes
 * (revocation 4403, expiry 4401, a ban 4429, shutdown 1001) reach the client and close the service's
 * socket too.
 */
import type { GateError } from "../core/errors.ts";
import type { GateSocket, SocketLink } from "../ws/data.ts";

/** Bytes queued toward the service before the client is paused, and resumed under. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** What the service may send before the client's socket is open (it is opened first). */
const EARLY_LIMIT = 1024 * 1024;
const DRAIN_POLL_MS = 10;

/** A close code one side may send (RFC 6455 §7.4); 1005/1006 describe a close, they are never sent. */
function sendableCode(code: number): number | undefined {
  if (code >= 3000 && code <= 4999) return code;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006 ? code : undefined;
}

/** RFC 6455 §5.5: a close reason fits in 123 bytes. */
function shortReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123
    ? reason
    : Buffer.from(reason)
        .subarray(0, 120)
        .toString("utf8")
        .replace(/\uFFFD$/, "");
}

type Frame = string | Buffer;

export class UpstreamLink implements SocketLink {
  #client: GateSocket | undefined;
  #early: Frame[] = [];
  #earlyBytes = 0;
  #upstreamClose: { code: number; reason: string } | undefined;
  #drainTimer: ReturnType<typeof setInterval> | undefined;
  #clientClosed = false;

  /** Listens from the start: the service may speak first, before the client's socket exists. */
  constructor(readonly upstream: WebSocket) {
    upstream.binaryType = "nodebuffer";
    upstream.onmessage = (event: MessageEvent<Frame>) => this.#fromUpstream(event.data);
  }

  /** Once the service's socket is open, its close is the client's to hear. */
  listenForClose(): void {
    this.upstream.onclose = (event) => this.#upstreamClosed(event.code, event.reason);
  }

  attach(ws: GateSocket): void {
    this.#client = ws;
    for (const frame of this.#early) ws.send(frame);
    this.#early = [];
    if (this.#earlyBytes >= EARLY_LIMIT) this.upstream.resume();
    if (this.#upstreamClose !== undefined) this.#closeClient(this.#upstreamClose.code, this.#upstreamClose.reason);
  }

  forward(ws: GateSocket, message: string | Buffer): void {
    if (this.upstream.readyState !== WebSocket.OPEN) return;
    this.upstream.send(message);
    if (this.upstream.bufferedAmount > HIGH_WATER && this.#drainTimer === undefined) {
      ws.pause();
      this.#drainTimer = setInterval(() => {
        if (this.upstream.bufferedAmount > LOW_WATER && this.upstream.readyState === WebSocket.OPEN) return;
        this.#stopDrainWatch();
        if (!this.#clientClosed) ws.resume();
      }, DRAIN_POLL_MS);
    }
  }

  drained(): void {
    if (this.upstream.isPaused) this.upstream.resume();
  }

  closed(code: number, reason: string): void {
    this.#clientClosed = true;
    this.#stopDrainWatch();
    if (this.upstream.readyState === WebSocket.CLOSED || this.upstream.readyState === WebSocket.CLOSING) return;
    const sendable = sendableCode(code);
    // A close frame without a code (1005) is a plain close; a client that vanished without one (1006) is "going away".
    if (sendable !== undefined) this.upstream.close(sendable, shortReason(reason));
    else this.upstream.close(code === 1005 ? 1000 : 1001);
  }

  #fromUpstream(frame: Frame): void {
    const client = this.#client;
    if (client === undefined) {
      this.#early.push(frame);
      this.#earlyBytes += typeof frame === "string" ? Buffer.byteLength(frame) : frame.byteLength;
      if (this.#earlyBytes >= EARLY_LIMIT) this.upstream.pause();
      return;
    }
    if (this.#clientClosed) return;
    // -1: queued behind backpressure; stop reading from the service until the client drains.
    if (client.send(frame) === -1) this.upstream.pause();
  }

  #upstreamClosed(code: number, reason: string): void {
    this.#stopDrainWatch();
    if (this.#client === undefined) this.#upstreamClose = { code, reason };
    else this.#closeClient(code, reason);
  }

  #closeClient(code: number, reason: string): void {
    if (this.#clientClosed || this.#client === undefined) return;
    const sendable = sendableCode(code);
    // 1006: the service's connection ended without a close frame; 1014 says a gateway's upstream failed.
    if (sendable === undefined) this.#client.close(code === 1005 ? 1000 : 1014, code === 1005 ? "" : "The service's connection ended");
    else this.#client.close(sendable, shortReason(reason));
  }

  #stopDrainWatch(): void {
    clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
  }
}

export interface SocketTarget {
  readonly timeoutMs: number;
  readonly down: GateError;
  readonly slow: GateError;
}

/** Opens the service's socket: its link once open, or the 502/504 to answer the client's upgrade with. */
export function openUpstreamSocket(
  url: string,
  protocols: string[],
  headers: Headers,
  target: SocketTarget,
): Promise<UpstreamLink | GateError> {
  return new Promise((resolve) => {
    let link: UpstreamLink;
    try {
      link = new UpstreamLink(new WebSocket(url, { headers, protocols }));
    } catch {
      return resolve(target.down);
    }
    const socket = link.upstream;
    const timeout = setTimeout(() => {
      socket.onclose = null;
      socket.terminate();
      resolve(target.slow);
    }, target.timeoutMs);
    socket.onopen = () => {
      clearTimeout(timeout);
      link.listenForClose();
      resolve(link);
    };
    socket.onclose = () => {
      clearTimeout(timeout);
      resolve(target.down);
    };
  });
}
