/**
 * WebSocket load client, run as its own process (pinned to the other core by run.ts).
 *   handshake: open → wait for the greeting → close, `concurrency` loops in parallel.
 *   echo: `concurrency` sockets each ping-pong one message at a time.
 * Bounded by --seconds; prints one JSON line with the count and the rate.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    mode: { type: "string", default: "handshake" },
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
  },
});
const url = values.url!;
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const deadline = performance.now() + seconds * 1000;
let count = 0;
let errors = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onmessage = () => {
      count += 1;
      ws.close();
    };
    ws.onclose = () => resolve();
    ws.onerror = () => {
      errors += 1;
    };
  });
}

async function handshakeLoop() {
  while (performance.now() < deadline) await once();
}

function echoLoop(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const payload = "x".repeat(64);
    let greeted = false;
    ws.onmessage = () => {
      if (greeted) count += 1;
      greeted = true;
      if (performance.now() < deadline) ws.send(payload);
      else ws.close();
    };
    ws.onclose = () => resolve();
    ws.onerror = () => {
      errors += 1;
    };
  });
}

const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, () => (values.mode === "echo" ? echoLoop() : handshakeLoop())));
const elapsed = (performance.now() - started) / 1000;
console.log(JSON.stringify({ mode: values.mode, count, errors, seconds: elapsed, rate: count / elapsed }));
