/**
 * Picking up edits to the routes file while tokengate runs: the file's folder is watched (editors
 * replace files rather than write them in place, which a watch on the file itself would miss) and
 * SIGHUP asks for the same reload. A valid file replaces the table; an invalid one keeps the old
 * table and says why, naming the file, the entry and the fix, as at startup.
 */
import { lstatSync, realpathSync, watch, type FSWatcher } from "node:fs";
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

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

function realTarget(file: string): string | undefined {
  try {
    return realpathSync(file);
  } catch {
    return undefined;
  }
}

/** Watches a folder for changes to `name` (any change when `name` is undefined). */
function watchFolder(folder: string, name: string | undefined, onChange: () => void, logger: Logger): FSWatcher | undefined {
  try {
    const watcher = watch(folder, (_event, changed) => {
      if (name === undefined || changed === null || changed === name) onChange();
    });
    watcher.on("error", () => logger.warn("stopped watching the routes file; send SIGHUP to reload it", { folder }));
    return watcher;
  } catch {
    logger.warn("cannot watch the routes file's folder; send SIGHUP to reload it", { folder });
    return undefined;
  }
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

  const settle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => reload("file changed"), SETTLE_MS);
  };
  // The named file's folder (changes to its name), and for a symlink any change there (a Kubernetes
  // ConfigMap swaps a `..data` link beside it) and in the folder of what it points to: an unchanged
  // table is never applied twice, so a spurious event costs one read.
  const linked = isSymlink(file);
  const watchers = [watchFolder(dirname(file), linked ? undefined : basename(file), settle, logger)];
  const target = linked ? realTarget(file) : undefined;
  if (target !== undefined && dirname(target) !== dirname(file)) watchers.push(watchFolder(dirname(target), undefined, settle, logger));

  return {
    reload,
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher?.close();
    },
  };
}
