import type { Exchange } from '../../candles/candle.ts';
import { INTERVAL_MS, sourceInterval, type Interval } from '../../candles/intervals.ts';
import { NotFound } from '../../errors.ts';
import type { Queryable } from '../../store/db.ts';
import { seriesOfSymbol } from '../../store/series.ts';

/** Where the candles of a requested (exchange, symbol, interval) come from. */
export interface CandleSource {
  seriesId: number;
  /** The requested interval. */
  interval: Interval;
  /** The stored interval read: the requested one, or the coarsest stored one that divides it. */
  source: Interval;
  resampled: boolean;
  /** Stored candles per requested bucket (1 when not resampled). */
  perBucket: number;
}

type StoredRow = { id: number; interval: Interval };

// Series ids never change once assigned; which intervals a symbol has changes rarely (a new market
// in cdk.json). A warm container remembers the list for a minute, which saves a round trip on
// every candle request; a symbol with no series yet is never remembered.
const TTL_MS = 60_000;
const remembered = new Map<string, { at: number; rows: StoredRow[] }>();

async function storedSeries(db: Queryable, exchange: Exchange, symbol: string): Promise<StoredRow[]> {
  const key = `${exchange}|${symbol}`;
  const hit = remembered.get(key);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.rows;
  const rows = await seriesOfSymbol(db, exchange, symbol);
  if (rows.length) {
    if (remembered.size > 10_000) remembered.clear();
    remembered.set(key, { at: Date.now(), rows });
  } else remembered.delete(key);
  return rows;
}

/**
 * Picks the stored series to read. A natively stored interval wins; otherwise the coarsest stored
 * interval that divides the requested one, so every bucket is built from whole source candles.
 */
export async function resolveSource(db: Queryable, exchange: Exchange, symbol: string, interval: Interval): Promise<CandleSource> {
  let rows = await storedSeries(db, exchange, symbol);
  // A remembered list without this interval may predate its series: look again before resampling.
  if (!rows.some((r) => r.interval === interval)) {
    remembered.delete(`${exchange}|${symbol}`);
    rows = await storedSeries(db, exchange, symbol);
  }
  const source = sourceInterval(interval, rows.map((r) => r.interval));
  const best = rows.find((r) => r.interval === source);
  if (best) {
    const resampled = best.interval !== interval;
    return { seriesId: best.id, interval, source: best.interval, resampled, perBucket: resampled ? INTERVAL_MS[interval] / INTERVAL_MS[best.interval] : 1 };
  }
  if (rows.length === 0) throw new NotFound(`no candles are stored for ${exchange} ${symbol}; GET /v1/markets lists the stored series`, 'symbol');
  const stored = rows.map((r) => r.interval).sort((a, b) => INTERVAL_MS[a] - INTERVAL_MS[b]);
  throw new NotFound(
    `${exchange} ${symbol} has no ${interval} candles and no finer stored interval that divides ${interval} (stored: ${stored.join(', ')})`,
    'interval',
  );
}

/** Looks up exactly this stored series, or explains which intervals exist. */
export async function resolveStored(db: Queryable, exchange: Exchange, symbol: string, interval: Interval): Promise<number> {
  const rows = await seriesOfSymbol(db, exchange, symbol);
  const hit = rows.find((r) => r.interval === interval);
  if (hit) return hit.id;
  if (rows.length === 0) throw new NotFound(`no candles are stored for ${exchange} ${symbol}; GET /v1/markets lists the stored series`, 'symbol');
  throw new NotFound(`${exchange} ${symbol} is not stored at ${interval} (stored: ${rows.map((r) => r.interval).join(', ')})`, 'interval');
}
