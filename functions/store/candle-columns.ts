import type { Candle } from '../candles/candle.ts';
import { ms } from './sql.ts';

/**
 * A candle as read back: decimals as stored text, absent quote volume and trades as null. The
 * optional fields (taker-buy volumes, VWAP) are there only when the exchange sent them.
 */
export type StoredCandle = Omit<Candle, 'quoteVolume' | 'trades'> & { quoteVolume: string | null; trades: number | null };

/** The optional fields' columns (in `candle_extras`), in row order. */
export const EXTRA_COLUMNS = ['taker_buy_volume', 'taker_buy_quote_volume', 'vwap'] as const;

/**
 * The columns of a stored candle, in the order `fromColumns` reads them: those of `candles` under
 * alias prefix `c`, then the optional fields under prefix `x` (a `candle_extras` row joined beside
 * it), or NULLs when there is none to read (resampled buckets).
 */
export const candleColumns = (c: string, x?: string) =>
  `${ms(`${c}open_time`)}, ${c}open, ${c}high, ${c}low, ${c}close, ${c}volume, ${c}quote_volume, ${c}trades, ${c}closed, ` +
  (x === undefined ? 'NULL::numeric, NULL::numeric, NULL::numeric' : EXTRA_COLUMNS.map((e) => `${x}${e}`).join(', '));
/**
 * A stored candle as the API's JSON writes it, built by PostgreSQL as one text: exactly
 * `JSON.stringify(toCandle(fromColumns(row)))` for the columns `candleColumns(c, x)` reads (same
 * keys in the same order, the optional fields only when present and before `gap`, decimals as
 * strings, trades as a number). A page read this way crosses the driver as one field a candle
 * instead of twelve, and Node parses and allocates next to nothing for it. Numeric text is digits,
 * sign, point or NaN/Infinity: nothing JSON must escape. Open times are whole milliseconds, so the
 * float8 epoch converts to bigint exactly. Casts to text are spelled out so that every `||` is a
 * plain text concatenation (no output-function lookup a row).
 */
export const candleJson = (c: string, x: string) => {
  const extra = (key: string, col: (typeof EXTRA_COLUMNS)[number]) => `coalesce(',"${key}":"' || ${x}${col}::text || '"', '')`;
  // Each literal closes the value before it and opens the next: fewer concatenations a row.
  return [
    `'{"openTime":'`,
    `(date_part('epoch', ${c}open_time) * 1000)::int8::text`,
    `',"open":"'`,
    `${c}open::text`,
    `'","high":"'`,
    `${c}high::text`,
    `'","low":"'`,
    `${c}low::text`,
    `'","close":"'`,
    `${c}close::text`,
    `'","volume":"'`,
    `${c}volume::text`,
    `'","quoteVolume":'`,
    `coalesce('"' || ${c}quote_volume::text || '"', 'null')`,
    `',"trades":'`,
    `coalesce(${c}trades::text, 'null')`,
    `CASE WHEN ${c}closed THEN ',"closed":true' ELSE ',"closed":false' END`,
    extra('takerBuyVolume', 'taker_buy_volume'),
    extra('takerBuyQuoteVolume', 'taker_buy_quote_volume'),
    extra('vwap', 'vwap'),
    `',"gap":false}'`,
  ].join(' || ');
};

/** The open time of a candle written by `candleJson` (its first key), without parsing the rest. */
export const openTimeOfJson = (text: string): number => Number(text.slice(12, text.indexOf(',', 12)));

export type CandleColumns = [number, string, string, string, string, string, string | null, string | null, boolean, string | null, string | null, string | null];

export function fromColumns(r: CandleColumns): StoredCandle {
  const c: StoredCandle = {
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
  if (r[9] !== null && r[9] !== undefined) c.takerBuyVolume = r[9];
  if (r[10] !== null && r[10] !== undefined) c.takerBuyQuoteVolume = r[10];
  if (r[11] !== null && r[11] !== undefined) c.vwap = r[11];
  return c;
}
