// The "library route" row: a program's own Bun.serve with tokengate as a library, answering the
// seed's body on a route of its own behind gate.protect, configured by the same environment as
// the server it is compared with (the API key scenario of /secure-data).
import { openGate } from "../../index.ts";

const body = JSON.stringify({ message: "✅ Access granted", data: "Here is your secret data!" });
const gate = await openGate.fromEnv(Bun.env);
const server = Bun.serve({
  ...gate.serveOptions(),
  routes: {
    "/library/secure-data": gate.protect(
      "data:read",
      () => new Response(body, { headers: { "content-type": "application/json; charset=utf-8" } }),
    ),
  },
  fetch: gate.fetch,
  websocket: gate.websocket(),
});
console.log(JSON.stringify({ msg: "listening", port: server.port }));
