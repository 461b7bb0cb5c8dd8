/** `signing-keys list | rotate` (auth/cli/signing-keys.ts) as the real CLI subprocess, next to the real server. */
import { describe, expect, test } from "bun:test";
import { EXIT } from "../../auth/cli/shared.ts";
import { cli, cliWithInput, makeDataDir } from "../support/cli.ts";
import { curl, ServerProcess } from "../support/harness.ts";
import { expectNoSecretsInOutput, newSecret, trackSecret } from "../support/secrets.ts";

describe("signing keys", () => {
  test("rotate: the running server signs with the new key, old tokens stay valid, the JWKS holds both", async () => {
    using dir = await makeDataDir();
    const password = trackSecret("rotation test password");
    expect((await cliWithInput(dir.path, `${password}\n`, "users", "add", "erin", "--role", "viewer")).code).toBe(EXIT.ok);
    const server = new ServerProcess({ AUTH_TOKEN: newSecret(), PORT: "0", HOST: "127.0.0.1", DATA_DIR: dir.path }, dir.path);
    const port = await server.port();
    const url = `http://127.0.0.1:${port}`;
    const issue = async () => {
      const result = await curl([
        "-d",
        "grant_type=password",
        "-d",
        "username=erin",
        "--data-urlencode",
        `password=${password}`,
        `${url}/auth/token`,
      ]);
      const body = JSON.parse(result.body) as { access_token: string; refresh_token: string };
      trackSecret(body.access_token);
      trackSecret(body.refresh_token);
      return body.access_token;
    };
    const kidOf = (jwt: string) => (JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const before = await issue();

    const rotated = await cli(dir.path, "signing-keys", "rotate");
    expect(rotated.code).toBe(EXIT.ok);
    const listed = JSON.parse((await cli(dir.path, "signing-keys", "list", "--json")).stdout) as Array<{ kid: string; state: string }>;
    expect(listed.map((key) => key.state).sort()).toEqual(["signing", "verifying"]);
    const newKid = listed.find((key) => key.state === "signing")!.kid;

    await server.waitFor((line) => line.msg === "signing keys reloaded");
    const after = await issue();
    expect(kidOf(after)).toBe(newKid);
    expect(kidOf(before)).not.toBe(newKid);
    for (const jwt of [before, after]) {
      expect((await curl(["-H", `Authorization: Bearer ${jwt}`, `${url}/secure-data`])).status).toBe(200);
    }
    const jwks = JSON.parse((await curl([`${url}/.well-known/jwks.json`])).body) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((key) => key.kid).sort()).toEqual([kidOf(before), newKid].sort());
    expect(await server.stop()).toBe(0);
  });
});

test("no secret used in this file reached any server output or CLI error", () => {
  expectNoSecretsInOutput();
});
