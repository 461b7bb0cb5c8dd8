// WebSocket baseline: upgrade everything, greet, echo. No auth, no logging, no registry.
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch: (request, srv) => (srv.upgrade(request, { data: undefined }) ? undefined : new Response("upgrade", { status: 426 })),
  websocket: {
    open: (ws) => void ws.send("✅ WebSocket connected with valid token"),
    message: (ws, message) => void ws.send(message),
  },
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
