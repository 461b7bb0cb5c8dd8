/**
 * `users add | list | passwd | disable | enable` (auth/cli/users.ts) as the real CLI subprocess:
 * passwords piped in or typed at a real pseudo-terminal, and the running server following.
 */
import { describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { cli, cliWithInput, makeDataDir, runCliInTerminal } from "../support/cli.ts";
import { curl, ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";
import { openDataDirStore } from "../support/stores.ts";

/** Whether the password the store holds for `username` is `password`, read from the store itself. */
async function verifyStoredPassword(dataDir: string, username: string, password: string): Promise<boolean> {
  const store = await openDataDirStore(dataDir);
  try {
    return await Bun.password.verify(password, (await store.getUser(username))!.passwordHash);
  } finally {
    await store.close();
  }
}

describe("users", () => {
  test("add (password on stdin), list, passwd, disable: the running server follows, curl -u works", async () => {
    using dir = await makeDataDir();
    const password = trackSecret("first password for alice");
    const added = await cliWithInput(dir.path, `${password}\n`, "users", "add", "alice", "--role", "viewer");
    expect(added.code).toBe(EXIT.ok);
    expect(added.stdout).toContain("scopes: data:read ws:connect");
    expect(added.stdout + added.stderr).not.toContain(password);

    const server = new ServerProcess(
      { AUTH_TOKEN: newSecret(), BASIC_AUTH: "true", PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path },
      dir.path,
    );
    const port = await server.port();
    expect((await curl(["-u", `alice:${password}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);

    const second = trackSecret("second password for alice");
    expect((await cliWithInput(dir.path, `${second}\n`, "users", "passwd", "alice")).code).toBe(EXIT.ok);
    expect((await curl(["-u", `alice:${password}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(401);
    expect((await curl(["-u", `alice:${second}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);

    expect((await cli(dir.path, "users", "disable", "alice")).code).toBe(EXIT.ok);
    expect((await curl(["-u", `alice:${second}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(401);
    const listed = JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout) as Array<{ username: string; disabled: boolean }>;
    expect(listed).toEqual([expect.objectContaining({ username: "alice", disabled: true })]);
    expect(await server.stop()).toBe(0);
  });

  test.each([
    [["users", "add", "bob"], "x-long-enough-pw\n", EXIT.usage, "--role"],
    [["users", "add", "bob", "--role", "root"], "x-long-enough-pw\n", EXIT.usage, "unknown role root"],
    [["users", "add", "bob", "--role", "admin"], "short\n", EXIT.usage, "at least 10"],
    [["users", "add", "b:ob", "--role", "admin"], "x-long-enough-pw\n", EXIT.usage, "username"],
    [["users", "passwd", "nobody"], "x-long-enough-pw\n", EXIT.notFound, "No user named nobody"],
    [["users", "disable", "nobody"], "", EXIT.notFound, "No user named nobody"],
  ])("%p exits %d", async (args, input, code, text) => {
    using dir = await makeDataDir();
    const result = await cliWithInput(dir.path, input as string, ...(args as string[]));
    expect(result.code).toBe(code as number);
    expect(result.stdout + result.stderr).toContain(text as string);
  });
});

describe("passwords", () => {
  const typed = trackSecret("typed at the terminal 1");

  test("at a terminal: asked twice without echo; the same answer twice adds the user", async () => {
    using dir = await makeDataDir();
    const result = await runCliInTerminal(["users", "add", "alice", "--role", "viewer"], { DATA_DIR: dir.path }, [
      { prompt: "New password: ", reply: typed },
      { prompt: "Repeat password: ", reply: typed },
    ]);
    expect(result.code).toBe(EXIT.ok);
    expect(result.screen).toContain("Added user alice");
    expect(result.screen).not.toContain(typed);
    expect(await verifyStoredPassword(dir.path, "alice", typed)).toBe(true);
  });

  test("at a terminal: two different answers exit 2 and store nothing (users add and users passwd)", async () => {
    using dir = await makeDataDir();
    const other = trackSecret("typed differently 2");
    const steps = [
      { prompt: "New password: ", reply: typed },
      { prompt: "Repeat password: ", reply: other },
    ];
    const add = await runCliInTerminal(["users", "add", "alice", "--role", "viewer"], { DATA_DIR: dir.path }, steps);
    expect(add.code).toBe(EXIT.usage);
    expect(add.screen).toContain("the two passwords differ; nothing was changed");
    expect(JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout)).toEqual([]);

    const first = trackSecret("the password piped in first");
    expect((await cliWithInput(dir.path, `${first}\n`, "users", "add", "bob", "--role", "viewer")).code).toBe(EXIT.ok);
    const passwd = await runCliInTerminal(["users", "passwd", "bob"], { DATA_DIR: dir.path }, steps);
    expect(passwd.code).toBe(EXIT.usage);
    expect(passwd.screen).toContain("the two passwords differ");
    expect(await verifyStoredPassword(dir.path, "bob", first)).toBe(true);
  });

  test("piped: the first line is the password, read once (no repeat)", async () => {
    using dir = await makeDataDir();
    const first = trackSecret("first line is the password");
    const result = await cliWithInput(dir.path, `${first}\nsecond line ignored\n`, "users", "add", "carol", "--role", "viewer");
    expect(result.code).toBe(EXIT.ok);
    expect(result.stderr).not.toContain("Repeat");
    expect(await verifyStoredPassword(dir.path, "carol", first)).toBe(true);
  });

  test.each([
    ["empty stdin", ""],
    ["an empty first line", "\n"],
  ])('%s: "no password given", exit 2, nothing stored', async (_case, input) => {
    using dir = await makeDataDir();
    const add = await cliWithInput(dir.path, input, "users", "add", "dave", "--role", "viewer");
    expect(add.code).toBe(EXIT.usage);
    expect(add.stderr).toContain("no password given");
    expect(JSON.parse((await cli(dir.path, "users", "list", "--json")).stdout)).toEqual([]);
  });
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
