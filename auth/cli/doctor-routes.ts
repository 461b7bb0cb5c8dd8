/**
 * The doctor's look at ROUTES_FILE: the file parses and every entry is valid (the same problems the
 * server would refuse to start with), and each route's service answers on its address. Only looks:
 * a TCP connection is opened and closed, nothing is sent.
 */
import { createConnection } from "node:net";
import { loadRoutesFile, type ServiceRoute } from "../config/routes-file.ts";
import type { CheckResult } from "./checks.ts";

const PROBE_TIMEOUT_MS = 1500;

function defaultPort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "https:" ? 443 : 80;
}

/**
 * Whether something accepts a TCP connection at the route's upstream within the timeout. The
 * socket is destroyed at the timeout: an address that drops packets would otherwise keep the
 * doctor's process alive until the kernel gives up (minutes).
 */
function probeUpstream(route: ServiceRoute): Promise<boolean> {
  const url = new URL(route.upstream);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    const socket = createConnection({ host, port: defaultPort(url) });
    const finish = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

async function judgeRoute(route: ServiceRoute): Promise<CheckResult> {
  const where = route.match.host === undefined ? route.match.path_prefix : `${route.match.host}${route.match.path_prefix ?? ""}`;
  if (await probeUpstream(route))
    return {
      check: "routes file",
      status: "ok",
      message: `route "${route.name}" (${where}, scope ${route.scope}): ${route.upstream} answers`,
    };
  return {
    check: "routes file",
    status: "warn",
    message: `route "${route.name}": nothing answers at ${route.upstream}; requests to ${where} get 502 until the service runs there (start it, or fix upstream in the routes file)`,
  };
}

export async function inspectRoutesFile(file: string): Promise<CheckResult[]> {
  const loaded = loadRoutesFile(file);
  if (!loaded.ok)
    return loaded.problems.map((problem) => ({ check: "routes file", status: "fail", message: `${problem.variable} ${problem.message}` }));
  if (loaded.routes.length === 0)
    return [
      { check: "routes file", status: "warn", message: `${file} holds no [[route]]; nothing is proxied and /auth/verify needs ?scope=` },
    ];
  return Promise.all(loaded.routes.map(judgeRoute));
}
