import type { Queryable } from '../../functions/store/db.ts';

export interface CoverageHolding {
  seriesId: number;
  start: number;
  end: number;
  /** What the ledger row claims. */
  candles: number;
  /** What is stored in its range. */
  stored: number;
}

/**
 * Every coverage row (of one series, or of all), with the candles stored in its range: a row
 * claiming more than is stored marks buckets "confirmed empty" that were never stored.
 */
export async function coverageHoldings(db: Queryable, seriesId?: number): Promise<CoverageHolding[]> {
  const { rows } = await db.query<{ series_id: number; s: number; e: number; candles: number; stored: string }>(
    `SELECT c.series_id, (extract(epoch FROM c.range_start) * 1000)::float8 AS s, (extract(epoch FROM c.range_end) * 1000)::float8 AS e,
            c.candles,
            (SELECT count(*) FROM candles k WHERE k.series_id = c.series_id AND k.open_time >= c.range_start AND k.open_time < c.range_end) AS stored
     FROM coverage c WHERE $1::integer IS NULL OR c.series_id = $1
     ORDER BY c.series_id, c.range_start`,
    [seriesId ?? null],
  );
  return rows.map((r) => ({ seriesId: r.series_id, start: Number(r.s), end: Number(r.e), candles: r.candles, stored: Number(r.stored) }));
}
