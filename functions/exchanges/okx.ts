import * as z from 'zod';
import { bucketStart } from '../candles/intervals.ts';
import { byPathSuffix, defineExchange } from './define.ts';
import { BadRequestError, ExchangeHttpError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import { decimalText, errorMessage, msTimeText, parseShape, retryAfterOf, tryParseJson } from './normalise.ts';
import { olderPage, oldestOpenTime } from './paging.ts';
import type { ExchangeAdapter } from './types.ts';

export const OKX_CANDLES_PATH = '/api/v5/market/candles';
export const OKX_HISTORY_PATH = '/api/v5/market/history-candles';
export const OKX_INSTRUMENTS_PATH = '/api/v5/public/instruments';
export const OKX_TICKERS_PATH = '/api/v5/market/tickers';
/** `candles` serves only this many of the newest rows; older ones need `history-candles`. */
export const OKX_RECENT_ROWS = 1440;
// A couple of bars of slack so a clock a little ahead of OKX's never asks `candles` for a row it has dropped.
const RECENT_MARGIN_ROWS = 2;

// [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]
const rowSchema = z.tuple(
  [msTimeText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, z.enum(['0', '1'])],
  z.unknown(),
);
// Older bodies carried a numeric code; both mean the same.
const codeSchema = z.union([z.string(), z.number()]).transform(String);
const envelopeSchema = z.object({ code: codeSchema, msg: z.string(), data: z.unknown().optional() });
const okSchema = z.object({ code: z.literal('0'), msg: z.string(), data: z.array(rowSchema) });
const instrumentsSchema = z.object({
  code: z.literal('0'),
  data: z.array(z.object({ instId: z.string(), baseCcy: z.string(), quoteCcy: z.string(), state: z.string() })),
});
// For SPOT, volCcy24h is the 24h volume in the quote currency.
const tickersSchema = z.object({ code: z.literal('0'), data: z.array(z.object({ instId: z.string(), volCcy24h: decimalText })) });
const BUCKET_OF_PATH: Record<string, string> = {
  [OKX_HISTORY_PATH]: 'okx:history',
  [OKX_INSTRUMENTS_PATH]: 'okx:instruments',
  [OKX_TICKERS_PATH]: 'okx:tickers',
};

export const okx: ExchangeAdapter = defineExchange({
  id: 'okx',
  baseUrl: 'https://www.okx.com',
  pageSize: 300,
  historyDepth: 'full',
  limits: {
    buckets: {
      'okx:candles': { limit: 40, windowMs: 2_000 },
      'okx:history': { limit: 20, windowMs: 2_000 },
      'okx:instruments': { limit: 20, windowMs: 2_000 },
      'okx:tickers': { limit: 20, windowMs: 2_000 },
    },
    route: (url) => ({ key: byPathSuffix(BUCKET_OF_PATH, url.pathname) ?? 'okx:candles', weight: 1 }),
  },
  // OKX bans nobody and sends no Retry-After; its limits are per 2 s window.
  bans: { statuses: [], defaultMs: 0, rateLimitedMs: 2_000 },
  // 6H and longer plain bars open at UTC+8; the *utc bars open at UTC midnight like every other exchange.
  intervals: {
    '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1H',
    '2h': '2H', '4h': '4H', '6h': '6Hutc', '12h': '12Hutc', '1d': '1Dutc', '1w': '1Wutc',
  },
  symbol: ({ base, quote }) => `${base}-${quote}`,

  // Newest first: a page holds the newest rows below `after`, so pages walk backward from `to`.
  request({ req, interval, symbol, step }) {
    const newest = Math.min(bucketStart(req.to, req.interval), bucketStart(req.now, req.interval));
    const oldestWanted = Math.max(req.from, newest - (okx.maxPageSize - 1) * step);
    const recentHorizon = bucketStart(req.now, req.interval) - (OKX_RECENT_ROWS - 1 - RECENT_MARGIN_ROWS) * step;
    return {
      path: oldestWanted >= recentHorizon ? OKX_CANDLES_PATH : OKX_HISTORY_PATH,
      query: { instId: symbol, bar: interval, after: req.to + 1, before: req.from - 1, limit: okx.maxPageSize },
    };
  },

  // Errors arrive with HTTP 200 too: only code "0" is data.
  failed: (body) => {
    const envelope = envelopeSchema.safeParse(body);
    return envelope.success && envelope.data.code !== '0';
  },

  parse(body, raw, { req, step }) {
    const { data } = parseShape('okx', okSchema, body, raw);
    const candles = data.map(([openTime, open, high, low, close, volume, , quoteVolume, confirm]) => ({
      openTime, open, high, low, close, volume, quoteVolume, closed: confirm === '1',
    }));
    return { candles, next: olderPage(oldestOpenTime(candles), req, step) };
  },

  instruments: {
    path: OKX_INSTRUMENTS_PATH,
    query: { instType: 'SPOT' },
    parse: (body, raw) =>
      parseShape('okx', instrumentsSchema, body, raw).data.map((i) => ({
        symbol: `${i.baseCcy}/${i.quoteCcy}`,
        native: i.instId,
        key: i.instId,
        base: i.baseCcy,
        quote: i.quoteCcy,
        trading: i.state === 'live',
        status: i.state,
      })),
  },
  quoteVolumes: {
    path: OKX_TICKERS_PATH,
    query: { instType: 'SPOT' },
    parse: (body, raw) => new Map(parseShape('okx', tickersSchema, body, raw).data.map((t) => [t.instId, Number(t.volCcy24h)])),
  },

  error(raw, req) {
    const parsed = envelopeSchema.safeParse(tryParseJson(raw));
    const code = parsed.data?.code;
    const msg = errorMessage(raw, parsed.data?.msg);
    if (raw.status === 429 || code === '50011') return new RateLimitedError('okx', retryAfterOf(raw, req.now) ?? okx.bans.rateLimitedMs, msg);
    if (code === '51001') return new UnknownSymbolError('okx', req.symbol, msg);
    // 51000 "Parameter {name} error": an interval OKX lacks, or another argument it refuses.
    if (code === '51000') return /bar/i.test(msg) ? new UnsupportedIntervalError('okx', req.interval, msg) : new BadRequestError('okx', raw.status, code, msg);
    return new ExchangeHttpError('okx', raw.status, code, msg);
  },
});
