/**
 * WebSocket load client, run as its own process (pinned to the other core by run.ts).
 *   handshake: open → wait for the greeting → close, `concurrency` loops in parallel.
 *   echo: `concurrency` sockets each ping-pong one message at a time.
 * Bounded by --seconds and by --max messages; a server that stops answering cannot hold it past
 * --seconds + 5 s (it then reports what it counted, with timedOut). Prints one JSON line with the
 * count and the rate.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    mode: { type: "string", default: "handshake" },
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    max: { type: "string", default: "10000000" },
  },
});
const url = values.url!;
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const max = Number(values.max);
const deadline = performance.now() + seconds * 1000;
let count = 0;
let errors = 0;
const going = () => performance.now() < deadline && count < max;

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
  while (going()) await once();
}

function echoLoop(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const payload = "x".repeat(64);
    let greeted = false;
    ws.onmessage = () => {
      if (greeted) count += 1;
      greeted = true;
      if (going()) ws.send(payload);
      else ws.close();
    };
    ws.onclose = () => resolve();
    ws.onerror = () => {
      errors += 1;
    };
  });
}

const started = performance.now();
const finish = (timedOut: boolean) => {
  const elapsed = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ mode: values.mode, count, errors, seconds: elapsed, rate: count / elapsed, timedOut }));
  process.exit(0);
};
setTimeout(() => finish(true), (seconds + 5) * 1000);
await Promise.all(Array.from({ length: concurrency }, () => (values.mode === "echo" ? echoLoop() : handshakeLoop())));
finish(false);
