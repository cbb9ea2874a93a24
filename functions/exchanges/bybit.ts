import * as z from 'zod';
import { defineExchange } from './define.ts';
import { BadRequestError, BannedError, ExchangeHttpError, MalformedResponseError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import { decimalText, errorMessage, excerpt, msTimeText, parseShape, retryAfterOf, tryParseJson } from './normalise.ts';
import { olderPage, oldestOpenTime } from './paging.ts';
import type { ExchangeAdapter } from './types.ts';

export const BYBIT_KLINE_PATH = '/v5/market/kline';
export const BYBIT_INSTRUMENTS_PATH = '/v5/market/instruments-info';
export const BYBIT_TICKERS_PATH = '/v5/market/tickers';

// [start, open, high, low, close, volume, turnover]
const rowSchema = z.tuple([msTimeText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText], z.unknown());
const envelopeSchema = z.object({ retCode: z.number().int(), retMsg: z.string(), result: z.unknown(), time: z.number().int().optional() });
const resultSchema = z.object({ symbol: z.string(), category: z.string(), list: z.array(rowSchema) });
const instrumentsSchema = z.object({
  result: z.object({ list: z.array(z.object({ symbol: z.string(), baseCoin: z.string(), quoteCoin: z.string(), status: z.string() })) }),
});
const tickersSchema = z.object({ result: z.object({ list: z.array(z.object({ symbol: z.string(), turnover24h: decimalText })) }) });

export const bybit: ExchangeAdapter = defineExchange({
  id: 'bybit',
  baseUrl: 'https://api.bybit.com',
  pageSize: 1000,
  historyDepth: 'full',
  limits: {
    buckets: { bybit: { limit: 600, windowMs: 5_000 } },
    route: () => ({ key: 'bybit', weight: 1 }),
    // Per-UID limits answer HTTP 200 with these codes.
    bodyRateLimited: (text) => /"retCode"\s*:\s*(10006|10018)\b/.test(text),
  },
  // A breach of the IP limit is a 403 and a ban of at least ten minutes; no end time is sent.
  bans: { statuses: [403], defaultMs: 10 * 60_000, rateLimitedMs: 1_000 },
  intervals: {
    '1m': '1', '3m': '3', '5m': '5', '15m': '15', '30m': '30', '1h': '60',
    '2h': '120', '4h': '240', '6h': '360', '12h': '720', '1d': 'D', '1w': 'W',
  },
  symbol: ({ base, quote }) => base + quote,

  // Newest first within [start, end] (both inclusive), so pages walk backward from `to`.
  request: ({ req, interval, symbol }) => ({
    path: BYBIT_KLINE_PATH,
    query: { category: 'spot', symbol, interval, start: req.from, end: req.to, limit: bybit.maxPageSize },
  }),

  // Bybit reports most errors with HTTP 200 and a non-zero retCode.
  failed: (body) => {
    const envelope = envelopeSchema.safeParse(body);
    return envelope.success && envelope.data.retCode !== 0;
  },

  parse(body, raw, { req, symbol, step }) {
    const { time } = parseShape('bybit', envelopeSchema, body, raw);
    const { result } = parseShape('bybit', z.object({ result: resultSchema }), body, raw);
    if (result.symbol.toUpperCase() !== symbol) {
      throw new MalformedResponseError('bybit', `answer is for symbol ${result.symbol}, not ${symbol}`, excerpt(raw.text));
    }
    // Bybit does not flag the forming candle; the earlier of our clock and Bybit's decides, so clock skew never closes one early.
    const closedBy = Math.min(req.now, time ?? req.now);
    const candles = result.list.map(([openTime, open, high, low, close, volume, quoteVolume]) => ({
      openTime, open, high, low, close, volume, quoteVolume, closed: openTime + step <= closedBy,
    }));
    return { candles, next: olderPage(oldestOpenTime(candles), req, step) };
  },

  instruments: {
    path: BYBIT_INSTRUMENTS_PATH,
    // Spot answers every instrument at once (no paging for this category).
    query: { category: 'spot' },
    parse: (body, raw) =>
      parseShape('bybit', instrumentsSchema, body, raw).result.list.map((i) => ({
        symbol: `${i.baseCoin}/${i.quoteCoin}`,
        native: i.symbol,
        key: i.symbol,
        base: i.baseCoin,
        quote: i.quoteCoin,
        trading: i.status === 'Trading',
        status: i.status,
      })),
  },
  // turnover24h is the 24h volume in the quote coin.
  quoteVolumes: {
    path: BYBIT_TICKERS_PATH,
    query: { category: 'spot' },
    parse: (body, raw) => new Map(parseShape('bybit', tickersSchema, body, raw).result.list.map((t) => [t.symbol, Number(t.turnover24h)])),
  },

  error(raw, req) {
    const parsed = envelopeSchema.safeParse(tryParseJson(raw));
    const msg = errorMessage(raw, parsed.data?.retMsg);
    const retryAfterMs = retryAfterOf(raw, req.now);
    if (raw.status === 403) return new BannedError('bybit', req.now + (retryAfterMs ?? bybit.bans.defaultMs), `HTTP 403: ${msg}`);
    if (raw.status === 429) return new RateLimitedError('bybit', retryAfterMs ?? bybit.bans.rateLimitedMs, msg);
    if (!parsed.success) return new ExchangeHttpError('bybit', raw.status, undefined, msg);
    const { retCode } = parsed.data;
    if (retCode === 10006 || retCode === 10018) {
      // Per-UID limit; the reset time comes as an epoch-ms header.
      const reset = Number(raw.headers.get('x-bapi-limit-reset-timestamp'));
      return new RateLimitedError('bybit', Number.isFinite(reset) && reset > req.now ? reset - req.now : bybit.bans.rateLimitedMs, msg);
    }
    if (retCode === 10001 && /symbol/i.test(msg)) return new UnknownSymbolError('bybit', req.symbol, msg);
    if (retCode === 10001 && /interval|period/i.test(msg)) return new UnsupportedIntervalError('bybit', req.interval, msg);
    // 10001 "params error" about anything else: the same request fails again.
    if (retCode === 10001) return new BadRequestError('bybit', raw.status, String(retCode), msg);
    return new ExchangeHttpError('bybit', raw.status, String(retCode), msg);
  },
});
