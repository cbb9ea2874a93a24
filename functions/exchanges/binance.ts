import * as z from 'zod';
import { INTERVALS } from '../candles/intervals.ts';
import { byPathSuffix, defineExchange } from './define.ts';
import { BadRequestError, BannedError, ExchangeHttpError, MalformedResponseError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import { countInt, decimalText, errorMessage, excerpt, msTime, parseShape, retryAfterOf, tryParseJson } from './normalise.ts';
import { newerPage } from './paging.ts';
import type { ExchangeAdapter } from './types.ts';

export const BINANCE_KLINES_PATH = '/api/v3/klines';
export const BINANCE_EXCHANGE_INFO_PATH = '/api/v3/exchangeInfo';
export const BINANCE_TICKER_PATH = '/api/v3/ticker/24hr';

/** Request weights as Binance publishes them: klines 2, exchangeInfo 20, the 24h ticker of every symbol 80. */
const WEIGHTS: Record<string, number> = { [BINANCE_EXCHANGE_INFO_PATH]: 20, [BINANCE_TICKER_PATH]: 80 };

const exchangeInfoSchema = z.object({
  symbols: z.array(
    z.object({ symbol: z.string(), status: z.string(), baseAsset: z.string(), quoteAsset: z.string(), isSpotTradingAllowed: z.boolean().optional() }),
  ),
});
const tickersSchema = z.array(z.object({ symbol: z.string(), quoteVolume: decimalText }));

// [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBase, takerQuote, ignore]
const rowSchema = z.tuple(
  [msTime, decimalText, decimalText, decimalText, decimalText, decimalText, z.number().int(), decimalText, countInt, decimalText.optional(), decimalText.optional()],
  z.unknown(),
);
const errorSchema = z.object({ code: z.number().int(), msg: z.string() });

export const binance: ExchangeAdapter = defineExchange({
  id: 'binance',
  baseUrl: 'https://api.binance.com',
  pageSize: 1000,
  historyDepth: 'full',
  limits: {
    buckets: { binance: { limit: 6000, windowMs: 60_000 } }, // request weight per minute
    route: (url) => ({ key: 'binance', weight: byPathSuffix(WEIGHTS, url.pathname) ?? 2 }), // klines cost 2
    usageHeader: { name: 'x-mbx-used-weight-1m', key: 'binance' },
  },
  // 418: banned for 2 minutes up to 3 days; the first ban is the shortest.
  bans: { statuses: [418], defaultMs: 120_000, rateLimitedMs: 60_000 },
  // Binance names every candlekeep interval (1m … 1w) as candlekeep does, and offers more (1s, 8h, 3d, 1M).
  intervals: Object.fromEntries(INTERVALS.map((i) => [i, i])),
  symbol: ({ base, quote }) => base + quote,

  // With startTime Binance answers the oldest rows from there on, so pages walk forward.
  request: ({ req, interval, symbol }) => ({
    path: BINANCE_KLINES_PATH,
    query: { symbol, interval, startTime: req.from, endTime: req.to, limit: binance.maxPageSize },
  }),

  parse(body, raw, { req, step }) {
    const rows = parseShape('binance', z.array(rowSchema), body, raw);
    const candles = rows.map(([openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBuyVolume, takerBuyQuoteVolume], i) => {
      if (closeTime !== openTime + step - 1) {
        throw new MalformedResponseError(
          'binance',
          `row ${i}: closeTime ${closeTime} does not end a ${req.interval} candle opening at ${openTime} (wrong interval?)`,
          excerpt(raw.text),
        );
      }
      // Binance does not flag the forming candle; it is the one whose close time is not yet past.
      return {
        openTime, open, high, low, close, volume, quoteVolume, trades, closed: closeTime < req.now,
        ...(takerBuyVolume !== undefined && { takerBuyVolume }),
        ...(takerBuyQuoteVolume !== undefined && { takerBuyQuoteVolume }),
      };
    });
    return { candles, next: newerPage(rows.at(-1)?.[0], req, step) };
  },

  instruments: {
    path: BINANCE_EXCHANGE_INFO_PATH,
    parse: (body, raw) =>
      parseShape('binance', exchangeInfoSchema, body, raw)
        .symbols.filter((s) => s.isSpotTradingAllowed !== false)
        .map((s) => ({
          symbol: `${s.baseAsset}/${s.quoteAsset}`,
          native: s.symbol,
          key: s.symbol,
          base: s.baseAsset,
          quote: s.quoteAsset,
          trading: s.status === 'TRADING',
          status: s.status,
        })),
  },
  // Every symbol's 24h ticker in one call (weight 80); MINI leaves out what ranking does not need.
  quoteVolumes: {
    path: BINANCE_TICKER_PATH,
    query: { type: 'MINI' },
    parse: (body, raw) => new Map(parseShape('binance', tickersSchema, body, raw).map((t) => [t.symbol, Number(t.quoteVolume)])),
  },

  error(raw, req) {
    const retryAfterMs = retryAfterOf(raw, req.now);
    const parsed = errorSchema.safeParse(tryParseJson(raw));
    const msg = errorMessage(raw, parsed.data?.msg);
    if (raw.status === 418) {
      // The ban message names its end ("IP banned until 1732147200000"); it is more exact than Retry-After.
      const stated = /banned until (\d{13})/.exec(msg)?.[1];
      return new BannedError('binance', stated ? Number(stated) : req.now + (retryAfterMs ?? binance.bans.defaultMs), msg);
    }
    if (raw.status === 429 || parsed.data?.code === -1003) {
      return new RateLimitedError('binance', retryAfterMs ?? binance.bans.rateLimitedMs, msg);
    }
    // 403: the web application firewall blocks this IP; its page states no end.
    if (raw.status === 403) return new BannedError('binance', req.now + (retryAfterMs ?? binance.bans.defaultMs), `HTTP 403: ${msg}`);
    if (parsed.success) {
      const { code } = parsed.data;
      if (code === -1121) return new UnknownSymbolError('binance', req.symbol, msg);
      if (code === -1120) return new UnsupportedIntervalError('binance', req.interval, msg);
      // -11xx are "request issues" (a bad or missing parameter): the same request fails again.
      if (code <= -1100 && code > -1200) return new BadRequestError('binance', raw.status, String(code), msg);
      return new ExchangeHttpError('binance', raw.status, String(code), msg);
    }
    if (raw.status === 400) return new BadRequestError('binance', raw.status, undefined, msg);
    return new ExchangeHttpError('binance', raw.status, undefined, msg);
  },
});
