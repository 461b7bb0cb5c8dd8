/** Reading the client of a token request from HTTP Basic or the form: malformed input is a refusal, never a throw. */
import { describe, expect, test } from "bun:test";
import { GateError, type GateErrorKind } from "../../auth/core/errors.ts";
import { readClient, readPublicClient } from "../../auth/oauth/token-shared.ts";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const post = (authorization?: string) =>
  new Request("http://127.0.0.1/auth/token", { method: "POST", headers: authorization === undefined ? {} : { authorization } });
/** The refusal's kind, or the outcome itself when it is not a refusal (so a wrong answer shows in the failure). */
const kindOf = (outcome: unknown) => (outcome instanceof GateError ? outcome.kind : outcome);
/** A case: its name, the Authorization header, the form, and the kind of refusal expected. */
type RefusedCase = [string, string | undefined, [string, string][], GateErrorKind];

describe("confidential clients (client_credentials)", () => {
  test("from HTTP Basic (form-decoded) or from the form", () => {
    expect(readClient(post(basic("tg%5Fid", "a+b")), new Map())).toEqual({ clientId: "tg_id", secret: "a b" });
    expect(
      readClient(
        post(),
        new Map([
          ["client_id", "id"],
          ["client_secret", "s"],
        ]),
      ),
    ).toEqual({ clientId: "id", secret: "s" });
  });

  test.each<RefusedCase>([
    ["both Basic and a form secret", basic("id", "s"), [["client_secret", "s"]], "invalid_request"],
    // Malformed client authentication is a client bug, not a guessed secret: never counted toward a ban.
    ["a broken percent-encoding in Basic", basic("%E0%A4%A", "s"), [], "invalid_client"],
    ["a Bearer header", "Bearer abc", [], "invalid_client"],
    ["nothing at all", undefined, [], "invalid_client"],
  ])("%s is refused", (_name, header, form, kind) => {
    expect(kindOf(readClient(post(header), new Map(form)))).toBe(kind);
  });
});

describe("public clients (password and refresh grants)", () => {
  test("client_id from Basic with an empty secret, from the form, or none", () => {
    expect(readPublicClient(post(basic("thermostat-app", "")), new Map())).toBe("thermostat-app");
    expect(readPublicClient(post(), new Map([["client_id", "app"]]))).toBe("app");
    expect(readPublicClient(post(), new Map())).toBeUndefined();
  });

  test.each<RefusedCase>([
    ["a secret in Basic", basic("app", "s"), [], "invalid_client"],
    ["a client_secret in the form beside Basic", basic("app", ""), [["client_secret", "s"]], "invalid_client"],
    ["two different client ids", basic("app", ""), [["client_id", "other"]], "invalid_request"],
    // A malformed header is a client bug, not a guessed secret: refused, never counted toward a ban.
    ["a broken percent-encoding in Basic", basic("%zz", ""), [], "invalid_client"],
    [
      "a client_secret in the form without Basic",
      undefined,
      [
        ["client_id", "app"],
        ["client_secret", "s"],
      ],
      "invalid_client",
    ],
    ["a client id with a space", undefined, [["client_id", "my app"]], "invalid_request"],
    [
      "an API key as client_id",
      undefined,
      [["client_id", "tg_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"]],
      "invalid_request",
    ],
  ])("%s is refused", (_name, header, form, kind) => {
    expect(kindOf(readPublicClient(post(header), new Map(form)))).toBe(kind);
  });
});
