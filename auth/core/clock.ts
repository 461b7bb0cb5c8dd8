/**
 * The one clock. Every module in auth/ that needs the time takes a `Clock` from its caller; only the
 * composition roots (server.ts, cli.ts, tests) choose which one, so tests can move time without
 * touching the system clock and nothing compares against the real date behind their back.
 */

/** Epoch milliseconds, like `Date.now`. */
export type Clock = () => number;
