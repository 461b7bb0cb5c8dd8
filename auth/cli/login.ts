/**
 * `login --device`: this machine signs in to a gate as a device (RFC 8628), for a headless box. It
 * is a plain HTTP client of the RFC, as any device would be: it asks the gate for a code, shows it
 * and a QR code of the page that takes it, polls the token endpoint at the interval the gate sets
 * (5 s more after each slow_down) until a person approves or denies or the code expires, and
 * writes what it receives to a file only its owner can read.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { renderUnicodeCompact } from "uqr";
import { isoOrNull } from "../core/times.ts";
import { DEVICE_GRANT_TYPE } from "../oauth/device-grant.ts";
import { CLIENT_NAME } from "../secrets/device-codes.ts";
import { EXIT, UsageError, type CliContext, type CommandTable } from "./shared.ts";

/** However long the gate says a code lives, the command gives up after this. */
const MAX_WAIT_MS = 30 * 60_000;

export const DEFAULT_DEVICE_FILE = join(homedir(), ".config", "tokengate", "device.json");

interface LoginOptions {
  readonly origin: string;
  readonly clientId: string;
  readonly scope: string | undefined;
  readonly out: string;
  readonly tls: { readonly ca: string } | undefined;
}

/** RFC 8628 §3.2's answer, checked. */
interface DeviceAuthorization {
  readonly device_code: string;
  readonly user_code: string;
  readonly verification_uri: string;
  readonly verification_uri_complete: string | undefined;
  readonly expires_in: number;
  readonly interval: number;
}

type Json = Record<string, unknown>;

/** This machine's name as a client id (`tokengate-cli` when it has none that fits). */
function defaultClientId(): string {
  const name = hostname()
    .replace(/[^A-Za-z0-9._:-]/g, "-")
    .slice(0, 64);
  return name === "" ? "tokengate-cli" : name;
}

/** The gate's origin from --url, or this machine's own server. */
function readOrigin(url: string | undefined, context: CliContext): string {
  const given = url ?? context.consoleUrls()[0];
  if (given === undefined) throw new UsageError("--url is required: the gate's address, such as http://192.168.1.20:8000");
  try {
    const parsed = new URL(given);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.origin;
  } catch {
    // Refused below, in one message.
  }
  throw new UsageError("--url must be the gate's http:// or https:// address, such as http://192.168.1.20:8000");
}

async function readOptions(args: string[], context: CliContext): Promise<LoginOptions> {
  const { values } = parseArgs({
    args,
    options: {
      device: { type: "boolean", default: false },
      url: { type: "string" },
      "client-id": { type: "string" },
      scope: { type: "string" },
      out: { type: "string" },
      cacert: { type: "string" },
    },
  });
  if (!values.device) throw new UsageError("only --device is supported: tokengate login --device");
  const clientId = values["client-id"] ?? defaultClientId();
  if (!CLIENT_NAME.test(clientId)) throw new UsageError("--client-id must be 1 to 64 letters, digits or . _ : - characters");
  const ca = values.cacert === undefined ? undefined : await Bun.file(values.cacert).text();
  return {
    origin: readOrigin(values.url, context),
    clientId,
    scope: values.scope,
    out: resolve(values.out ?? DEFAULT_DEVICE_FILE),
    tls: ca === undefined ? undefined : { ca },
  };
}

/** A form POST; the answer's status and JSON body, or `undefined` when the gate cannot be reached. */
async function postForm(options: LoginOptions, path: string, fields: Record<string, string>) {
  try {
    const response = await fetch(`${options.origin}${path}`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams(fields),
      // A redirect would re-send the device code (307/308) to wherever it points.
      redirect: "error",
      ...(options.tls === undefined ? {} : { tls: options.tls }),
    });
    const body = (await response.json().catch(() => ({}))) as Json;
    return { status: response.status, body };
  } catch {
    return undefined;
  }
}

const text = (value: unknown) => (typeof value === "string" ? value : undefined);
const seconds = (value: unknown, fallback: number) => (typeof value === "number" && value > 0 && value < 86_400 ? value : fallback);

function readAuthorization(body: Json): DeviceAuthorization | undefined {
  const [deviceCode, userCode, uri] = [text(body.device_code), text(body.user_code), text(body.verification_uri)];
  if (deviceCode === undefined || userCode === undefined || uri === undefined) return undefined;
  return {
    device_code: deviceCode,
    user_code: userCode,
    verification_uri: uri,
    verification_uri_complete: text(body.verification_uri_complete),
    expires_in: seconds(body.expires_in, 600),
    interval: seconds(body.interval, 5),
  };
}

/** The gate's refusal in its own words (its descriptions are written for people). */
const refusalOf = (body: Json) => text(body.error_description) ?? text(body.error) ?? "no reason given";

/** What the person at the terminal is asked to do: where, which code, the QR code, until when. */
function describeCode(started: DeviceAuthorization, clientId: string, deadline: number): string {
  const complete = started.verification_uri_complete;
  const qr = complete === undefined ? "" : `\n${renderUnicodeCompact(complete, { ecc: "L", border: 2 })}\n`;
  return [
    `To let "${clientId}" in, open ${started.verification_uri} on a phone or computer`,
    `and enter the code  ${started.user_code}`,
    complete === undefined ? "" : `or scan this QR code (it opens ${complete}):${qr}`,
    `Waiting for approval: the code works until ${new Date(deadline).toTimeString().slice(0, 5)} (${Math.round(started.expires_in / 60)} minutes).`,
    "",
  ].join("\n");
}

