/**
 * The tables of the schema as its migrations leave them (schema.ts), for whole-store copies: which
 * tables a backup holds, their columns in order with each one's kind, and the columns that point
 * at another row of the same table. Read from the migrations' own statements in the SQLite
 * dialect (type names INTEGER, TEXT, BLOB), so a table a new migration adds is in every backup
 * without a list to keep up; tests/store/backup.test.ts holds the result against each engine's
 * catalog, so a migration written in a form this reader does not follow fails there.
 */
import { pendingMigrations } from "./schema.ts";

/** int: epoch milliseconds and counters; bytes: digests and public keys (base64 in JSON). */
export type ColumnKind = "int" | "text" | "bytes";

export interface ColumnShape {
  readonly name: string;
  readonly kind: ColumnKind;
  readonly primaryKey: boolean;
  /** Points at a row of its own table (a key's `replaced_by`): filled in after every row is in. */
  readonly selfReference: boolean;
}

export interface TableShape {
  readonly name: string;
  readonly columns: readonly ColumnShape[];
}

const KINDS: Readonly<Record<string, ColumnKind>> = { INTEGER: "int", TEXT: "text", BLOB: "bytes" };
const TABLE_CONSTRAINTS = new Set(["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"]);

/**
 * The store's own counter of changes: not data, and not copied. An import moves the target's
 * revision on instead, so running servers reload.
 */
const NOT_COPIED = new Set(["store_revision"]);

/** A column list split at its top-level commas (a CHECK's `IN ('a', 'b')` keeps its own). */
function splitDefinitions(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let index = 0; index < body.length; index++) {
    const char = body[index];
    if (char === "'") quoted = !quoted;
    else if (!quoted && char === "(") depth++;
    else if (!quoted && char === ")") depth--;
    else if (!quoted && depth === 0 && char === ",") {
      parts.push(body.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(body.slice(start));
  return parts.map((part) => part.trim()).filter((part) => part !== "");
}

/**
 * One column definition (`name TYPE …`); `undefined` for a table constraint. A type this does not
 * know is a mistake in a new migration: a column skipped here would be missing from every backup.
 */
function readColumn(table: string, definition: string): ColumnShape | undefined {
  const match = /^(\w+)\s+(\w+)/.exec(definition);
  if (match === null || TABLE_CONSTRAINTS.has(match[1]!.toUpperCase())) return undefined;
  const kind = KINDS[match[2]!.toUpperCase()];
  if (kind === undefined)
    throw new Error(`${table}.${match[1]}: backups know no column type ${match[2]}; add it to KINDS in table-shapes.ts`);
  return {
    name: match[1]!,
    kind,
    primaryKey: /\bPRIMARY\s+KEY\b/i.test(definition),
    selfReference: /\bREFERENCES\s+(\w+)/i.exec(definition)?.[1] === table,
  };
}

type Tables = Map<string, ColumnShape[]>;

/** Applies one statement's effect on tables and columns; indexes and inserts change neither. */
function applyStatement(tables: Tables, statement: string): void {
  const text = statement.trim();
  const created = /^CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\(([\s\S]*)\)[^)]*$/i.exec(text);
  if (created !== null) {
    const name = created[1]!;
    tables.set(
      name,
      splitDefinitions(created[2]!).flatMap((definition) => readColumn(name, definition) ?? []),
    );
    return;
  }
  const dropped = /^DROP TABLE (?:IF EXISTS )?(\w+)/i.exec(text);
  if (dropped !== null) tables.delete(dropped[1]!);
  const altered = /^ALTER TABLE (\w+) ([\s\S]*)$/i.exec(text);
  if (altered === null) return;
  const table = altered[1]!;
  const change = altered[2]!;
  const columns = tables.get(table) ?? [];
  const added = /^ADD (?:COLUMN )?([\s\S]*)$/i.exec(change);
  const column = added === null ? undefined : readColumn(table, added[1]!);
  if (column !== undefined) columns.push(column);
  const droppedColumn = /^DROP (?:COLUMN )?(\w+)$/i.exec(change);
  if (droppedColumn !== null)
    tables.set(
      table,
      columns.filter((each) => each.name !== droppedColumn[1]),
    );
  const renamedColumn = /^RENAME (?:COLUMN )?(\w+) TO (\w+)$/i.exec(change);
  if (renamedColumn !== null) {
    tables.set(
      table,
      columns.map((each) => (each.name === renamedColumn[1] ? { ...each, name: renamedColumn[2]! } : each)),
    );
  }
  const renamedTable = /^RENAME TO (\w+)$/i.exec(change);
  if (renamedTable !== null) {
    tables.delete(table);
    tables.set(renamedTable[1]!, columns);
  }
}

const cache = new Map<number, readonly TableShape[]>();

/**
 * The tables a copy of a store at schema `version` holds, in the order the migrations created
 * them (a table another one points at comes first), the revision counter aside.
 */
export function describeCopiedTables(version: number): readonly TableShape[] {
  const known = cache.get(version);
  if (known !== undefined) return known;
  const tables: Tables = new Map();
  for (const migration of pendingMigrations("sqlite", 0).filter((step) => step.version <= version)) {
    for (const statement of migration.statements) applyStatement(tables, statement);
  }
  const shapes = [...tables].filter(([name]) => !NOT_COPIED.has(name)).map(([name, columns]) => ({ name, columns }));
  cache.set(version, shapes);
  return shapes;
}
