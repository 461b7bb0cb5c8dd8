// Baseline (b): the naive gate, i.e. the FastAPI seed ported literally: read X-Auth-Token, compare with ===.
const body = JSON.stringify({ message: "✅ Access granted", data: "Here is your secret data!" });
const denied = JSON.stringify({ detail: "Invalid or missing token" });
const secret = process.env.AUTH_TOKEN ?? "";
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch(request) {
    if (request.headers.get("x-auth-token") !== secret) {
      return new Response(denied, { status: 401, headers: { "content-type": "application/json" } });
    }
    return new Response(body, { headers: { "content-type": "application/json; charset=utf-8" } });
  },
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
