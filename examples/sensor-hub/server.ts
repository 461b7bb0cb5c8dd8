/**
 * A sensor hub on the LAN, behind tokengate: readings over HTTP (`sensors:read`), a live stream of
 * them over a WebSocket (`sensors:stream`), and a relay a device may switch only with
 * `relay:write`. Every credential form tokengate knows works on these routes (API keys, bearer
 * JWTs, the console's session cookie), and revoking a key closes its stream with 4403 at once.
 *
 *   bun run examples/sensor-hub/server.ts          (DATA_DIR, PORT, … as for the server)
 */
import { openGate } from "tokengate";

interface Reading {
  readonly sensor: string;
  readonly celsius: number;
  readonly at: string;
}

/** The hub's state: what the sensors last said, and the relays. A real hub reads I2C or MQTT here. */
class Hub {
  readonly relays = new Map<string, boolean>([
    ["porch-light", false],
    ["heater", false],
  ]);
  #tick = 0;

  read(): Reading[] {
    this.#tick += 1;
    const at = new Date().toISOString();
    return [
      { sensor: "living-room", celsius: 21.5 + Math.sin(this.#tick / 10) / 2, at },
      { sensor: "garage", celsius: 9.8 + Math.cos(this.#tick / 7) / 3, at },
    ];
  }
}

const hub = new Hub();
const gate = await openGate.fromEnv(Bun.env);

const server = Bun.serve({
  ...gate.serveOptions(),
  routes: {
    "/api/readings": gate.protect("sensors:read", (_request, who) => Response.json({ readings: hub.read(), for: who.name })),
    "/api/relays/:id": {
      GET: gate.protect("sensors:read", (request) => {
        const on = hub.relays.get(request.params.id);
        return on === undefined ? Response.json({ error: "no such relay" }, { status: 404 }) : Response.json({ id: request.params.id, on });
      }),
      POST: gate.protect("relay:write", async (request, who) => {
        if (!hub.relays.has(request.params.id)) return Response.json({ error: "no such relay" }, { status: 404 });
        const body = (await request.json().catch(() => undefined)) as { on?: unknown } | undefined;
        if (typeof body?.on !== "boolean") return Response.json({ error: 'send {"on": true} or {"on": false}' }, { status: 400 });
        hub.relays.set(request.params.id, body.on);
        console.log(`relay ${request.params.id} switched ${body.on ? "on" : "off"} by ${who.name}`);
        return Response.json({ id: request.params.id, on: body.on });
      }),
    },
  },
  fetch: gate.fetch,
  websocket: gate.websocket<{ timer?: Timer }>({
    path: "/api/stream",
    scope: "sensors:stream",
    open(ws) {
      ws.send(JSON.stringify({ hello: ws.data.principal.name }));
      ws.data.timer = setInterval(() => ws.send(JSON.stringify(hub.read())), 1_000);
    },
    message(ws, message) {
      if (message === "now") ws.send(JSON.stringify(hub.read()));
    },
    close(ws) {
      clearInterval(ws.data.timer);
    },
  }),
});

console.log(`sensor hub on ${server.url}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await gate.close();
    await server.stop();
    process.exit(0);
  });
}
