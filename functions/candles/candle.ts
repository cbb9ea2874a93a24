import * as z from 'zod';
import { INTERVAL_MS, intervalSchema, isAligned, type Interval } from './intervals.ts';

/**
 * Open times candlekeep accepts: 2000-01-01 up to (not including) 2100-01-01 UTC, in milliseconds.
 * The bounds double as a unit check: a time in seconds (~1.7e9) or microseconds (~1.7e15) falls
 * outside, so a unit mistake is rejected instead of stored shifted. Storage has a partition for
 * every year of this range, so no accepted row can miss its partition.
 */
export const MIN_OPEN_TIME = Date.UTC(2000, 0, 1);
export const MAX_OPEN_TIME = Date.UTC(2100, 0, 1);

/** A non-negative decimal in plain notation, kept as text so no digit is ever rounded. */
export const DECIMAL_RE = /^(0|[1-9]\d*)(\.\d+)?$/;
const MAX_DECIMAL_LENGTH = 80;

export const decimalSchema = z
  .string()
  .max(MAX_DECIMAL_LENGTH, `decimal longer than ${MAX_DECIMAL_LENGTH} characters`)
  .regex(DECIMAL_RE, 'expected a non-negative decimal string in plain notation such as "68123.45"');

/** Unified symbol: BASE/QUOTE in upper case, e.g. BTC/USDT. */
export const symbolSchema = z
  .string()
  .regex(/^[A-Z0-9]{1,20}\/[A-Z0-9]{1,20}$/, 'expected a unified symbol BASE/QUOTE such as "BTC/USDT"');

export const exchangeSchema = z.enum(['binance', 'okx', 'bybit', 'coinbase', 'kraken'], {
  error: (issue) => `unknown exchange ${JSON.stringify(issue.input)}; expected binance, okx, bybit, coinbase or kraken`,
});
export type Exchange = z.infer<typeof exchangeSchema>;
/** Every exchange candlekeep reads, in its usual order. */
export const EXCHANGES: readonly Exchange[] = exchangeSchema.options;

export const openTimeSchema = z
  .number()
  .int('openTime must be an integer number of milliseconds')
  .refine((t) => t >= MIN_OPEN_TIME && t < MAX_OPEN_TIME, {
    error: (issue) =>
      `openTime ${String(issue.input)} is not a millisecond UTC time between 2000-01-01 and 2100-01-01 ` +
      '(a value in seconds or microseconds?)',
  });

export interface SeriesKey {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
}

/** One normalised OHLCV candle of a series. Prices and volumes are decimal text exactly as the exchange sent them. */
export interface Candle {
  openTime: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  quoteVolume?: string | undefined;
  trades?: number | undefined;
  /** True only when the candle can no longer change. */
  closed: boolean;
  /** Base volume of trades where the buyer took liquidity (Binance). */
  takerBuyVolume?: string | undefined;
  /** Quote volume of those trades (Binance). */
  takerBuyQuoteVolume?: string | undefined;
  /** Volume-weighted average price of the candle (Kraken). */
  vwap?: string | undefined;
}

/** The optional fields an exchange may send with a candle, beyond quote volume and trades, in row order. */
export const EXTRA_FIELDS = ['takerBuyVolume', 'takerBuyQuoteVolume', 'vwap'] as const;
export type ExtraField = (typeof EXTRA_FIELDS)[number];

/**
 * Compares two non-negative plain decimal strings by value without floating point (and without
 * allocating: it runs five times per candle on the write path).
 */
export function compareDecimals(a: string, b: string): number {
  let ad = a.indexOf('.');
  let bd = b.indexOf('.');
  if (ad < 0) ad = a.length;
  if (bd < 0) bd = b.length;
  if (ad !== bd) return ad < bd ? -1 : 1;
  for (let i = 0; i < ad; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const width = Math.max(a.length, b.length);
  for (let i = ad + 1; i < width; i++) {
    const ca = i < a.length ? a.charCodeAt(i) : 48;
    const cb = i < b.length ? b.charCodeAt(i) : 48;
    if (ca !== cb) return ca < cb ? -1 : 1;
  }
  return 0;
}

/** Checks the OHLC relations of a candle; returns a reason, or undefined when consistent. */
export function ohlcProblem(c: Pick<Candle, 'open' | 'high' | 'low' | 'close'>): string | undefined {
  if (compareDecimals(c.high, c.low) < 0) return `high ${c.high} is below low ${c.low}`;
  for (const field of ['open', 'close'] as const) {
    if (compareDecimals(c[field], c.high) > 0) return `${field} ${c[field]} is above high ${c.high}`;
    if (compareDecimals(c[field], c.low) < 0) return `${field} ${c[field]} is below low ${c.low}`;
  }
  return undefined;
}

export function alignmentProblem(openTime: number, interval: Interval): string | undefined {
  if (isAligned(openTime, interval)) return undefined;
  return `openTime ${openTime} (${new Date(openTime).toISOString()}) is not aligned to ${interval} (${INTERVAL_MS[interval]} ms)`;
}

export { intervalSchema };
