import type { Db, Queryable } from './db.ts';

/** SQLSTATE of a lock wait that ran past lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';

/** The UTC years of the given epoch-ms open times, each once. */
export function yearsOf(openTimes: Iterable<number>): Set<number> {
  const years = new Set<number>();
  for (const t of openTimes) years.add(new Date(t).getUTCFullYear());
  return years;
}

/**
 * The yearly partitions of `candles` (migration 0007): a partition exists only for a year that
 * holds candles, and a DEFAULT partition takes any row whose year has none. Writers call `ensure`
 * with the years of a batch before writing it; a year once seen is remembered for the life of the
 * instance (a container's), so a steady stream of batches costs no statement at all.
 *
 * Adding a partition is best effort: when its lock wait times out (long readers on the default
 * partition), the batch's rows go to the DEFAULT partition and lose nothing; the year is tried again
 * with the next batch, and adding it then moves those rows into it.
 */
export class CandlePartitions {
  readonly #known = new Set<number>();

  /**
   * Makes sure each year has its partition. Runs its own statement, so `db` must not be a client
   * inside a transaction (a timed-out lock wait would abort that transaction).
   */
  async ensure(db: Db, years: Iterable<number>): Promise<void> {
    const missing = [...years].filter((y) => !this.#known.has(y)).sort((a, b) => a - b);
    if (missing.length === 0) return;
    try {
      await db.query('SELECT candles_add_year_partition(y) FROM unnest($1::int[]) AS y ORDER BY y', [`{${missing.join(',')}}`]);
    } catch (err) {
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return;
      throw err;
    }
    for (const y of missing) this.#known.add(y);
  }
}

/**
 * Maintenance: moves every row of the DEFAULT partition into its year's partition, creating those,
 * and returns the years it created. Cheap when the default partition is empty, its normal state.
 */
export async function settleDefaultPartition(db: Queryable): Promise<number[]> {
  const { rows } = await db.query<{ y: number }>('SELECT candles_settle_default() AS y');
  return rows.map((r) => r.y);
}

/** The partitions of `candles` with their bounds as PostgreSQL prints them, in name order. */
export async function candlePartitions(db: Queryable): Promise<{ name: string; bound: string }[]> {
  const { rows } = await db.query<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'candles'::regclass ORDER BY c.relname`,
  );
  return rows;
}
