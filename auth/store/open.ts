/**
 * Opens the store a STORE_URL names: the embedded SQLite file or a shared PostgreSQL. Shared by
 * the server and the CLI, so both always look at the same data.
 */
import type { StoreLocation } from "../config/config.ts";
import { describeUrl } from "../core/redact.ts";
import { openSqliteStore } from "./sqlite.ts";
import type { Store } from "./store.ts";

export async function openStore(location: StoreLocation): Promise<Store> {
  if (location.kind === "sqlite") return openSqliteStore(location.file);
  // Loaded only when named: Bun.SQL costs ~5 ms of every start, which the SQLite default never uses.
  const { openPostgresStore } = await import("./postgres.ts");
  return openPostgresStore(location.url);
}

/** For log lines and error messages: the SQLite path, or the PostgreSQL URL without credentials. */
export function describeStore(location: StoreLocation): string {
  return location.kind === "sqlite" ? `sqlite:${location.file}` : describeUrl(location.url);
}
