/**
 * The CLI's composition root (as server.ts is the server's): reads STORE_URL, DATA_DIR, ROLE_SCOPES
 * and JWT_ALG from the environment, opens the same store the server uses, runs one command and
 * exits with its code.
 */
import { runCli } from "./auth/cli.ts";
import { DEFAULT_ROLE_SCOPES, parseRoleScopes, parseStoreUrl } from "./auth/config.ts";
import { openStore } from "./auth/databases.ts";

/** A line from a terminal without echo, or the first line of piped stdin. */
async function readPassword(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await Bun.stdin.text();
    return text.split(/\r?\n/)[0] ?? "";
  }
  process.stderr.write(prompt);
  process.stdin.setRawMode(true);
  let line = "";
  try {
    for await (const chunk of process.stdin) {
      for (const char of String(chunk)) {
        if (char === "\r" || char === "\n") return line;
        if (char === "\u0003") process.exit(130);
        line = char === "\u007f" ? line.slice(0, -1) : line + char;
      }
    }
    return line;
  } finally {
    process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stderr.write("\n");
  }
}

/** Runs one CLI command; also `tokengate keys …` in the single binary (tokengate.ts). */
export async function main(argv: readonly string[]): Promise<number> {
  const env = Bun.env;
  const dataDir = env.DATA_DIR === undefined || env.DATA_DIR === "" ? "./data" : env.DATA_DIR;
  const roleScopes = parseRoleScopes(env.ROLE_SCOPES === undefined || env.ROLE_SCOPES === "" ? DEFAULT_ROLE_SCOPES : env.ROLE_SCOPES);
  if (roleScopes === undefined) {
    process.stderr.write(`ROLE_SCOPES must look like role=scope,scope;role=scope, e.g. ${DEFAULT_ROLE_SCOPES}\n`);
    return 78;
  }
  const location = parseStoreUrl(env.STORE_URL, dataDir);
  if (location === undefined) {
    process.stderr.write("STORE_URL must be sqlite:///path/to/tokengate.db or postgres://user:password@host:5432/database (or unset)\n");
    return 78;
  }
  const jwtAlg = env.JWT_ALG === "HS256" ? "HS256" : "EdDSA";
  return runCli(argv, {
    jwtAlg,
    io: { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) },
    openStore: () => openStore(location),
    now: Date.now,
    roleScopes,
    readPassword,
  });
}

if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
