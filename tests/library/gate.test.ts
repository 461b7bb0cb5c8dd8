/**
 * tokengate as a library, the way a program uses it: `openGate` on a temporary data dir, the
 * program's own `Bun.serve` on port 0 with `routes` behind `gate.protect`, `fetch: gate.fetch` and
 * `websocket: gate.websocket({...})`; real requests over real sockets (fetch, the curl binary,
 * Bun's WebSocket). Asserted: every refusal the gate gives its own routes (401 with the challenge,
 * 403, 429 after guessing, 421 for a foreign Host), and that the program's handler did not run;
 * params typed and passed; a frozen principal; a throwing handler answered 500 and logged without
 * request data; the program's socket handlers with ws.data.principal and its own fields, closed
 * 4403 when the key is revoked, re-authenticated in-band; scopes known to the CLI; close().
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { GateConfigError, openGate, type Gate, type Principal } from "../../index.ts";
import { cli } from "../support/cli.ts";
import { curl, makeTempDir, WsProbe } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

interface Program {
  readonly gate: Gate;
  readonly server: Server<unknown>;
  readonly base: string;
  readonly ws: string;
  readonly lines: string[];
  /** What the program's handlers saw: one entry per run. */
  readonly ran: string[];
  readonly dataDir: string;
}

const BOOTSTRAP = newSecret();
let program: Program;
const dirs: Array<ReturnType<typeof makeTempDir>> = [];

async function startProgram(env: Record<string, string> = {}): Promise<Program> {
  const dir = makeTempDir("tokengate-library-");
  dirs.push(dir);
  const lines: string[] = [];
  const ran: string[] = [];
  const gate = await openGate({
    dataDir: dir.path,
    env: {
      AUTH_TOKEN: BOOTSTRAP,
      PAIRING: "false",
      LOG_FORMAT: "json",
      LOG_LEVEL: "info",
      BAN_EXEMPT: "",
      TRUSTED_PROXIES: "127.0.0.1",
      ...env,
    },
    log: (line) => (lines.push(line), captureOutput(line)),
  });
  const server = Bun.serve({
    ...gate.serveOptions(),
    hostname: "127.0.0.1",
    port: 0,
    routes: {
      "/api/temperature": gate.protect("sensors:read", (_request, who) => {
        ran.push(`temperature:${who.name}`);
        return Response.json({ c: 21.5, by: who.name });
      }),
      "/api/relay/:id": {
        POST: gate.protect("relay:write", async (request, who) => {
          ran.push(`relay:${request.params.id}`);
          return Response.json({ id: request.params.id, body: await request.text(), by: who.id });
        }),
      },
      "/api/broken": gate.protect("sensors:read", () => {
        ran.push("broken");
        throw new Error(`handler failed with ${BOOTSTRAP}`);
      }),
      "/api/mutate": gate.protect("sensors:read", (_request, who) => {
        ran.push("mutate");
        const attempt = () => ((who.scopes as string[]).push("*"), ((who as { name: string }).name = "root"));
        return Response.json({ frozen: Object.isFrozen(who), threw: throws(attempt) });
      }),
    },
    fetch: gate.fetch,
    websocket: gate.websocket<{ room: string; greeted?: boolean }>({
      path: "/api/stream",
      scope: "sensors:stream",
      data: (request) => ({ room: new URL(request.url).searchParams.get("room") ?? "hall" }),
      open(ws) {
        ran.push(`open:${ws.data.principal.name}:${ws.data.room}`);
        ws.send(JSON.stringify({ hello: ws.data.principal.name, room: ws.data.room }));
      },
      message(ws, message) {
        ws.send(`${ws.data.room}:${String(message)}`);
      },
    }),
  });
  return { gate, server, base: `http://127.0.0.1:${server.port}`, ws: `ws://127.0.0.1:${server.port}`, lines, ran, dataDir: dir.path };
}

function throws(run: () => unknown): boolean {
  try {
    run();
    return false;
  } catch {
    return true;
  }
}

