// Baseline (a): the least a Bun HTTP server can do, answering with the same JSON body.
const body = JSON.stringify({ message: "✅ Access granted", data: "Here is your secret data!" });
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch: () => new Response(body, { headers: { "content-type": "application/json; charset=utf-8" } }),
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
