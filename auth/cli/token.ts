/** `token new`: a fresh secret for AUTH_TOKEN; it needs no store, so it works before the first start. */
import { parseArgs } from "node:util";
import { generateToken } from "../secrets/tokens.ts";
import { EXIT, type CommandTable } from "./shared.ts";

export const tokenCommands: CommandTable = {
  "token new": {
    summary: ["token new", "print a fresh secret for AUTH_TOKEN"],
    help: `Usage: bun run cli token new

Prints a fresh 256-bit secret suitable for AUTH_TOKEN (base64url, 43 characters).
`,
    run: (args, { io }) => {
      parseArgs({ args, options: {} });
      io.out(`${generateToken()}\n`);
      return EXIT.ok;
    },
  },
};
