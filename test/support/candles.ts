import type { CandleBatch, CandleRow } from '../../functions/candles/candle-batch.ts';
import type { Interval } from '../../functions/candles/intervals.ts';
import { INTERVAL_MS } from '../../functions/candles/intervals.ts';

export const T0 = Date.UTC(2024, 2, 1);

/** A valid compact row at bucket `i` of the interval; fields can be overridden. */
export function row(i: number, over: Partial<{ open: string; high: string; low: string; close: string; volume: string; quoteVolume: string | null; trades: number | null; closed: boolean }> = {}, interval: Interval = '1m'): CandleRow {
  return [
    T0 + i * INTERVAL_MS[interval],
    over.open ?? '100.5',
    over.high ?? '101.25',
    over.low ?? '99.75',
    over.close ?? '100.75',
    over.volume ?? '12.5',
    over.quoteVolume === undefined ? '1256.25' : over.quoteVolume,
    over.trades === undefined ? 42 : over.trades,
    (over.closed ?? true) ? 1 : 0,
  ];
}

export function batch(symbol: string, rows: CandleRow[], fetchedAt = T0 + 3_600_000, interval: Interval = '1m'): CandleBatch {
  return { v: 1, exchange: 'binance', symbol, interval, fetchedAt, rows };
}
