/**
 * `signing-keys list | rotate`: the keys that sign the server's JWTs. A retired key keeps
 * verifying (and stays in the JWKS) until the last token it signed has expired.
 */
import { parseArgs } from "node:util";
import { generateSigningKey, usableKeys, type SigningKeyRecord } from "../secrets/jwt.ts";
import { EXIT, iso, isoOrNull, parseJsonFlag, printListing, withStore, type Command, type CommandTable } from "./shared.ts";

function signingKeyState(key: SigningKeyRecord, now: number): string {
  if (key.retiredAt === null) return "signing";
  return usableKeys([key], key.alg, now).length > 0 ? "verifying" : "expired";
}

const listSigningKeysCommand: Command = {
  summary: ["signing-keys list [--json]", "JWT signing keys (kid, alg, state)"],
  help: `Usage: bun run cli signing-keys list [--json]

Lists the JWT signing keys: kid, algorithm, created, and whether each signs, only verifies
(retired, still in the JWKS until its last tokens expire), or is past use.
`,
  run: async (args, { io, openStore, now }) => {
    const json = parseJsonFlag(args);
    const records: SigningKeyRecord[] = await withStore(openStore, (store) => store.listSigningKeys());
    const at = now();
    printListing(io, {
      json,
      records,
      asJson: (key) => ({
        kid: key.kid,
        alg: key.alg,
        created_at: isoOrNull(key.createdAt),
        retired_at: isoOrNull(key.retiredAt),
        state: signingKeyState(key, at),
      }),
      none: "No signing keys yet; the server creates one on its first start.\n",
      header: ["KID", "ALG", "CREATED", "RETIRED", "STATE"],
      asRow: (key) => [key.kid, key.alg, iso(key.createdAt), key.retiredAt === null ? "-" : iso(key.retiredAt), signingKeyState(key, at)],
    });
    return EXIT.ok;
  },
};

const rotateSigningKeyCommand: Command = {
  summary: ["signing-keys rotate", "new signing key; old ones verify until their tokens expire"],
  help: `Usage: bun run cli signing-keys rotate

Generates a new signing key for JWT_ALG (default EdDSA) and retires the current one. Running
servers switch within a second; tokens signed by the old key stay valid until they expire, and
the old key stays in /.well-known/jwks.json until then.
`,
  run: async (args, { io, openStore, now, jwtAlg }) => {
    parseArgs({ args, options: {} });
    const candidate = await generateSigningKey(jwtAlg, now());
    await withStore(openStore, (store) => store.rotateSigningKey(candidate, now()));
    io.out(`New ${jwtAlg} signing key ${candidate.kid}; the previous one only verifies from now on.\n`);
    return EXIT.ok;
  },
};

/** In the order the main help lists them. */
export const signingKeyCommands: CommandTable = {
  "signing-keys list": listSigningKeysCommand,
  "signing-keys rotate": rotateSigningKeyCommand,
};
