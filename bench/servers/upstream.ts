// The service behind the proxies: a short body over HTTP, and a WebSocket that greets and echoes.
const body = "hello from upstream\n";
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch(request, srv) {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket" && srv.upgrade(request, { data: undefined })) return undefined;
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
  },
  websocket: {
    open: (ws) => void ws.send("connected"),
    message: (ws, message) => void ws.send(message),
  },
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
