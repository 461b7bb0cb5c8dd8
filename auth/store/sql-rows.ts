/**
 * Reading rows the same way from both engines: PostgreSQL returns BIGINT as a string and BYTEA
 * as a Buffer, SQLite numbers and views into its own memory.
 */
import type { SqlRunner, SqlValue } from "./driver.ts";

/** An epoch-millisecond or counter column as either engine returns it. */
export type Int = number | string | bigint;

export const toInt = (value: Int): number => Number(value);
export const toIntOrNull = (value: Int | null): number | null => (value === null ? null : Number(value));
/** A private copy: PostgreSQL hands out Buffers, SQLite views into its own memory. */
export const toBytes = (value: Uint8Array): Uint8Array => new Uint8Array(value);

/** Space-separated lists (scopes, roles) as stored. */
export const toWords = (text: string): string[] => (text === "" ? [] : text.split(" "));
export const fromWords = (words: readonly string[]): string => words.join(" ");

/** The first row of a query, decoded; `undefined` when there is none. */
export async function selectOne<Row, R>(
  runner: SqlRunner,
  text: string,
  params: readonly SqlValue[],
  decode: (row: Row) => R,
): Promise<R | undefined> {
  const rows = await runner.all<Row>(text, params);
  return rows.length === 0 ? undefined : decode(rows[0]!);
}

/** A `SELECT count(*) AS n …` as a number. */
export async function selectCount(runner: SqlRunner, text: string, params: readonly SqlValue[] = []): Promise<number> {
  return toInt((await runner.all<{ n: Int }>(text, params))[0]!.n);
}
