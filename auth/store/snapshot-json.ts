/**
 * The export format: a whole store as one JSON document, the same from either engine and loadable
 * into either (`tokengate export --json`, and the backup of a PostgreSQL store).
 *
 * ```json
 * {
 *   "format": "tokengate-store",
 *   "format_version": 1,
 *   "schema_version": 9,
 *   "exported_at": "2025-01-31T04:00:00.000Z",
 *   "engine": "sqlite",
 *   "tables": { "api_keys": [{ "id": "3f9a0c12be45", "secret_hash": "<base64>", … }], "users": [], … }
 * }
 * ```
 *
 * Every table of the schema version is present (the revision counter aside), each row an object
 * with every column: integers as numbers, text as strings, bytes as base64, absent values as null.
 * Secrets appear only as the store holds them.
 */
import { LATEST_SCHEMA } from "./schema.ts";
import { describeCopiedTables, type ColumnKind, type TableShape } from "./table-shapes.ts";
import type { SnapshotRow, SnapshotValue, StoreSnapshot } from "./types.ts";

export const EXPORT_FORMAT = "tokengate-store";
export const EXPORT_FORMAT_VERSION = 1;

export interface ExportHeader {
  /** Epoch milliseconds. */
  readonly exportedAt: number;
  readonly engine: "sqlite" | "postgres";
}

function encodeRow(row: SnapshotRow): Record<string, string | number | null> {
  return Object.fromEntries(
    Object.entries(row).map(([name, value]) => [name, value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value]),
  );
}

/** The document, one row to a line (so two exports compare line by line), ending with a newline. */
export function formatSnapshotJson(snapshot: StoreSnapshot, header: ExportHeader): string {
  const head = {
    format: EXPORT_FORMAT,
    format_version: EXPORT_FORMAT_VERSION,
    schema_version: snapshot.schemaVersion,
    exported_at: new Date(header.exportedAt).toISOString(),
    engine: header.engine,
  };
  const tables = [...snapshot.tables].map(([name, rows]) => {
    const lines = rows.map((row) => `      ${JSON.stringify(encodeRow(row))}`);
    return `    ${JSON.stringify(name)}: [${lines.length === 0 ? "" : `\n${lines.join(",\n")}\n    `}]`;
  });
  const fields = Object.entries(head).map(([name, value]) => `  ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  return `{\n${fields.join(",\n")},\n  "tables": {\n${tables.join(",\n")}\n  }\n}\n`;
}

export type SnapshotReading = { readonly ok: true; readonly snapshot: StoreSnapshot } | { readonly ok: false; readonly problem: string };

const fail = (problem: string): SnapshotReading => ({ ok: false, problem });

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const KIND_WORDS: Readonly<Record<ColumnKind, string>> = { int: "a whole number", text: "a string", bytes: "base64 bytes" };

/** Why a snapshot of schema `version` is refused by this tokengate, whose schema is older. */
export function explainNewerSchema(version: number): string {
  return (
    `holds a store of schema version ${version}, newer than this tokengate's (schema ${LATEST_SCHEMA}): ` +
    "restore it with the tokengate release that wrote it, or a later one (upgrade this one)"
  );
}

/** One value of a column's kind; `undefined` when it is not. */
function decodeValue(value: unknown, kind: ColumnKind): SnapshotValue | undefined {
  if (value === null) return null;
  if (kind === "int") return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
  if (kind === "text") return typeof value === "string" ? value : undefined;
  return typeof value === "string" && BASE64.test(value) ? new Uint8Array(Buffer.from(value, "base64")) : undefined;
}

/** One row with exactly the table's columns; a sentence saying what is wrong otherwise (never a value). */
function decodeRow(value: unknown, shape: TableShape): SnapshotRow | string {
  if (!isRecord(value)) return "is not an object";
  const extra = Object.keys(value).find((name) => !shape.columns.some((column) => column.name === name));
  if (extra !== undefined) return `has a column ${JSON.stringify(extra.slice(0, 64))} that the table does not have`;
  const row: Record<string, SnapshotValue> = {};
  for (const column of shape.columns) {
    if (!Object.hasOwn(value, column.name)) return `has no "${column.name}"`;
    const decoded = decodeValue(value[column.name], column.kind);
    if (decoded === undefined) return `has a "${column.name}" that is not ${KIND_WORDS[column.kind]} or null`;
    row[column.name] = decoded;
  }
  return row;
}

/** Every table of the schema, each an array of valid rows; the first problem otherwise. */
function decodeTables(tables: Record<string, unknown>, version: number): Map<string, SnapshotRow[]> | string {
  const shapes = describeCopiedTables(version);
  const unknown = Object.keys(tables).find((name) => !shapes.some((shape) => shape.name === name));
  if (unknown !== undefined) return `has a table ${JSON.stringify(unknown.slice(0, 64))} that schema ${version} does not have`;
  const decoded = new Map<string, SnapshotRow[]>();
  for (const shape of shapes) {
    const rows = tables[shape.name];
    if (!Array.isArray(rows)) return `has no "${shape.name}" table (an array of rows; schema ${version} has it)`;
    const table: SnapshotRow[] = [];
    for (const [index, value] of rows.entries()) {
      const row = decodeRow(value, shape);
      if (typeof row === "string") return `has a row tables.${shape.name}[${index}] that ${row}`;
      table.push(row);
    }
    decoded.set(shape.name, table);
  }
  return decoded;
}

/** Reads an export; never throws. A problem is a sentence to follow the file's name ("… is not valid JSON"). */
export function parseSnapshotJson(text: string): SnapshotReading {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the file's text, which may be part of a signing key.
    return fail("is not valid JSON; was it cut short, or edited by hand?");
  }
  if (!isRecord(document) || document.format !== EXPORT_FORMAT)
    return fail(`is JSON but not a tokengate export (no "format": "${EXPORT_FORMAT}")`);
  if (document.format_version !== EXPORT_FORMAT_VERSION) {
    return fail(
      `is an export of format_version ${JSON.stringify(document.format_version)?.slice(0, 64) ?? "(none)"}; this tokengate reads format_version ${EXPORT_FORMAT_VERSION}: ` +
        "load it with the tokengate that wrote it",
    );
  }
  const version = document.schema_version;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1)
    return fail('has no valid "schema_version" (a whole number from 1)');
  if (version > LATEST_SCHEMA) return fail(explainNewerSchema(version));
  if (!isRecord(document.tables)) return fail('has no "tables" object');
  const tables = decodeTables(document.tables, version);
  return typeof tables === "string" ? fail(tables) : { ok: true, snapshot: { schemaVersion: version, tables } };
}
