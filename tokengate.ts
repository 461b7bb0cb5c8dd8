#!/usr/bin/env bun
/**
 * The single-binary entry point (`bun run build` compiles it): `tokengate serve` runs the server,
 * every other command is the CLI (`tokengate keys create …`, `tokengate users add …`). Both read
 * the same environment, so one binary and one environment file serve a device.
 */
import packageJson from "./package.json" with { type: "json" };

const USAGE = `Usage: tokengate <command>

  serve                       run the server (configured by environment variables; see the README)
  keys|users|bans|signing-keys|token …   manage credentials in the same store (tokengate --help-cli)
  pair                        one-time code that pairs a browser on a new device
  backup|restore|export|import …   copy the whole store, restore it, move it between engines
  doctor                      check configuration, files, TLS, clock and addresses
  version                     print the version
`;

const [command, ...rest] = process.argv.slice(2);
if (command === "serve") {
  if (rest.length > 0) {
    process.stderr.write(`tokengate serve takes no arguments; configure it with environment variables\n`);
    process.exitCode = 2;
  } else {
    // Each command loads only its own modules: the server never pays for the CLI's (the doctor's
    // node:crypto and Bun.SQL), nor the reverse. No top-level await: --bytecode needs none.
    void import("./server.ts").then(({ main }) => main());
  }
} else if (command === "version" || command === "--version") {
  process.stdout.write(`tokengate ${packageJson.version} (bun ${Bun.version})\n`);
} else if (command === undefined || command === "--help" || command === "-h" || command === "help") {
  process.stdout.write(USAGE);
  process.exitCode = command === undefined ? 2 : 0;
} else {
  void import("./cli.ts")
    .then(({ main }) => main(command === "--help-cli" ? ["--help"] : process.argv.slice(2), "tokengate"))
    .then((code) => {
      process.exitCode = code;
    });
}
