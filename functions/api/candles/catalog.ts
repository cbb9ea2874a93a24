import type { SeriesKey } from '../../candles/candle.ts';
import { NotFound } from '../../errors.ts';
import { latestClosedCandles } from '../../store/candles.ts';
import type { Queryable } from '../../store/db.ts';
import type { LatestCandles } from '../schemas.ts';
import { toCandle } from './read-candles.ts';

/** The newest closed candle of each listed series (or of every series matching the filter); a listed series that is not stored is NotFound. */
export async function latestClosed(db: Queryable, refs: SeriesKey[] | undefined, filter: Partial<SeriesKey>): Promise<LatestCandles> {
  const rows = await latestClosedCandles(db, refs, filter);
  if (refs) {
    const found = new Set(rows.map((r) => `${r.exchange}:${r.symbol}:${r.interval}`));
    const missing = refs.find((r) => !found.has(`${r.exchange}:${r.symbol}:${r.interval}`));
    if (missing) {
      throw new NotFound(`series ${missing.exchange}:${missing.symbol}:${missing.interval} is not stored; GET /v1/markets lists the stored series`, 'series');
    }
  }
  return {
    series: rows.map((r) => ({ exchange: r.exchange, symbol: r.symbol, interval: r.interval, candle: r.candle && toCandle(r.candle) })),
  };
}
