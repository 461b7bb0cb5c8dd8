/**
 * First-run pairing over real sockets: the in-process app for the endpoint's answers, the real
 * `bun run server.ts` with `bun run cli pair` as a service would run them, and the server in a
 * real pseudo-terminal (`script`), where the code appears on the terminal and nowhere else.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { CONFIG_VARIABLES } from "../../auth/config/config.ts";
import {
  describePairingCode,
  formatPairingCode,
  generatePairingCode,
  issuePairingCode,
  pairCommand,
  PAIRING_MAX_FAILURES,
  parsePairingCode,
} from "../../auth/oauth/pairing.ts";
import { parseApiKey } from "../../auth/secrets/keys.ts";
import { digestToken } from "../../auth/secrets/tokens.ts";
import { curl, makeTempDir, ROOT, ServerProcess, startTestApp, type TestApp } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

const CLI = `${ROOT}/cli.ts`;
/** What a checkout runs for a code (these tests run from one). */
const CHECKOUT_COMMAND = "bun run cli pair";

/**
 * The parent's environment, so children see what it sees (Debian's faketime works through
 * LD_PRELOAD and FAKETIME), minus tokengate's own settings from the developer's shell, which
 * must not leak into a test's configuration.
 */
function inheritedEnv(home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !CONFIG_VARIABLES.has(name)) env[name] = value;
  return { ...env, HOME: home };
}

function pairForm(fields: Record<string, string>): RequestInit {
  return { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields) };
}

