/**
 * tokengate as a library: put your own Bun.serve routes and WebSocket handlers behind the gate.
 *
 * ```ts
 * import { openGate } from "tokengate";
 *
 * const gate = await openGate({ dataDir: "./data" });
 * const server = Bun.serve({
 *   ...gate.serveOptions(),
 *   routes: { "/api/temperature": gate.protect("sensors:read", (req, who) => Response.json({ c: 21.5, by: who.name })) },
 *   fetch: gate.fetch,
 *   websocket: gate.websocket({ scope: "sensors:stream", open(ws) { ws.send(`hello ${ws.data.principal.name}`); } }),
 * });
 * process.on("SIGTERM", async () => (await gate.close(), await server.stop(), process.exit(0)));
 * ```
 *
 * `await using gate = …` closes the gate when its block ends: use it in a block that lives as long
 * as the server (a test, a function that awaits the server's end), not at a module's top level.
 *
 * @module
 */
export {
  Gate,
  GateConfigError,
  openGate,
  type GateOptions,
  type GateServeOptions,
  type GateSocketData,
  type GateSocketOptions,
  type GateWebSocket,
  type Principal,
  type ProtectedHandler,
} from "./auth/library/gate.ts";
