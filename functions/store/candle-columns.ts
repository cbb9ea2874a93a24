import type { Candle } from '../candles/candle.ts';
import { ms } from './sql.ts';

/** A candle as read back: decimals as stored text, absent optionals as null. */
export type StoredCandle = Omit<Candle, 'quoteVolume' | 'trades'> & { quoteVolume: string | null; trades: number | null };

/** The columns of a stored candle, in the order `fromColumns` reads them. */
export const candleColumns = (c: string) =>
  `${ms(`${c}open_time`)}, ${c}open, ${c}high, ${c}low, ${c}close, ${c}volume, ${c}quote_volume, ${c}trades, ${c}closed`;
export type CandleColumns = [number, string, string, string, string, string, string | null, string | null, boolean];

export function fromColumns(r: CandleColumns): StoredCandle {
  return {
    openTime: r[0],
    open: r[1],
    high: r[2],
    low: r[3],
    close: r[4],
    volume: r[5],
    quoteVolume: r[6],
    trades: r[7] === null ? null : Number(r[7]),
    closed: r[8],
  };
}

