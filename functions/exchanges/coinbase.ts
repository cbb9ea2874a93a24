import * as z from 'zod';
import { bucketStart } from '../candles/intervals.ts';
import { defineExchange } from './define.ts';
import { BadRequestError, ExchangeHttpError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import { decimalText, errorMessage, parseShape, retryAfterOf, secondsTimeText, tryParseJson } from './normalise.ts';
import { olderPage } from './paging.ts';
import type { ExchangeAdapter } from './types.ts';

export const COINBASE_PRODUCTS_PATH = '/products';

/** Coinbase rejects (HTTP 400) a start/end range holding more buckets than this. */
export const COINBASE_MAX_BUCKETS = 300;

// [time s, low, high, open, close, volume], JSON numbers read as their source text.
const rowSchema = z.tuple([secondsTimeText, decimalText, decimalText, decimalText, decimalText, decimalText], z.unknown());
const productsSchema = z.array(
  z.object({ id: z.string(), base_currency: z.string(), quote_currency: z.string(), status: z.string(), trading_disabled: z.boolean().optional() }),
);
const errorSchema = z.object({ message: z.string() });

export const coinbase: ExchangeAdapter = defineExchange({
  id: 'coinbase',
  baseUrl: 'https://api.exchange.coinbase.com',
  pageSize: COINBASE_MAX_BUCKETS,
  historyDepth: 'full',
  limits: {
    // Burst 15, but 10/s sustained is what stays safe.
    buckets: { coinbase: { limit: 10, windowMs: 1_000, burst: 15 } },
    route: () => ({ key: 'coinbase', weight: 1 }),
  },
  bans: { statuses: [], defaultMs: 0, rateLimitedMs: 1_000 },
  // Only these granularities exist; 3m, 30m, 2h, 4h, 12h and 1w must be aggregated by the caller.
  intervals: { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '1d': 86400 },
  symbol: ({ base, quote }) => `${base}-${quote}`,
  numbersAsText: true,

  // Pages are time windows, not row counts: buckets without trades are simply missing, so a short
  // page says nothing about whether older data exists.
  request({ req, interval, symbol, step }) {
    const first = bucketStart(req.from + step - 1, req.interval); // first bucket opening at or after `from`
    const last = Math.min(bucketStart(req.to, req.interval), bucketStart(req.now, req.interval));
    if (first > last) return undefined;
    const start = Math.max(first, last - (COINBASE_MAX_BUCKETS - 1) * step);
    return {
      path: `/products/${encodeURIComponent(symbol)}/candles`,
      query: { granularity: interval, start: new Date(start).toISOString(), end: new Date(last).toISOString() },
      next: olderPage(start, req, step),
    };
  },

  parse(body, raw, { req, step }) {
    const rows = parseShape('coinbase', z.array(rowSchema), body, raw);
    const candles = rows.map(([openTime, low, high, open, close, volume]) => ({
      openTime, open, high, low, close, volume, closed: openTime + step <= req.now,
    }));
    return { candles };
  },

  // Coinbase publishes 24h volumes per product only (in the base currency), so it has no quoteVolumes.
  instruments: {
    path: COINBASE_PRODUCTS_PATH,
    parse: (body, raw) =>
      parseShape('coinbase', productsSchema, body, raw).map((p) => ({
        symbol: `${p.base_currency}/${p.quote_currency}`,
        native: p.id,
        key: p.id,
        base: p.base_currency,
        quote: p.quote_currency,
        trading: p.status === 'online' && p.trading_disabled !== true,
        status: p.trading_disabled === true ? `${p.status}, trading disabled` : p.status,
      })),
  },

  error(raw, req) {
    const parsed = errorSchema.safeParse(tryParseJson(raw));
    const msg = errorMessage(raw, parsed.data?.message);
    if (raw.status === 429) return new RateLimitedError('coinbase', retryAfterOf(raw, req.now) ?? coinbase.bans.rateLimitedMs, msg);
    if (raw.status === 404 || /not ?found/i.test(msg)) return new UnknownSymbolError('coinbase', req.symbol, msg);
    if (raw.status === 400 && /granularity/i.test(msg) && !/range|exceeds/i.test(msg)) {
      return new UnsupportedIntervalError('coinbase', req.interval, msg);
    }
    // Any other 400 ("granularity too small for the requested time range", a bad time): not worth retrying.
    if (raw.status === 400) return new BadRequestError('coinbase', raw.status, undefined, msg);
    return new ExchangeHttpError('coinbase', raw.status, undefined, msg);
  },
});
