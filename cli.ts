/**
 * The CLI's composition root (as server.ts is the server's): reads DATA_DIR from the environment,
 * opens the same store the server uses, runs one command and exits with its code.
 */
import { runCli } from "./auth/cli.ts";
import { openSqliteStore } from "./auth/store.ts";

const dataDir = Bun.env.DATA_DIR === undefined || Bun.env.DATA_DIR === "" ? "./data" : Bun.env.DATA_DIR;
const code = runCli(process.argv.slice(2), {
  io: { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) },
  openStore: () => openSqliteStore(dataDir),
  now: Date.now,
});
process.exitCode = code;