async function post(app: TestApp, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const init = pairForm(fields);
  const response = await fetch(`${app.http}/auth/pair`, { ...init, headers: { ...(init.headers as Record<string, string>), ...headers } });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

/** A live code in the app's store, as `tokengate pair` would make it. */
async function liveCode(app: TestApp): Promise<string> {
  const issued = await issuePairingCode(app.store, Date.now());
  if (issued === undefined) throw new Error("the device has credentials already");
  return trackSecret(issued.code);
}

describe("pairing codes", () => {
  test("six digits from the CSPRNG, leading zeros kept, all ten digits in use", () => {
    const codes = Array.from({ length: 3000 }, generatePairingCode);
    expect(codes.every((code) => /^\d{6}$/.test(code))).toBe(true);
    expect(codes.some((code) => code.startsWith("0"))).toBe(true);
    expect(new Set(codes.join("")).size).toBe(10);
    // 3000 draws from 10⁶ collide about 4.5 times (birthday bound); a generator with only 10⁴
    // values would collide ~400 times. 50 leaves no room for chance yet catches a narrow generator.
    expect(3000 - new Set(codes).size).toBeLessThan(50);
  });

  test.each([
    ["123456", "123456"],
    ["123 456", "123456"],
    [" 123-456 ", "123456"],
    ["012345", "012345"],
    ["12345", undefined],
    ["1234567", undefined],
    ["12345a", undefined],
    ["１２３４５６", undefined],
    ["", undefined],
  ])("parsePairingCode(%p) → %p", (text, expected) => {
    expect(parsePairingCode(text)).toBe(expected);
  });

  test("shown as two groups of three", () => {
    expect(formatPairingCode("012345")).toBe("012 345");
  });
});

describe("the command that makes a code, named as it exists where it is read", () => {
  test("a checkout runs `bun run cli pair`; the compiled binary (entry point under /$bunfs/) `tokengate pair`", () => {
    expect(pairCommand()).toBe(CHECKOUT_COMMAND);
    expect(pairCommand(join(ROOT, "auth/oauth/pairing.ts"))).toBe(CHECKOUT_COMMAND);
    expect(pairCommand("/$bunfs/root/tokengate-linux-x64")).toBe("tokengate pair");
    // Installed as a package: the CLI is the package's bin, whichever program imported it.
    expect(pairCommand("/srv/hub/server.ts", "/srv/hub/node_modules/tokengate/auth/oauth/pairing.ts")).toBe("bunx tokengate pair");
  });

  test("the terminal lines name it, here and as the CLI passes it", () => {
    const issued = { code: "012345", expiresAt: Date.now() + 300_000 };
    const lines = describePairingCode(issued, ["http://192.168.1.20:8000/"]);
    expect(lines).toContain("`bun run cli pair` on this device makes a new one");
    expect(lines).not.toContain("tokengate pair");
    expect(describePairingCode(issued, [], "tokengate pair")).toContain("`tokengate pair` on this device makes a new one");
  });

  test("in a compiled binary the same module says `tokengate pair`", async () => {
    using dir = makeTempDir("tokengate-pair-binary-");
    const entry = join(dir.path, "entry.ts");
    await Bun.write(
      entry,
      `import { pairCommand } from ${JSON.stringify(join(ROOT, "auth/oauth/pairing.ts"))};\nprocess.stdout.write(pairCommand());\n`,
    );
    // Built as `bun run build` builds: --bytecode keeps source paths in import.meta, so this matters.
    const build = Bun.spawn(
      [process.execPath, "build", "--compile", "--bytecode", "--minify", entry, "--outfile", join(dir.path, "probe")],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(await build.exited).toBe(0);
    const run = Bun.spawn([join(dir.path, "probe")], { stdout: "pipe" });
    expect(await new Response(run.stdout).text()).toBe("tokengate pair");
  }, 30_000);
});

describe("POST /auth/pair", () => {
  test("a live code buys one admin key; the key works at once; then pairing is closed for good", async () => {
    await using app = await startTestApp();
    // While open, the page learns which command makes a code on this device.
    expect(await (await fetch(`${app.http}/auth/pair`)).json()).toEqual({ pairing: "open", command: CHECKOUT_COMMAND });
    const code = await liveCode(app);
    const paired = await post(app, { code: formatPairingCode(code), name: "my laptop" });
    expect(paired.status).toBe(200);
    expect(paired.headers.get("cache-control")).toBe("no-store");
    const key = trackSecret(String(paired.body.api_key));
    expect(paired.body).toMatchObject({ name: "my laptop", scopes: ["*"], expires_at: null });

    // The seed's curl with the new key, and what the key is.
    const seed = await curl(["-H", `X-Auth-Token: ${key}`, `${app.http}/secure-data`]);
    expect(seed.status).toBe(200);
    const who = await fetch(`${app.http}/auth/whoami`, { headers: { authorization: `Bearer ${key}` } });
    expect(await who.json()).toMatchObject({ kind: "key", name: "my laptop", scopes: ["*"] });

    // Only the hash is stored.
    const [stored] = await app.store.listKeys();
    expect(stored!.secretHash).toEqual(digestToken(parseApiKey(key)!.secret));

    expect(await (await fetch(`${app.http}/auth/pair`)).json()).toEqual({ pairing: "closed" });
    const again = await post(app, { code });
    expect(again.status).toBe(403);
    expect(again.body).toMatchObject({ error: "access_denied", code: "access_denied" });
    expect(app.audit.some((line) => line.includes('"audit":"pairing.completed"') && line.includes(String(paired.body.id)))).toBe(true);
  });

  test.each([
    ["no form content type", { "content-type": "application/json" }, JSON.stringify({ code: "123456" }), "invalid_request"],
    ["no code", {}, "", "invalid_request"],
    ["five digits", {}, "code=12345", "invalid_request"],
    ["letters", {}, "code=abcdef", "invalid_request"],
    ["the code twice", {}, "code=111111&code=222222", "invalid_request"],
    ["a name with a newline", {}, "code=123456&name=a%0Ab", "invalid_request"],
  ])("malformed (%s): 400 %s, and the live code is not spent", async (_case, headers, body, error) => {
    await using app = await startTestApp();
    const code = await liveCode(app);
    const response = await fetch(`${app.http}/auth/pair`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error });
    expect(await app.store.listKeys()).toEqual([]);
    expect((await post(app, { code })).status).toBe(200);
  });

  test(`${PAIRING_MAX_FAILURES} wrong codes burn the live one: the right code then fails too`, async () => {
    await using app = await startTestApp();
    const code = await liveCode(app);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
    for (let i = 0; i < PAIRING_MAX_FAILURES; i++) {
      const answer = await post(app, { code: wrong });
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: "invalid_grant" });
    }
    const late = await post(app, { code });
    expect(late.status).toBe(400);
    expect(late.body).toMatchObject({ error: "invalid_grant" });
    expect(String(late.body.error_description)).toContain(`get a new one on the device (${CHECKOUT_COMMAND},`);
    expect(await app.store.listKeys()).toEqual([]);
    expect(app.audit.filter((line) => line.includes('"path":"/auth/pair"') && line.includes('"reason":"invalid_grant"'))).toHaveLength(
      PAIRING_MAX_FAILURES + 1,
    );
    // A new code from the device works again.
    expect((await post(app, { code: await liveCode(app) })).status).toBe(200);
  });

  test("guesses count toward the address's ban like any other: the 11th try gets 429 with Retry-After", async () => {
    await using app = await startTestApp({ BAN_EXEMPT: "" });
    for (let i = 0; i < 9; i++) {
      await liveCode(app);
      expect((await post(app, { code: "000000" })).status).toBe(400);
    }
    const tenth = await post(app, { code: "000000" });
    expect(tenth.status).toBe(429);
    const banned = await post(app, { code: await liveCode(app) });
    expect(banned.status).toBe(429);
    expect(Number(banned.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await app.store.listKeys()).toEqual([]);
  });

  test("a client outside the local network is refused (403) before its code is looked at", async () => {
    await using app = await startTestApp({ TRUSTED_PROXIES: "127.0.0.1" });
    const code = await liveCode(app);
    const outside = await post(app, { code }, { "x-forwarded-for": "203.0.113.9" });
    expect(outside.status).toBe(403);
    expect(outside.body).toMatchObject({ error: "access_denied" });
    const lan = await post(app, { code }, { "x-forwarded-for": "192.168.1.23" });
    expect(lan.status).toBe(200);
    trackSecret(String(lan.body.api_key));
  });

  test("a page on a foreign origin cannot pair (no CSRF into the first admin key)", async () => {
    await using app = await startTestApp();
    const code = await liveCode(app);
    const foreign = await post(app, { code }, { origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    expect(await app.store.listKeys()).toEqual([]);
  });

  test("PAIRING=false: no pairing endpoint at all", async () => {
    await using app = await startTestApp({ PAIRING: "false" });
    expect((await fetch(`${app.http}/auth/pair`)).status).toBe(404);
    expect((await post(app, { code: "123456" })).status).toBe(404);
  });
});

async function runCli(args: string[], env: Record<string, string>, cwd: string) {
  const proc = Bun.spawn([process.execPath, "run", CLI, ...args], {
    cwd,
    env: { ...inheritedEnv(cwd), ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  captureOutput(stderr);
  return { stdout, stderr, code };
}

describe("the real server", () => {
  test("as a service (no terminal): the log says how to pair and never holds a code; `cli pair` gives one", async () => {
    using dir = makeTempDir();
    // The server and the CLI see the same clock as this test, faked or not.
    const env = { ...inheritedEnv(dir.path), DATA_DIR: dir.path, PORT: "0", HOST: "127.0.0.1" };
    const server = new ServerProcess(env, dir.path);
    try {
      const port = await server.port();
      const hint = await server.waitFor((line) => typeof line.msg === "string" && line.msg.includes("pair`"));
      expect(hint.level).toBe("warn");
      expect(hint.msg).toContain(`run \`${CHECKOUT_COMMAND}\` on it`);
      expect(hint.msg).not.toContain("tokengate pair");

      const issued = await runCli(["pair", "--json"], env, dir.path);
      expect(issued.code).toBe(0);
      const { code, expires_at } = JSON.parse(issued.stdout) as { code: string; expires_at: string };
      trackSecret(code);
      expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(4 * 60_000);

      const paired = await curl(["-X", "POST", "--data-urlencode", `code=${code}`, `http://127.0.0.1:${port}/auth/pair`]);
      expect(paired.status).toBe(200);
      const key = trackSecret(JSON.parse(paired.body).api_key as string);
      expect((await curl(["-H", `X-Auth-Token: ${key}`, `http://127.0.0.1:${port}/secure-data`])).body).toBe(
        JSON.stringify({ message: "✅ Access granted", data: "Here is your secret data!" }),
      );

      const over = await runCli(["pair"], env, dir.path);
      expect(over.code).toBe(4);
      expect(over.stderr).toContain("pairing is over");
      expect(over.stderr).toContain("bun run cli keys create");
      await server.waitFor((line) => line.msg === "device paired: first admin key created");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 20_000);

  test("in a terminal: the code is shown there (not in a log line), and a browser-style POST redeems it", async () => {
    using dir = makeTempDir();
    // `script` gives the server a real pseudo-terminal, as on a device's console.
    const proc = Bun.spawn(["script", "-qfec", `${process.execPath} run ${ROOT}/server.ts`, "/dev/null"], {
      cwd: dir.path,
      env: { ...inheritedEnv(dir.path), DATA_DIR: dir.path, PORT: "0", HOST: "127.0.0.1", LOG_FORMAT: "json", TERM: "dumb" },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    let screen = "";
    const reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stdout) screen += decoder.decode(chunk, { stream: true });
    })();
    try {
      const deadline = Date.now() + 10_000;
      const ready = () => /pairing code\s+\d{3} \d{3}/.test(screen) && screen.includes("pairing code shown on the terminal");
      while (!ready() && Date.now() < deadline) await Bun.sleep(20);
      const match = /pairing code\s+(\d{3}) (\d{3})/.exec(screen);
      expect(match).not.toBeNull();
      const code = `${match![1]}${match![2]}`;
      const port = Number(/"port":(\d+)/.exec(screen)![1]);
      // The code is on the terminal, outside every JSON log line.
      const logLines = screen.split(/\r?\n/).filter((line) => line.startsWith("{"));
      expect(logLines.some((line) => line.includes("pairing code shown on the terminal"))).toBe(true);
      expect(logLines.some((line) => line.includes(code))).toBe(false);
      expect(screen).toContain(`\`${CHECKOUT_COMMAND}\` on this device makes a new one`);

      const paired = await fetch(`http://127.0.0.1:${port}/auth/pair`, pairForm({ code }));
      expect(paired.status).toBe(200);
      const key = trackSecret(((await paired.json()) as { api_key: string }).api_key);
      expect((await fetch(`http://127.0.0.1:${port}/secure-data`, { headers: { "x-auth-token": key } })).status).toBe(200);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
      await reader;
      // The terminal is the server's whole output here: scan it for the key like any log.
      captureOutput(screen);
    }
  }, 20_000);
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
