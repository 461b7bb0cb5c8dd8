/**
 * Holds N idle authenticated WebSockets open (for the memory benchmark): opens them in batches,
 * waits for every greeting, prints {"open":N}, then holds until stdin closes or the time runs out.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { url: { type: "string" }, count: { type: "string" }, protocol: { type: "string" }, seconds: { type: "string", default: "60" } },
});
const count = Number(values.count);
const protocols = values.protocol === undefined ? undefined : ["tokengate", values.protocol];
const sockets: WebSocket[] = [];
let greeted = 0;
let failed = 0;
for (let opened = 0; opened < count; opened += 200) {
  const batch = Array.from({ length: Math.min(200, count - opened) }, () => {
    const ws = protocols === undefined ? new WebSocket(values.url!) : new WebSocket(values.url!, protocols);
    sockets.push(ws);
    return new Promise<void>((resolve) => {
      ws.onmessage = () => {
        greeted += 1;
        ws.onmessage = null;
        resolve();
      };
      ws.onclose = () => {
        failed += 1;
        resolve();
      };
    });
  });
  await Promise.all(batch);
}
console.log(JSON.stringify({ open: greeted, failed }));
const deadline = Date.now() + Number(values.seconds) * 1000;
while (Date.now() < deadline) {
  await Bun.sleep(100);
  if (process.stdin.readableEnded) break;
}
process.exit(0);
