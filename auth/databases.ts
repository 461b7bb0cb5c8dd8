/**
 * Opens the store a STORE_URL names: the embedded SQLite file or a shared PostgreSQL. Shared by
 * the server and the CLI, so both always look at the same data.
 */
import type { StoreLocation } from "./config.ts";
import { openPostgresStore } from "./postgres.ts";
import { describeUrl } from "./redact.ts";
import { openSqliteStore } from "./sqlite.ts";
import type { Store } from "./store.ts";

export function openStore(location: StoreLocation): Promise<Store> {
  return location.kind === "sqlite" ? openSqliteStore(location.file) : openPostgresStore(location.url);
}

/** For log lines and error messages: the SQLite path, or the PostgreSQL URL without credentials. */
export function describeStore(location: StoreLocation): string {
  return location.kind === "sqlite" ? `sqlite:${location.file}` : describeUrl(location.url);
}
