// The naive forward-auth endpoint for nginx auth_request: 200 when X-Auth-Token === AUTH_TOKEN, else
// 401, both without a body. (nginx reads only the head of an auth subrequest's answer: a body left
// unread closes the keepalive connection, so naive.ts with its JSON body would cost a connect each.)
const secret = process.env.AUTH_TOKEN ?? "";
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch: (request) => new Response(null, { status: request.headers.get("x-auth-token") === secret ? 200 : 401 }),
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
export {};
