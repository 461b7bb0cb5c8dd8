/**
 * Stored times as people and JSON read them. Pure. Stored times are only as sane as whatever wrote
 * them (an older version, a hand edit, another engine): one bad row must not take a whole listing
 * down with a RangeError.
 */

/** ISO 8601, `null` for "never", or "invalid date". */
export function isoOrNull(ms: number | null): string | null {
  if (ms === null) return null;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? "invalid date" : date.toISOString();
}

/** For a table or a sentence: `2026-05-01 12:00Z`, "never" or "invalid date". */
export function iso(ms: number | null): string {
  return (
    isoOrNull(ms)
      ?.replace(/:\d\d\.\d{3}Z$/, "Z")
      .replace("T", " ") ?? "never"
  );
}