/** What is stored: the gate, the device's name and its credential; expiry as a date. */
function credentialFile(options: LoginOptions, body: Json, now: number): string {
  const expiresIn = typeof body.expires_in === "number" ? body.expires_in : undefined;
  const stored = {
    gate: options.origin,
    client_id: options.clientId,
    token_type: body.token_type,
    access_token: body.access_token,
    expires_at: expiresIn === undefined ? null : isoOrNull(now + expiresIn * 1000),
    refresh_token: body.refresh_token,
    scope: body.scope,
    key_id: body.key_id,
    obtained_at: isoOrNull(now),
  };
  return `${JSON.stringify(stored, null, 2)}\n`;
}

/** Writes the file with mode 0600 from its first byte (a private temporary file, renamed into place). */
function writePrivateFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Random, not the pid: a leftover file of a reused pid would make "wx" fail after the code is spent.
  const temporary = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600, flag: "wx" });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Polls until the person decides or the code expires (§3.4–3.5); the token response, or the exit code. */
async function pollForTokens(options: LoginOptions, started: DeviceAuthorization, context: CliContext): Promise<Json | number> {
  const deadline = context.now() + Math.min(started.expires_in * 1000, MAX_WAIT_MS);
  let interval = started.interval;
  const fields = { grant_type: DEVICE_GRANT_TYPE, device_code: started.device_code, client_id: options.clientId };
  while (context.now() + interval * 1000 < deadline) {
    // A little over the interval: the gate counts from its own reading of the last poll.
    await sleep(interval * 1000 + 100);
    const answer = await postForm(options, "/auth/token", fields);
    if (answer === undefined) continue;
    if (answer.status === 200) return answer.body;
    const error = text(answer.body.error);
    if (error === "authorization_pending") continue;
    if (error === "slow_down") interval += 5;
    else return explainEnd(error, answer.body, context);
  }
  context.io.err("The code expired before anyone approved it. Run the command again for a new one.\n");
  return EXIT.failure;
}

function explainEnd(error: string | undefined, body: Json, context: CliContext): number {
  if (error === "access_denied") context.io.err("Denied: the person who looked at the request did not let this device in.\n");
  else if (error === "expired_token") context.io.err("The code expired before anyone approved it. Run the command again for a new one.\n");
  else context.io.err(`The gate refused the device login: ${refusalOf(body)}\n`);
  return EXIT.failure;
}

async function runDeviceLogin(args: string[], context: CliContext): Promise<number> {
  const options = await readOptions(args, context);
  const fields: Record<string, string> = { client_id: options.clientId, ...(options.scope === undefined ? {} : { scope: options.scope }) };
  const asked = await postForm(options, "/auth/device_authorization", fields);
  if (asked === undefined) {
    context.io.err(`Cannot reach the gate at ${options.origin}. Check --url and the network.\n`);
    return EXIT.failure;
  }
  const started = asked.status === 200 ? readAuthorization(asked.body) : undefined;
  if (started === undefined) {
    context.io.err(`The gate refused to start a device login: ${refusalOf(asked.body)}\n`);
    return EXIT.failure;
  }
  context.io.out(describeCode(started, options.clientId, context.now() + started.expires_in * 1000));
  const tokens = await pollForTokens(options, started, context);
  if (typeof tokens === "number") return tokens;
  try {
    writePrivateFile(options.out, credentialFile(options, tokens, context.now()));
  } catch (error) {
    // The code is spent: say where writing failed, never what would have been written.
    const why = error instanceof Error && "code" in error ? String(error.code) : "an error";
    context.io.err(`Approved, but ${options.out} could not be written (${why}); start a new device login with a writable --out.\n`);
    return EXIT.failure;
  }
  const scope = text(tokens.scope) ?? "";
  context.io.out(`Approved. "${options.clientId}" may now use: ${scope || "nothing"}.\nSaved to ${options.out} (mode 600).\n`);
  return EXIT.ok;
}

export const loginCommands: CommandTable = {
  login: {
    summary: ["login --device [--url URL] [--client-id NAME]", "sign this machine in as a device, approved from a phone"],
    help: `Usage: bun run cli login --device [--url URL] [--client-id NAME] [--scope "a b"] [--out FILE] [--cacert FILE]

Signs this machine in to a gate as a device without a keyboard (OAuth 2.0 device login, RFC 8628).
It prints a code and a QR code: open the address on a phone or computer where you are signed in,
check what the device asks for and approve it. The command waits (polling at the gate's pace)
and writes what the device receives to FILE, readable by you alone (mode 600): an access token
and a refresh token, or an API key if the gate's DEVICE_CLIENTS says so for this client id.

  --url URL         the gate, e.g. http://192.168.1.20:8000 (default: this machine's own server)
  --client-id NAME  the device's name, shown to the person who approves (default: this machine's name)
  --scope "a b"     what the device asks for (default: what the gate gives a device: data:read ws:connect)
  --out FILE        where to write it (default: ~/.config/tokengate/device.json)
  --cacert FILE     trust this PEM certificate for an https:// gate with a self-signed one

Exit code 0 once approved and saved; 1 when denied, expired or refused; 2 for wrong arguments.
`,
    run: runDeviceLogin,
  },
};
