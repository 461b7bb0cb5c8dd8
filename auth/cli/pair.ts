/** `pair`: the one-time code that gives a browser the first admin key of a device with no credentials yet. */
import { describePairingCode, issuePairingCode } from "../oauth/pairing.ts";
import { EXIT, isoOrNull, parseJsonFlag, withStore, type CommandTable } from "./shared.ts";

export const pairCommands: CommandTable = {
  pair: {
    summary: ["pair [--json]", "one-time code that pairs a browser on a new device (first admin key)"],
    help: `Usage: bun run cli pair [--json]

On a device with no API keys and no users yet, prints a one-time 6-digit pairing code. Open the
server's page in a browser on your network and enter the code there: the browser receives the
first admin key (scopes *), and pairing is over for good. The code works once, expires after
5 minutes, and dies after 5 wrong tries; a new \`pair\` replaces the previous code.
Exit code 4 when the device already has credentials.
`,
    run: async (args, { io, openStore, now, consoleUrls }) => {
      const json = parseJsonFlag(args);
      const issued = await withStore(openStore, (store) => issuePairingCode(store, now()));
      if (issued === undefined) {
        io.err(
          "This device already has API keys or users, so pairing is over. Create more keys with: bun run cli keys create --name NAME\n",
        );
        return EXIT.conflict;
      }
      if (json) io.out(`${JSON.stringify({ code: issued.code, expires_at: isoOrNull(issued.expiresAt), console: consoleUrls() })}\n`);
      else io.out(describePairingCode(issued, consoleUrls()).trimStart());
      return EXIT.ok;
    },
  },
};
