/**
 * Picking up edits to the routes file while tokengate runs: the file's folder is watched (editors
 * replace files rather than write them in place, which a watch on the file itself would miss) and
 * SIGHUP asks for the same reload. A valid file replaces the table; an invalid one keeps the old
 * table and says why, naming the file, the entry and the fix, as at startup.
 */
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "../core/log.ts";
import { loadRoutesFile, type RouteTable } from "./routes-file.ts";

/** Editors write in several steps: wait for the last one before reading. */
const SETTLE_MS = 150;

export interface RoutesWatch {
  /** Reads the file now; true when the table was replaced. */
  reload(reason: string): boolean;
  close(): void;
}

export function watchRoutesFile(file: string, table: RouteTable, logger: Logger): RoutesWatch {
  let last = JSON.stringify(table.routes);
  let timer: ReturnType<typeof setTimeout> | undefined;

  const reload = (reason: string): boolean => {
    const loaded = loadRoutesFile(file);
    if (!loaded.ok) {
      logger.error("routes file not reloaded; the previous routes stay in force", {
        reason,
        problems: loaded.problems.map((problem) => problem.message).join("; "),
      });
      return false;
    }
    const text = JSON.stringify(loaded.routes);
    if (text === last) return false;
    last = text;
    table.replace(loaded.routes);
    logger.info("routes file reloaded", { reason, routes: loaded.routes.length });
    return true;
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), (_event, name) => {
      if (name !== null && name !== basename(file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => reload("file changed"), SETTLE_MS);
    });
    watcher.on("error", () => logger.warn("stopped watching the routes file; send SIGHUP to reload it", { file }));
  } catch {
    logger.warn("cannot watch the routes file's folder; send SIGHUP to reload it", { file });
  }

  return {
    reload,
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
