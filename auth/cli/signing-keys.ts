/**
 * `signing-keys list | rotate`: the keys that sign the server's JWTs, through the same operations
 * as the admin API's `/admin/api/signing-keys…` (admin/signing-keys.ts). A retired key keeps
 * verifying (and stays in the JWKS) until the last token it signed has expired.
 */
import { parseArgs } from "node:util";
import { describeSigningKey, judgeSigningKeyState, listSigningKeys, rotateSigningKey } from "../admin/signing-keys.ts";
import type { SigningKeyRecord } from "../secrets/jwt.ts";
import { EXIT, iso, parseJsonFlag, printListing, withStore, type Command, type CommandTable } from "./shared.ts";

const listSigningKeysCommand: Command = {
  summary: ["signing-keys list [--json]", "JWT signing keys (kid, alg, state)"],
  help: `Usage: bun run cli signing-keys list [--json]

Lists the JWT signing keys: kid, algorithm, created, and whether each signs, only verifies
(retired, still in the JWKS until its last tokens expire), or is past use.
`,
  run: async (args, { io, openStore, now }) => {
    const json = parseJsonFlag(args);
    const records: SigningKeyRecord[] = await withStore(openStore, listSigningKeys);
    const at = now();
    printListing(io, {
      json,
      records,
      asJson: (key) => describeSigningKey(key, at),
      none: "No signing keys yet; the server creates one on its first start.\n",
      header: ["KID", "ALG", "CREATED", "RETIRED", "STATE"],
      asRow: (key) => [
        key.kid,
        key.alg,
        iso(key.createdAt),
        key.retiredAt === null ? "-" : iso(key.retiredAt),
        judgeSigningKeyState(key, at),
      ],
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
    const rotation = await withStore(openStore, (store) => rotateSigningKey(store, jwtAlg, now()));
    io.out(`New ${jwtAlg} signing key ${rotation.key.kid}; the previous one only verifies from now on.\n`);
    return EXIT.ok;
  },
};

/** In the order the main help lists them. */
export const signingKeyCommands: CommandTable = {
  "signing-keys list": listSigningKeysCommand,
  "signing-keys rotate": rotateSigningKeyCommand,
};
