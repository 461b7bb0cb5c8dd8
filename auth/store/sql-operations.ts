/**
 * The kinds of operation the SQL store is built from. Whether a write must be seen by the other
 * instances is decided here, once, by its kind: a `change` moves the store's revision and announces
 * it in the same transaction; `bookkeeping` is a plain transaction nobody reloads for. The
 * per-record modules (sql-keys.ts, sql-users.ts, …) get only these, never the driver, so a write
 * cannot open a transaction without saying which kind it is.
 */
import type { SqlDriver, SqlRunner, Work } from "./driver.ts";

export interface SqlOperations {
  /** Statements outside any transaction: reads, and a lone insert no other instance needs to hear of. */
  readonly direct: SqlRunner;
  /** A write that changes who may authenticate (keys, users, revocations, bans, signing keys): others reload. */
  change<T>(work: Work<T>): Promise<T>;
  /** A write under the write lock that changes nobody's access (usage stamps, a pairing code): nobody reloads. */
  bookkeeping<T>(work: Work<T>): Promise<T>;
  /** One transaction whose outcome says whether it was a change (a detected replay, a successful pairing). */
  changeWhen<T>(isChange: (outcome: T) => boolean, work: Work<T>): Promise<T>;
  /** The revision every change moves; what servers poll. */
  readRevision(): Promise<string>;
}

const BUMP_REVISION = "UPDATE store_revision SET value = value + 1 WHERE id = 1";
const SELECT_REVISION = "SELECT value FROM store_revision WHERE id = 1";

const always = () => true;

/** The operations over a driver whose failures are already `StoreError`s (see guardDriver). */
export function createSqlOperations(driver: SqlDriver): SqlOperations {
  const changeWhen = <T>(isChange: (outcome: T) => boolean, work: Work<T>) =>
    driver.transaction(async (tx) => {
      const outcome = await work(tx);
      if (isChange(outcome)) {
        // Same transaction: the revision moves (and PostgreSQL notifies) only if the work commits.
        await tx.run(BUMP_REVISION);
        await driver.announce(tx);
      }
      return outcome;
    });
  return {
    direct: driver,
    change: (work) => changeWhen(always, work),
    bookkeeping: (work) => driver.transaction(work),
    changeWhen,
    async readRevision() {
      const rows = await driver.all<{ value: number | string | bigint }>(SELECT_REVISION);
      return String(rows[0]?.value ?? "");
    },
  };
}
