/**
 * A service to put behind the gate in tests: a real Bun server on a loopback port that records
 * every request and WebSocket handshake it receives (so tests can prove what never arrived), with
 * endpoints for streaming, slowness, breaking off mid-answer, counting uploads, and a WebSocket
 * echo that negotiates subprotocols and closes with a chosen code.
 */
import type { Server } from "bun";

export interface Received {
  readonly method: string;
  /** Path and query as the service saw them. */
  readonly target: string;
  readonly headers: Record<string, string>;
  readonly websocket: boolean;
}

interface EchoData {
  readonly protocol: string;
}

/** Subprotocols the echo speaks; it picks the first one offered that it knows. */
export const UPSTREAM_PROTOCOLS = ["chat.v2", "chat.v1"];

export interface Upstream extends Disposable {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** Bytes the last `/upload` request delivered. */
  readonly uploads: number[];
  /** Sockets the service holds open. */
  readonly openSockets: number;
  /** Close codes and reasons the service received from its clients. */
  readonly closes: Array<{ code: number; reason: string }>;
  readonly server: Server<EchoData>;
}

function targetOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

async function countBody(request: Request): Promise<number> {
  let total = 0;
  if (request.body !== null) for await (const chunk of request.body) total += chunk.byteLength;
  return total;
}

/** `/stream?bytes=N`: N bytes of zeros in 64 KiB chunks, produced as the reader pulls. */
function streamBytes(total: number): Response {
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  return new Response(
    new ReadableStream({
      pull(controller) {
        const size = Math.min(chunk.length, total - sent);
        if (size <= 0) return controller.close();
        controller.enqueue(size === chunk.length ? chunk : chunk.subarray(0, size));
        sent += size;
      },
    }),
    { headers: { "content-type": "application/octet-stream", "content-length": String(total) } },
  );
}

/** `/break`: headers and a first chunk, then the service fails mid-body. */
function breakOff(): Response {
  let step = 0;
  return new Response(
    new ReadableStream({
      async pull(controller) {
        step += 1;
        if (step === 1) return controller.enqueue(new TextEncoder().encode("first part;"));
        await Bun.sleep(20);
        controller.error(new Error("service broke off"));
      },
    }),
    { headers: { "content-type": "text/plain", "content-length": "1000" } },
  );
}

export function startUpstream(): Upstream {
  const received: Received[] = [];
  const uploads: number[] = [];
  const closes: Array<{ code: number; reason: string }> = [];
  let openSockets = 0;
  const server = Bun.serve<EchoData>({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 30,
    maxRequestBodySize: 2 * 1024 ** 3,
    async fetch(request, server) {
      const url = new URL(request.url);
      const websocket = request.headers.get("upgrade")?.toLowerCase() === "websocket";
      received.push({ method: request.method, target: targetOf(request.url), headers: Object.fromEntries(request.headers), websocket });
      if (websocket) {
        const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((name) => name.trim());
        const protocol = offered.find((name) => UPSTREAM_PROTOCOLS.includes(name)) ?? "";
        const upgraded =
          protocol === ""
            ? server.upgrade(request, { data: { protocol } })
            : server.upgrade(request, { data: { protocol }, headers: { "sec-websocket-protocol": protocol } });
        return upgraded ? undefined : new Response("bad upgrade", { status: 400 });
      }
      const path = url.pathname.replace(/^\/base/, "");
      if (path.endsWith("/stream")) return streamBytes(Number(url.searchParams.get("bytes") ?? "0"));
      if (path.endsWith("/slow")) await Bun.sleep(Number(url.searchParams.get("ms") ?? "0"));
      if (path.endsWith("/break")) return breakOff();
      if (path.endsWith("/vary"))
        return new Response("varies", {
          headers: { vary: "Accept-Encoding", "access-control-expose-headers": "X-Total-Count", "x-total-count": "3" },
        });
      if (path.endsWith("/plant-cookie")) {
        // A service that tries to set the gate's sign-in cookie on its host (fixation through a service).
        const headers = new Headers();
        for (const cookie of ["tgs=tgs_0000000000000000_planted; Path=/", "__Host-tgs=x; Path=/; Secure", "app=1; Path=/"])
          headers.append("set-cookie", cookie);
        return new Response("planted", { headers });
      }
      if (path.endsWith("/redirect")) return Response.redirect(`${url.origin}${url.searchParams.get("to") ?? "/"}`, 302);
      if (path.endsWith("/upload")) {
        const size = await countBody(request);
        uploads.push(size);
        return Response.json({ received: size });
      }
      const headers = new Headers({
        "content-type": "application/json",
        connection: "x-hop",
        "x-hop": "hop value",
        "keep-alive": "timeout=5",
      });
      headers.append("set-cookie", "app=1; Path=/; Expires=Wed, 09 Jun 2100 10:18:14 GMT");
      headers.append("set-cookie", "other=2; Path=/");
      return new Response(JSON.stringify({ method: request.method, target: targetOf(request.url), body: await request.text() }), {
        status: path.endsWith("/created") ? 201 : 200,
        headers,
      });
    },
    websocket: {
      open(ws) {
        openSockets += 1;
        ws.send(`upstream hello ${ws.data.protocol}`);
      },
      message(ws, message) {
        if (message === "terminate") return ws.terminate();
        if (typeof message === "string" && message.startsWith("close:")) {
          const [, code, reason] = message.split(":");
          return ws.close(Number(code), reason ?? "");
        }
        ws.send(message);
      },
      close(_ws, code, reason) {
        openSockets -= 1;
        closes.push({ code, reason });
      },
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    received,
    uploads,
    closes,
    get openSockets() {
      return openSockets;
    },
    server,
    [Symbol.dispose]() {
      server.stop(true);
    },
  };
}
