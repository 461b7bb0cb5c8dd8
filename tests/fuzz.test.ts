/**
 * Property-based fuzzing (fast-check) against the live application: at least 100,000 random and
 * mutated credentials per run, in every header form, plus mutated tokens on WebSocket upgrades.
 * Properties: no response ≥ 500, no crash (the server answers afterwards), no false accept.
 */
import { insertApiKey } from "./support/keys.ts";
import { afterAll, beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { encodeSubprotocolToken } from "../auth/authn/credentials.ts";
import { hashPassword } from "../auth/secrets/passwords.ts";
import { rawRequest, startTestApp, type TestApp } from "./support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "./support/secrets.ts";

let app: TestApp;
let valid: string[] = [];

beforeAll(async () => {
  app = await startTestApp();
  const key = await insertApiKey(app.store, { name: "fuzz", scopes: ["data:read", "ws:connect"] });
  const password = trackSecret("fuzzing user password");
  await app.store.insertUser({ username: "ivy", passwordHash: await hashPassword(password), roles: ["viewer"], createdAt: Date.now() });
  await app.app.keyring.refresh();
  const issued = (await (
    await fetch(`${app.http}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username: "ivy", password }).toString(),
    })
  ).json()) as { access_token: string; refresh_token: string };
  trackSecret(issued.refresh_token);
  valid = [app.token, key.token, trackSecret(issued.access_token)];
});
afterAll(() => app[Symbol.asyncDispose]());

// Header values a client library will send: visible ASCII, space and tab (CR, LF and NUL never reach a server).
const headerChar = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
const noise = fc.string({ unit: fc.oneof(headerChar, fc.constant("\t")), minLength: 0, maxLength: 96 });

type Mutation = (token: string) => string;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), headerChar).map(([at, char]) => (token: string) => {
    const i = at % Math.max(token.length, 1);
    return token.slice(0, i) + char + token.slice(i + 1);
  }),
  fc.nat().map((at) => (token: string) => {
    const i = at % Math.max(token.length, 1);
    return token.slice(0, i) + token.slice(i + 1);
  }),
  fc.tuple(fc.nat(), headerChar).map(([at, char]) => (token: string) => {
    const i = at % (token.length + 1);
    return token.slice(0, i) + char + token.slice(i);
  }),
  fc.nat().map((at) => (token: string) => token.slice(0, at % Math.max(token.length, 1))),
  fc.constant((token: string) => `${token}, ${token}`),
  fc.constant((token: string) => token.toUpperCase()),
  fc.constant((token: string) => ` ${token}`),
  fc.constant((token: string) => token.split(".").reverse().join(".")),
);

const credential = fc.oneof(
  { weight: 1, arbitrary: noise },
  { weight: 3, arbitrary: fc.tuple(fc.nat(), mutation).map(([pick, mutate]) => mutate(valid[pick % valid.length]!)) },
);

type Form = "x-auth-token" | "bearer" | "bearer-lower" | "basic";
const form = fc.constantFrom<Form>("x-auth-token", "bearer", "bearer-lower", "basic");

function headersFor(kind: Form, value: string): Record<string, string> {
  switch (kind) {
    case "x-auth-token":
      return { "X-Auth-Token": value };
    case "bearer":
      return { Authorization: `Bearer ${value}` };
    case "bearer-lower":
      return { Authorization: `bearer ${value}` };
    case "basic":
      return { Authorization: `Basic ${Buffer.from(value).toString("base64")}` };
  }
}

/** What a form accepts for this value: only an exact valid token, never anything derived from one. */
const isExactlyValid = (kind: Form, value: string) => kind !== "basic" && valid.includes(value.trim());

/** fast-check's own report prints the counterexample, which holds test secrets: report the replay data only. */
function quietReporter<T>(details: fc.RunDetails<T>): void {
  if (details.failed) {
    throw new Error(
      `property failed after ${details.numRuns} runs; replay with seed ${details.seed}, path ${details.counterexamplePath} (values withheld: they hold test secrets)`,
    );
  }
}

const RUNS = 1_000;
const BATCH = 100;

test(`${RUNS * BATCH} random and mutated credentials: no 5xx, no false accept`, async () => {
  let sent = 0;
  let falseAccepts = 0;
  let serverErrors = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(form, credential), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
      const statuses = await Promise.all(
        batch.map(async ([kind, value]) => {
          const response = await fetch(`${app.http}/secure-data`, { headers: headersFor(kind, value) });
          await response.arrayBuffer();
          return { status: response.status, exact: isExactlyValid(kind, value) };
        }),
      );
      sent += statuses.length;
      for (const { status, exact } of statuses) {
        if (status >= 500) serverErrors += 1;
        if (status === 200 && !exact) falseAccepts += 1;
      }
      return statuses.every(({ status, exact }) => status < 500 && (status !== 200 || exact));
    }),
    { numRuns: RUNS, reporter: quietReporter },
  );
  expect({ sent, serverErrors, falseAccepts }).toEqual({ sent: RUNS * BATCH, serverErrors: 0, falseAccepts: 0 });
  expect((await fetch(`${app.http}/healthz`)).status).toBe(200);
}, 120_000);

test("2,000 mutated tokens on WebSocket upgrades (query and subprotocol): never upgraded, never 5xx", async () => {
  const port = app.app.listener.server.port!;
  let upgraded = 0;
  await fc.assert(
    fc.asyncProperty(fc.tuple(fc.nat(), mutation, fc.boolean()), async ([pick, mutate, viaSubprotocol]) => {
      const value = mutate(valid[pick % valid.length]!);
      if (valid.includes(value)) return true;
      const target = viaSubprotocol ? "/ws" : `/ws?token=${encodeURIComponent(value)}`;
      const extra = viaSubprotocol ? `Sec-WebSocket-Protocol: tokengate, ${encodeSubprotocolToken(value)}\r\n` : "";
      const response = await rawRequest(
        port,
        Buffer.from(
          `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
          "latin1",
        ),
      );
      if (response.status === 101) upgraded += 1;
      return response.status !== 101 && response.status < 500 && response.status >= 400;
    }),
    { numRuns: 2_000, reporter: quietReporter },
  );
  expect(upgraded).toBe(0);
}, 60_000);

test("no secret used by the fuzzer reached any output", () => {
  expectNoSecretsInOutput();
});
