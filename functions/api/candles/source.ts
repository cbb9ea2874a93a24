import type { Exchange } from '../../candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../../candles/intervals.ts';
import { notFound } from '../../http/problem.ts';
import type { Queryable } from '../../store/db.ts';

/** Where the candles of a requested (exchange, symbol, interval) come from. */
export interface CandleSource {
  seriesId: number;
  /** The requested interval. */
  interval: Interval;
  /** The stored interval read: the requested one, or the finest stored one that divides it. */
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
  const { rows } = await db.query<StoredRow>('SELECT id, interval FROM series WHERE exchange = $1 AND symbol = $2', [exchange, symbol]);
  if (rows.length) {
    if (remembered.size > 10_000) remembered.clear();
    remembered.set(key, { at: Date.now(), rows });
  } else remembered.delete(key);
  return rows;
}

/**
 * Picks the stored series to read. A natively stored interval wins; otherwise the finest stored
 * interval that divides the requested one, so every bucket is built from whole source candles.
 */
export async function resolveSource(db: Queryable, exchange: Exchange, symbol: string, interval: Interval): Promise<CandleSource> {
  let rows = await storedSeries(db, exchange, symbol);
  // A remembered list without this interval may predate its series: look again before resampling.
  if (!rows.some((r) => r.interval === interval)) {
    remembered.delete(`${exchange}|${symbol}`);
    rows = await storedSeries(db, exchange, symbol);
  }
  const native = rows.find((r) => r.interval === interval);
  if (native) return { seriesId: native.id, interval, source: interval, resampled: false, perBucket: 1 };
  const step = INTERVAL_MS[interval];
  const finer = rows
    .filter((r) => INTERVAL_MS[r.interval] < step && step % INTERVAL_MS[r.interval] === 0)
    .sort((a, b) => INTERVAL_MS[a.interval] - INTERVAL_MS[b.interval]);
  const best = finer[0];
  if (best) {
    return { seriesId: best.id, interval, source: best.interval, resampled: true, perBucket: step / INTERVAL_MS[best.interval] };
  }
  if (rows.length === 0) throw notFound(`no candles are stored for ${exchange} ${symbol}; GET /v1/markets lists the stored series`, 'symbol');
  const stored = rows.map((r) => r.interval).sort((a, b) => INTERVAL_MS[a] - INTERVAL_MS[b]);
  throw notFound(
    `${exchange} ${symbol} has no ${interval} candles and no finer stored interval that divides ${interval} (stored: ${stored.join(', ')})`,
    'interval',
  );
}

/** Looks up exactly this stored series, or explains which intervals exist. */
export async function resolveStored(db: Queryable, exchange: Exchange, symbol: string, interval: Interval): Promise<number> {
  const { rows } = await db.query<{ id: number; interval: Interval }>(
    'SELECT id, interval FROM series WHERE exchange = $1 AND symbol = $2',
    [exchange, symbol],
  );
  const hit = rows.find((r) => r.interval === interval);
  if (hit) return hit.id;
  if (rows.length === 0) throw notFound(`no candles are stored for ${exchange} ${symbol}; GET /v1/markets lists the stored series`, 'symbol');
  throw notFound(`${exchange} ${symbol} is not stored at ${interval} (stored: ${rows.map((r) => r.interval).join(', ')})`, 'interval');
}
