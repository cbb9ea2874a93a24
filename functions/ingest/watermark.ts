import type { Queryable } from '../store/db.ts';
import { ms } from '../store/sql.ts';

/**
 * Open time of the newest stored closed candle of a series: live pulls fetch from the bucket after
 * it. An open (forming) candle newer than it is deliberately not the watermark, so the next pull
 * fetches that bucket again and stores its closed version. Ordered partition scans stop at the
 * first closed row, so this reads a handful of index entries.
 */
export async function readWatermark(db: Queryable, seriesId: number): Promise<number | undefined> {
  const { rows } = await db.query<{ t: number }>(
    `SELECT ${ms('open_time')} AS t FROM candles WHERE series_id = $1 AND closed ORDER BY open_time DESC LIMIT 1`,
    [seriesId],
  );
  const t = rows[0]?.t;
  return t === undefined ? undefined : Number(t);
}
