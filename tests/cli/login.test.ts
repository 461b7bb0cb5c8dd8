/**
 * `tokengate login --device` as a subprocess (the real `bun run cli.ts`) against the real app over
 * real sockets: it prints the code and a QR code (decoded here by jsQR from the terminal's block
 * characters) of verification_uri_complete, a person approves through the API with a session
 * cookie, and the command writes the tokens to a file of mode 0600 that work on /secure-data.
 * Denied and expired end it with exit code 1 and a plain sentence; no token reaches its output.
 */
import { describe, expect, test } from "bun:test";
import jsQR from "jsqr";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../../auth/cli/shared.ts";
import { CLI_ENTRY, runCliProcess } from "../support/cli.ts";
import { asPage, callApproval, signInPerson } from "../support/device.ts";
import { clockEnvironment, makeTempDir, startTestApp, type TestApp } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

/** The command running, its output read as it comes. */
class LoginProcess {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout = "";
  stderr = "";
  readonly #done: Promise<void>;

  constructor(args: readonly string[], home: string) {
    this.proc = Bun.spawn([process.execPath, "run", CLI_ENTRY, "login", "--device", ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ...clockEnvironment() },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this[key] += decoder.decode(chunk, { stream: true });
    };
    this.#done = Promise.all([pump(this.proc.stdout, "stdout"), pump(this.proc.stderr, "stderr")]).then(() => undefined);
  }

  /** The user code, once the command has printed it. */
  async userCode(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = /enter the code {2}([A-Z]{4}-[A-Z]{4})/.exec(this.stdout);
      if (match !== null) return match[1]!;
      if (this.proc.exitCode !== null) break;
      await Bun.sleep(20);
    }
    throw new Error(`no user code printed (exit ${this.proc.exitCode}): ${this.stderr}`);
  }

  /** Exit code, once all output is read; the output joins the leak scan. */
  async exited(): Promise<number> {
    const code = await this.proc.exited;
    await this.#done;
    captureOutput(this.stdout);
    captureOutput(this.stderr);
    return code;
  }
}

/** The terminal QR code (uqr's renderUnicodeCompact: two modules a character, light ones drawn) decoded by jsQR. */
function decodeTerminalQr(text: string): string | undefined {
  const rows = text.split("\n").filter((line) => line.length > 20 && /^[█▀▄ ]+$/.test(line));
  const light = (char: string, top: boolean) => char === "█" || (top ? char === "▀" : char === "▄");
  const modules = rows.flatMap((line) => [[...line].map((char) => light(char, true)), [...line].map((char) => light(char, false))]);
  const scale = 8;
  const margin = 4;
  const size = (Math.max(...modules.map((row) => row.length)) + 2 * margin) * scale;
  const height = (modules.length + 2 * margin) * scale;
  const pixels = new Uint8ClampedArray(size * height * 4).fill(255);
  modules.forEach((row, y) =>
    row.forEach((isLight, x) => {
      if (isLight) return;
      for (let dy = 0; dy < scale; dy++)
        for (let dx = 0; dx < scale; dx++) {
          const offset = (((y + margin) * scale + dy) * size + (x + margin) * scale + dx) * 4;
          pixels.fill(0, offset, offset + 3);
        }
    }),
  );
  return jsQR(pixels, size, height)?.data;
}

async function approveAs(app: TestApp, userCode: string, action: "approve" | "deny") {
  const person = await signInPerson(app, `person-${action}`, ["viewer"]);
  return callApproval(app, action, { user_code: userCode }, asPage(app, person));
}

