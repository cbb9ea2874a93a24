import type { SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { UnsupportedIntervalError } from '../exchanges/errors.ts';
import { adapters } from '../exchanges/index.ts';
import type { ExchangeAdapter } from '../exchanges/types.ts';

/** The adapter that serves a series; throws when its exchange does not offer the interval. */
export function adapterFor(series: SeriesKey): ExchangeAdapter {
  const adapter = adapters[series.exchange];
  if (!adapter.supports(series.interval)) throw new UnsupportedIntervalError(series.exchange, series.interval);
  return adapter;
}

/** The oldest closed bucket an exchange with limited depth (Kraken) still serves at `now`; -Infinity for full history. */
export function servableFrom(adapter: ExchangeAdapter, interval: Interval, now: number): number {
  if (adapter.historyDepth === 'full') return Number.NEGATIVE_INFINITY;
  // Its rows end with the forming bucket, so the closed ones start maxCandles - 1 buckets before it.
  return bucketStart(now, interval) - (adapter.historyDepth.maxCandles - 1) * INTERVAL_MS[interval];
}