/** A key made through the gate's own admin API (the bootstrap token holds every scope). */
async function makeKey(name: string, scopes: string[]): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${program.base}/admin/api/keys`, {
    method: "POST",
    headers: { "x-auth-token": BOOTSTRAP, "content-type": "application/json" },
    body: JSON.stringify({ name, scopes }),
  });
  expect(response.status).toBe(201);
  const body = (await response.json()) as { key: { id: string }; secret: string };
  return { id: body.key.id, secret: trackSecret(body.secret) };
}

beforeAll(async () => {
  program = await startProgram();
});
afterAll(async () => {
  await program.gate.close();
  await program.server.stop(true);
  for (const dir of dirs) dir[Symbol.dispose]();
});

describe("protect", () => {
  test("a key holding the scope reaches the handler, which gets the principal", async () => {
    const key = await makeKey("kitchen sensor", ["sensors:read"]);
    const answer = await fetch(`${program.base}/api/temperature`, { headers: { "x-auth-token": key.secret } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ c: 21.5, by: "kitchen sensor" });
  });

  test.each([
    ["no credential", {}, 401, "missing_token"],
    ["a wrong key", { "x-auth-token": "tg_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, 401, "invalid_token"],
    ["a malformed Authorization", { authorization: "Bearer" }, 400, "invalid_request"],
  ])("%s: %d %s with the gate's body; the handler did not run", async (_what, headers, status, code) => {
    const before = program.ran.length;
    const answer = await fetch(`${program.base}/api/temperature`, { headers: { ...headers, "x-forwarded-for": "198.51.100.1" } });
    expect(answer.status).toBe(status);
    expect(((await answer.json()) as { code: string }).code).toBe(code);
    if (status === 401) expect(answer.headers.get("www-authenticate")).toStartWith("Bearer");
    expect(program.ran.length).toBe(before);
  });

  test("a key without the scope: 403 insufficient_scope naming it, from curl; the handler did not run", async () => {
    const key = await makeKey("viewer", ["data:read"]);
    const before = program.ran.length;
    const answer = await curl([
      "-s",
      "-i",
      "-X",
      "POST",
      "-H",
      `X-Auth-Token: ${key.secret}`,
      "--data",
      "on",
      `${program.base}/api/relay/heater`,
    ]);
    expect(answer.status).toBe(403);
    expect(answer.body).toContain("relay:write");
    expect(program.ran.length).toBe(before);
  });

  test("params are passed to the handler; the bootstrap token and a JWT from /auth/token work like any credential", async () => {
    const key = await makeKey("relay box", ["relay:write"]);
    const direct = await fetch(`${program.base}/api/relay/heater`, { method: "POST", headers: { "x-auth-token": key.secret }, body: "on" });
    expect(await direct.json()).toEqual({ id: "heater", body: "on", by: key.id });
    const grant = await fetch(`${program.base}/auth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: key.id, client_secret: key.secret }),
    });
    const { access_token } = (await grant.json()) as { access_token: string };
    trackSecret(access_token);
    const viaJwt = await fetch(`${program.base}/api/relay/porch`, { method: "POST", headers: { authorization: `Bearer ${access_token}` } });
    expect(viaJwt.status).toBe(200);
    expect(((await viaJwt.json()) as { id: string }).id).toBe("porch");
  });

  test("a foreign Host is refused before any credential is looked at (421)", async () => {
    const answer = await curl([
      "-s",
      "-i",
      "-H",
      "Host: evil.example",
      "-H",
      `X-Auth-Token: ${BOOTSTRAP}`,
      `${program.base}/api/temperature`,
    ]);
    expect(answer.status).toBe(421);
  });

  test("the principal is frozen: a handler cannot widen it", async () => {
    const key = await makeKey("curious", ["sensors:read"]);
    const answer = await fetch(`${program.base}/api/mutate`, { headers: { "x-auth-token": key.secret } });
    expect(await answer.json()).toEqual({ frozen: true, threw: true });
    const again = await fetch(`${program.base}/api/temperature`, { headers: { "x-auth-token": key.secret } });
    expect(((await again.json()) as { by: string }).by).toBe("curious");
  });

  test("a handler that throws: 500 JSON, one log line with the error's class and nothing of the request", async () => {
    const answer = await fetch(`${program.base}/api/broken`, {
      headers: { "x-auth-token": BOOTSTRAP },
    });
    expect(answer.status).toBe(500);
    expect(await answer.json()).toMatchObject({ code: "internal_error" });
    const line = program.lines.find((text) => text.includes("route handler failed"));
    expect(line).toContain('"error":"Error"');
    expect(line).not.toContain("handler failed with");
  });

  test("ten wrong guesses from one address ban it (429 with Retry-After), here as on the gate's own routes", async () => {
    const key = await makeKey("lamp", ["sensors:read"]);
    const from = { "x-forwarded-for": "198.51.100.77" };
    for (let attempt = 0; attempt < 10; attempt++) {
      await fetch(`${program.base}/api/temperature`, {
        headers: { ...from, "x-auth-token": trackSecret(`tg_${key.id}_${"B".repeat(43)}`) },
      });
    }
    const banned = await fetch(`${program.base}/api/temperature`, { headers: { ...from, "x-auth-token": key.secret } });
    expect(banned.status).toBe(429);
    expect(Number(banned.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("the gate's own routes stay where they were: /secure-data, /auth/whoami, 404 JSON for an unknown path", async () => {
    expect((await fetch(`${program.base}/secure-data`, { headers: { "x-auth-token": BOOTSTRAP } })).status).toBe(200);
    const who = (await (await fetch(`${program.base}/auth/whoami`, { headers: { "x-auth-token": BOOTSTRAP } })).json()) as Principal;
    expect(who.kind).toBe("bootstrap");
    const missing = await fetch(`${program.base}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe("not_found");
  });
});

describe("the program's WebSocket", () => {
  test("its handlers run after the upgrade with ws.data.principal and its own fields; no echo, no greeting", async () => {
    const key = await makeKey("dashboard", ["sensors:stream"]);
    const socket = new WsProbe(`${program.ws}/api/stream?room=garage`, { headers: new Headers({ "x-auth-token": key.secret }) });
    expect(await socket.opened).toBe(true);
    expect(JSON.parse(String(await socket.nextMessage(0)))).toEqual({ hello: "dashboard", room: "garage" });
    socket.socket.send("ping");
    expect(await socket.nextMessage(1)).toBe("garage:ping");
    socket.socket.close();
  });

  test("without the scope the upgrade is refused over HTTP (403), and the handlers never run", async () => {
    const key = await makeKey("sensor only", ["sensors:read"]);
    const before = program.ran.length;
    const refused = await fetch(`${program.base}/api/stream`, {
      headers: {
        "x-auth-token": key.secret,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    expect(refused.status).toBe(403);
    expect(program.ran.length).toBe(before);
  });

  test("revoking the key closes the program's socket with 4403", async () => {
    const key = await makeKey("lost tablet", ["sensors:stream"]);
    const socket = new WsProbe(`${program.ws}/api/stream`, { headers: new Headers({ "x-auth-token": key.secret }) });
    await socket.nextMessage(0);
    const revoked = await fetch(`${program.base}/admin/api/keys/revoke`, {
      method: "POST",
      headers: { "x-auth-token": BOOTSTRAP, "content-type": "application/json" },
      body: JSON.stringify({ id: key.id }),
    });
    expect(revoked.status).toBe(200);
    expect((await socket.closed).code).toBe(4403);
  });

  test("in-band re-authentication is the gate's: a fresh JWT is adopted, a foreign token refused, neither reaches the handler", async () => {
    const key = await makeKey("stream client", ["sensors:stream"]);
    const tokenFor = async (id: string, secret: string) => {
      const grant = await fetch(`${program.base}/auth/token`, {
        method: "POST",
        body: new URLSearchParams({ grant_type: "client_credentials", client_id: id, client_secret: secret }),
      });
      return trackSecret(((await grant.json()) as { access_token: string }).access_token);
    };
    const socket = new WsProbe(`${program.ws}/api/stream`, {
      headers: new Headers({ authorization: `Bearer ${await tokenFor(key.id, key.secret)}` }),
    });
    await socket.nextMessage(0);
    socket.socket.send(JSON.stringify({ type: "auth", token: await tokenFor(key.id, key.secret) }));
    expect(JSON.parse(String(await socket.nextMessage(1)))).toMatchObject({ type: "auth_ok" });
    const other = await makeKey("someone else", ["sensors:stream"]);
    socket.socket.send(JSON.stringify({ type: "auth", token: other.secret }));
    expect(JSON.parse(String(await socket.nextMessage(2)))).toMatchObject({ type: "auth_error", code: "invalid_token" });
    socket.socket.close();
  });

  test("the gate's /ws echo still answers beside the program's socket", async () => {
    const socket = new WsProbe(`${program.ws}/ws`, { headers: new Headers({ "x-auth-token": BOOTSTRAP }) });
    expect(await socket.nextMessage(0)).toBe("✅ WebSocket connected with valid token");
    socket.socket.close();
  });
});

describe("scopes, configuration and closing", () => {
  test("the program's scopes are known: the CLI gives a key sensors:stream without --allow-new-scope", async () => {
    const made = await cli(
      program.dataDir,
      "keys",
      "create",
      "--name",
      "hub tablet",
      "--scopes",
      "sensors:read,sensors:stream,relay:write",
      "--json",
    );
    expect(made.code).toBe(0);
    trackSecret((JSON.parse(made.stdout) as { key: string }).key);
    const unknown = await cli(program.dataDir, "keys", "create", "--name", "typo", "--scopes", "sensors:raed");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("sensors:stream");
  });

  test.each([
    ["PORT", { PORT: "not a port" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
  ])("a bad %s is a GateConfigError naming it; nothing is opened", async (variable, env) => {
    using empty = makeTempDir("tokengate-library-bad-");
    const opening = openGate({ dataDir: empty.path, env: { PAIRING: "false", ...env }, log: captureOutput });
    const error = await opening.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(GateConfigError);
    expect((error as GateConfigError).problems.map((problem) => problem.variable)).toContain(variable);
  });

  test("close() ends the gate's sockets with 1001, once however often it is called; await using closes it", async () => {
    const own = await startProgram({});
    const socket = new WsProbe(`${own.ws}/ws`, { headers: new Headers({ "x-auth-token": BOOTSTRAP }) });
    await socket.nextMessage(0);
    await Promise.all([own.gate.close(), own.gate.close()]);
    expect((await socket.closed).code).toBe(1001);
    await own.server.stop(true);
    {
      await using scoped = await openGate({ dataDir: own.dataDir, env: { AUTH_TOKEN: BOOTSTRAP, PAIRING: "false" }, log: captureOutput });
      expect(typeof scoped.fetch).toBe("function");
    }
  });
});

test("no secret reached any output", () => expectNoSecretsInOutput());
