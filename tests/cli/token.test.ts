/** `token new` (auth/cli/token.ts) as the real CLI subprocess; the real server accepts what it prints. */
import { describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { cli, expectCliAnswer } from "../support/cli.ts";
import { curl, makeTempDir, ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, trackSecret } from "../support/secrets.ts";

describe("usage", () => {
  test.each([[["token", "new", "--help"], EXIT.ok, "AUTH_TOKEN"]])("%p exits %d", (args, code, text) =>
    expectCliAnswer(args as string[], code, text as string),
  );

  test("token new prints a fresh strong secret that the server accepts as AUTH_TOKEN", async () => {
    using dir = makeTempDir();
    const first = (await cli(dir.path, "token", "new")).stdout.trim();
    const second = (await cli(dir.path, "token", "new")).stdout.trim();
    trackSecret(first);
    trackSecret(second);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first).not.toBe(second);
    const server = new ServerProcess({ AUTH_TOKEN: first, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    expect((await curl(["-H", `X-Auth-Token: ${first}`, `http://127.0.0.1:${port}/secure-data`])).status).toBe(200);
    expect(await server.stop()).toBe(0);
  });
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
