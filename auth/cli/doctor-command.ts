/**
 * `doctor`: the command; the checks themselves are in doctor.ts. It opens no store of its own
 * (cli.ts gives it none), so it can report a configuration that keeps everything else from starting.
 */
import { formatDoctorReport } from "./doctor.ts";
import { EXIT, parseJsonFlag, type CommandTable } from "./shared.ts";

export const doctorCommands: CommandTable = {
  doctor: {
    summary: ["doctor [--json]", "check configuration, files, TLS, clock and addresses; explain problems"],
    help: `Usage: bun run cli doctor [--json]

Checks what tokengate needs on this device and explains any problem in plain words: the
configuration (the server's environment variables), the data directory and its permissions, the
store, TLS certificate and key, the clock (a device without a real-time clock may boot in 1970),
and the addresses the server would listen on. Exit code 0 when nothing failed, 1 otherwise.
Run it with the same environment as the server (for systemd: see the README).
`,
    run: async (args, { io, examine }) => {
      const json = parseJsonFlag(args);
      const results = await examine();
      io.out(json ? `${JSON.stringify(results)}\n` : formatDoctorReport(results));
      return results.some((result) => result.status === "fail") ? EXIT.failure : EXIT.ok;
    },
  },
};
