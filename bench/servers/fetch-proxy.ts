// The naive reverse proxy: forwards every request to UPSTREAM with fetch, the path after its first
// segment (as strip_prefix does), no auth, no header rewriting; what any Bun proxy costs at least.
// WebSocket upgrades get the same naive treatment: a client WebSocket to the service, opened once
// the client's socket is open, frames piped both ways (a client frame sent before the service's
// socket is open is dropped: the echo client only speaks after the service's greeting).
import type { ServerWebSocket } from "bun";

interface Pipe {
  readonly target: string;
  upstream?: WebSocket;
}

const upstream = process.env.UPSTREAM ?? "http://127.0.0.1:9";
const socketUpstream = upstream.replace(/^http/, "ws");
const rest = (url: URL) => `${url.pathname.replace(/^\/[^/]*/, "") || "/"}${url.search}`;

function openPipe(ws: ServerWebSocket<Pipe>): void {
  const service = new WebSocket(ws.data.target);
  ws.data.upstream = service;
  service.onmessage = (event: MessageEvent<string | Buffer>) => void ws.send(event.data);
  service.onclose = () => ws.close();
}

const server = Bun.serve<Pipe>({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch(request, srv) {
    const url = new URL(request.url);
    if (
      request.headers.get("upgrade")?.toLowerCase() === "websocket" &&
      srv.upgrade(request, { data: { target: `${socketUpstream}${rest(url)}` } })
    )
      return undefined;
    return fetch(`${upstream}${rest(url)}`, { method: request.method, headers: request.headers, body: request.body });
  },
  websocket: {
    open: openPipe,
    message: (ws, message) => {
      if (ws.data.upstream?.readyState === WebSocket.OPEN) ws.data.upstream.send(message);
    },
    close: (ws) => ws.data.upstream?.close(),
  },
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
