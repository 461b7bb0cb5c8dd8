/**
 * The CLI as a whole, as the real subprocess (`bun run cli.ts`): the dispatcher (auth/cli/commands.ts)
 * and its main help, stored times every listing shows (auth/cli/shared.ts), a store that does not
 * exist and a reader that stops early (cli.ts). Each command group has its own file beside this one.
 * Stores are made as the server's first start makes them (openDataDirStore), since the CLI
 * refuses a store that does not exist.
 */
import { describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DATABASE_FILE } from "../../auth/config/config.ts";
import { COMMANDS, runCli } from "../../auth/cli/commands.ts";
import { EXIT, type CliContext } from "../../auth/cli/shared.ts";
import { EXIT_CLOSED_PIPE } from "../../cli.ts";
import { cli, cliWithInput, createKey, expectCliAnswer, listKeys, makeDataDir, runCliProcess, CLI_ENTRY } from "../support/cli.ts";
import { clockEnvironment, makeTempDir } from "../support/harness.ts";
import { captureOutput, expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

describe("usage", () => {
  test.each([
    [["--help"], EXIT.ok, "Usage: bun run cli <command>"],
    [[], EXIT.usage, "Commands:"],
    [["keys", "explode"], EXIT.usage, "Unknown command"],
  ])("%p exits %d", (args, code, text) => expectCliAnswer(args as string[], code, text as string));
});

/** The dispatcher in process, with a context that opens nothing: enough for --help. */
async function runForHelp(argv: string[], program: string): Promise<{ code: number; out: string }> {
  let out = "";
  const refuse = () => Promise.reject(new Error("--help opens nothing"));
  const context: CliContext = {
    io: { out: (text) => void (out += text), err: (text) => void (out += text) },
    openStore: refuse,
    now: () => 0,
    roleScopes: new Map(),
    knownScopes: [],
    readPassword: refuse,
    typedPasswords: false,
    jwtAlg: "EdDSA",
    program,
    consoleUrls: () => [],
    examine: refuse,
  };
  return { code: await runCli(argv, context), out };
}

describe("the command table", () => {
  test.each([...COMMANDS.keys()])("%s --help prints its own help, under the name the user started", async (name) => {
    const answer = await runForHelp([...name.split(" "), "--help"], "tokengate");
    expect(answer.code).toBe(EXIT.ok);
    expect(answer.out).toBe(COMMANDS.get(name)!.help.replaceAll("bun run cli", "tokengate"));
    expect(answer.out).toStartWith(`Usage: tokengate ${name}`);
  });

  test("the main help lists every command's summary, in the table's order, descriptions in one column", async () => {
    const { out } = await runForHelp(["--help"], "bun run cli");
    const listed = out.split("\n").filter((line) => line.startsWith("  "));
    const summaries = [...COMMANDS.values()].flatMap((command) => (command.summary === undefined ? [] : [command.summary]));
    expect(listed).toHaveLength(summaries.length);
    listed.forEach((line, index) => {
      const [usage, does] = summaries[index]!;
      expect(line.trimEnd()).toMatch(new RegExp(`^  ${RegExp.escape(usage)} +${RegExp.escape(does)}$`));
      expect(line.indexOf(does)).toBe(listed[0]!.indexOf(summaries[0]![1]));
    });
  });
});

/** Times no Date can hold, as an older version, a hand edit or a typo before the range check could store them. */
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

function storeAbsurdRows(dataDir: string, now: number): void {
  const db = new Database(join(dataDir, DATABASE_FILE));
  try {
    const key = db.prepare(
      "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, expires_at, revoked_at, last_used_at, last_used_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    key.run("0123456789ab", "extremes", new Uint8Array(32), "data:read", INT64_MIN, INT64_MAX, null, INT64_MAX, "10.0.0.1");
    // What `keys create --expires 100000000d` used to store: a finite number past the end of Date.
    key.run("0123456789ac", "typo", new Uint8Array(32), "data:read", now, now + 100_000_000 * 86_400_000, null, null, null);
    db.prepare("INSERT INTO users (username, password_hash, roles, created_at, updated_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?)").run(
      "ghost",
      "$argon2id$v=19$m=65536,t=2,p=1$x$y",
      "viewer",
      INT64_MAX,
      INT64_MAX,
      null,
    );
    db.prepare("INSERT INTO bans (subject, started_at, until, level) VALUES (?, ?, ?, ?)").run("addr:10.0.0.9", INT64_MIN, INT64_MAX, 1);
    db.prepare("INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)").run(
      "absurd-kid",
      "EdDSA",
      "{}",
      "{}",
      INT64_MAX,
      INT64_MIN,
    );
  } finally {
    db.close();
  }
}

describe("stored times no Date can hold", () => {
  test.each([
    [["keys", "list"]],
    [["keys", "list", "--json"]],
    [["users", "list"]],
    [["users", "list", "--json"]],
    [["bans", "list"]],
    [["bans", "list", "--json"]],
    [["signing-keys", "list"]],
    [["signing-keys", "list", "--json"]],
  ])('%p shows them as "invalid date" instead of failing', async (args) => {
    using dir = await makeDataDir();
    storeAbsurdRows(dir.path, Date.now());
    const result = await cli(dir.path, ...args);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(EXIT.ok);
    expect(result.stdout).toContain("invalid date");
    if (args.includes("--json")) expect(() => JSON.parse(result.stdout) as unknown).not.toThrow();
  });

  test("rotating a key whose stored lifetime is out of range asks for --expires instead of copying it", async () => {
    using dir = await makeDataDir();
    storeAbsurdRows(dir.path, Date.now());
    const refused = await cli(dir.path, "keys", "rotate", "0123456789ac");
    expect(refused.code).toBe(EXIT.usage);
    expect(refused.stderr).toContain("give the new key's lifetime with --expires");
    const rotated = await cli(dir.path, "keys", "rotate", "0123456789ac", "--expires", "30d", "--json");
    expect(rotated.code).toBe(EXIT.ok);
    const replacement = JSON.parse(rotated.stdout) as { key: string; created_at: string; expires_at: string };
    trackSecret(replacement.key);
    expect(Date.parse(replacement.expires_at) - Date.parse(replacement.created_at)).toBe(30 * 86_400_000);
  });
});

describe("a store that does not exist", () => {
  test.each([
    [["keys", "list"]],
    [["keys", "list", "--json"]],
    [["keys", "create", "--name", "lamp"]],
    [["keys", "revoke", "0123456789ab"]],
    [["keys", "rotate", "0123456789ab"]],
    [["users", "list"]],
    [["users", "add", "alice", "--role", "viewer"]],
    [["users", "passwd", "alice"]],
    [["users", "disable", "alice"]],
    [["bans", "list"]],
    [["bans", "clear"]],
    [["signing-keys", "list"]],
    [["signing-keys", "rotate"]],
    [["pair"]],
  ])("%p exits 1, names the path and the fix, and creates nothing", async (args) => {
    using dir = makeTempDir();
    const dataDir = join(dir.path, "data");
    const result = await cliWithInput(dataDir, `${trackSecret("a password never stored")}\n`, ...args);
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain(`no tokengate store at ${join(dataDir, DATABASE_FILE)}: ${dataDir} does not exist`);
    expect(result.stderr).toContain("start the server once with this DATA_DIR");
    expect(result.stdout).not.toContain("tg_");
    expect(existsSync(dataDir)).toBe(false);
  });

  test("a data directory without a database is refused too, and stays empty", async () => {
    using dir = makeTempDir();
    const result = await cli(dir.path, "keys", "create", "--name", "lamp");
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain(`${dir.path} holds no ${DATABASE_FILE}`);
    expect(existsSync(join(dir.path, DATABASE_FILE))).toBe(false);
  });

  test("DATA_DIR unset: the message says it means ./data of the current directory, which stays untouched", async () => {
    using dir = makeTempDir();
    const result = await runCliProcess(["keys", "list"], { env: {}, cwd: dir.path });
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain("DATA_DIR (unset, so ./data under the current directory)");
    expect(existsSync(join(dir.path, "data"))).toBe(false);
  });

  test("--create-store makes it on purpose (keys create, users add); other commands then find it", async () => {
    using dir = makeTempDir();
    const keysDir = join(dir.path, "for-keys");
    const created = await createKey(keysDir, "--name", "lamp", "--create-store");
    expect((await listKeys(keysDir)).map((key) => key.id)).toEqual([created.id]);
    const usersDir = join(dir.path, "for-users");
    const password = trackSecret("a password for the new store");
    expect((await cliWithInput(usersDir, `${password}\n`, "users", "add", "alice", "--role", "viewer", "--create-store")).code).toBe(
      EXIT.ok,
    );
    expect(JSON.parse((await cli(usersDir, "users", "list", "--json")).stdout)).toEqual([expect.objectContaining({ username: "alice" })]);
  });

  test("--create-store is refused where it makes no sense (keys list)", async () => {
    using dir = makeTempDir();
    const result = await cli(join(dir.path, "data"), "keys", "list", "--create-store");
    expect(result.code).toBe(EXIT.usage);
    expect(existsSync(join(dir.path, "data"))).toBe(false);
  });
});

describe("a reader that stops early", () => {
  test.each([
    ["keys list | true", "keys list | true", EXIT_CLOSED_PIPE],
    ["keys list --json | true", "keys list --json | true", EXIT_CLOSED_PIPE],
    ["keys list | head -c 10", "keys list | head -c 10 >/dev/null", EXIT_CLOSED_PIPE],
    ["keys list | wc -c (read to the end)", "keys list | wc -c >/dev/null", EXIT.ok],
  ])("%s: no stack trace, exit %d", async (_case, pipeline, code) => {
    using dir = await makeDataDir();
    const db = new Database(join(dir.path, DATABASE_FILE));
    const insert = db.prepare("INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)");
    // Far more than a pipe buffer (64 KiB): the writer is still writing when the reader leaves.
    db.transaction(() => {
      for (let i = 0; i < 800; i++)
        insert.run(i.toString(16).padStart(12, "0"), `device ${i} ${"x".repeat(150)}`, new Uint8Array(32), "data:read", 1_700_000_000_000);
    })();
    db.close();
    const [command, ...rest] = pipeline.split(" | ");
    const script = `"$0" run "$1" ${command} | ${rest.join(" | ")}; echo "cli=\${PIPESTATUS[0]}"`;
    const proc = Bun.spawn(["bash", "-c", script, process.execPath, CLI_ENTRY], {
      env: { PATH: process.env.PATH ?? "", ...clockEnvironment(), DATA_DIR: dir.path },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    captureOutput(stderr);
    expect(stderr).toBe("");
    expect(stdout.trim()).toBe(`cli=${code}`);
  });
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