describe("tokengate login --device", () => {
  test("prints the code and a QR code of the page; approved, it writes working tokens to a file of mode 0600", async () => {
    await using app = await startTestApp();
    using home = makeTempDir();
    const out = join(home.path, "nested", "device.json");
    const login = new LoginProcess(["--url", app.http, "--client-id", "headless-box", "--scope", "data:read", "--out", out], home.path);
    const userCode = await login.userCode();
    expect(login.stdout).toContain(`open ${app.http}/auth/device`);
    const complete = `${app.http}/auth/device?user_code=${userCode}`;
    expect(login.stdout).toContain(complete);
    expect(decodeTerminalQr(login.stdout)).toBe(complete);
    expect((await approveAs(app, userCode, "approve")).status).toBe(200);
    expect(await login.exited()).toBe(EXIT.ok);
    expect(login.stdout).toContain('Approved. "headless-box" may now use: data:read.');
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(join(home.path, "nested")).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(readFileSync(out, "utf8")) as Record<string, string>;
    trackSecret(stored.access_token!);
    trackSecret(stored.refresh_token!);
    expect(stored).toMatchObject({ gate: app.http, client_id: "headless-box", token_type: "Bearer", scope: "data:read" });
    const works = await fetch(`${app.http}/secure-data`, { headers: { authorization: `Bearer ${stored.access_token}` } });
    expect(works.status).toBe(200);
    expectNoSecretsInOutput();
  }, 40_000);

  test("an existing file with a wider mode is replaced by one of mode 0600", async () => {
    await using app = await startTestApp();
    using home = makeTempDir();
    const out = join(home.path, "device.json");
    writeFileSync(out, "{}", { mode: 0o644 });
    const login = new LoginProcess(["--url", app.http, "--client-id", "box", "--out", out], home.path);
    await approveAs(app, await login.userCode(), "approve");
    expect(await login.exited()).toBe(EXIT.ok);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(out, "utf8")) as Record<string, string>;
    trackSecret(stored.access_token!);
    trackSecret(stored.refresh_token!);
    expect(stored.scope).toBe("data:read ws:connect");
    expectNoSecretsInOutput();
  }, 40_000);

  test("denied: exit 1, a plain sentence, no file", async () => {
    await using app = await startTestApp();
    using home = makeTempDir();
    const out = join(home.path, "device.json");
    const login = new LoginProcess(["--url", app.http, "--client-id", "box", "--out", out], home.path);
    expect((await approveAs(app, await login.userCode(), "deny")).status).toBe(200);
    expect(await login.exited()).toBe(EXIT.failure);
    expect(login.stderr).toContain("Denied: the person who looked at the request did not let this device in.");
    expect(() => statSync(out)).toThrow();
  }, 40_000);

  test("expired (the gate's clock moved past the code's 10 minutes): exit 1, told to start again", async () => {
    let offset = 0;
    await using app = await startTestApp({}, { now: () => Date.now() + offset });
    using home = makeTempDir();
    const login = new LoginProcess(["--url", app.http, "--client-id", "box", "--out", join(home.path, "d.json")], home.path);
    await login.userCode();
    offset = 600_000;
    expect(await login.exited()).toBe(EXIT.failure);
    expect(login.stderr).toContain("The code expired before anyone approved it. Run the command again for a new one.");
  }, 40_000);

  test("a gate that refuses the client, an unreachable gate, and a missing --device are said plainly", async () => {
    await using app = await startTestApp({ DEVICE_CLIENTS: "tv-box" });
    using home = makeTempDir();
    const refused = await runCliProcess(["login", "--device", "--url", app.http, "--client-id", "fridge"], { env: { HOME: home.path } });
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toContain("The gate refused to start a device login: This client_id may not log in as a device here");
    const unreachable = await runCliProcess(["login", "--device", "--url", "http://127.0.0.1:9"], { env: { HOME: home.path } });
    expect(unreachable.code).toBe(EXIT.failure);
    expect(unreachable.stderr).toContain("Cannot reach the gate at http://127.0.0.1:9");
    const usage = await runCliProcess(["login", "--url", app.http], { env: { HOME: home.path } });
    expect(usage.code).toBe(EXIT.usage);
    expect(usage.stderr).toContain("only --device is supported");
    expectNoSecretsInOutput();
  }, 40_000);
});
