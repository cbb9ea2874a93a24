import * as z from 'zod';
import type { Candle } from '../candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import {
  BannedError,
  ExchangeHttpError,
  MalformedResponseError,
  RateLimitedError,
  UnknownSymbolError,
  UnsupportedIntervalError,
  type ExchangeError,
} from './errors.ts';
import {
  countInt,
  decimalText,
  excerpt,
  finishCandles,
  isEmptyRange,
  looksLikeHtml,
  msTime,
  nativeInterval,
  parseJson,
  parseRetryAfter,
  parseShape,
  readResponse,
  tryParseJson,
  unifiedParts,
  withQuery,
  type RawResponse,
} from './normalise.ts';
import type { ExchangeAdapter, FetchDeps, PageRequest, PageResult } from './types.ts';

const EX = 'binance' as const;
export const BINANCE_KLINES_PATH = '/api/v3/klines';
export const BINANCE_KLINES_WEIGHT = 2;
const PAGE_LIMIT = 1000;

const INTERVALS: Partial<Record<Interval, string>> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1h',
  '2h': '2h', '4h': '4h', '6h': '6h', '12h': '12h', '1d': '1d', '1w': '1w',
};

// [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBase, takerQuote, ignore]
const rowSchema = z.tuple(
  [msTime, decimalText, decimalText, decimalText, decimalText, decimalText, z.number().int(), decimalText, countInt],
  z.unknown(),
);
const errorSchema = z.object({ code: z.number().int(), msg: z.string() });

export function binanceError(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError {
  const retryAfterMs = parseRetryAfter(raw.headers.get('retry-after'), req.now);
  const parsed = errorSchema.safeParse(tryParseJson(raw));
  const msg = parsed.success ? parsed.data.msg : looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
  if (raw.status === 418) {
    // The ban message names its end ("IP banned until 1732147200000"); it is more exact than Retry-After.
    const stated = /banned until (\d{13})/.exec(msg)?.[1];
    return new BannedError(EX, stated ? Number(stated) : req.now + (retryAfterMs ?? 120_000), msg);
  }
  if (raw.status === 429 || parsed.data?.code === -1003) return new RateLimitedError(EX, retryAfterMs ?? 60_000, msg);
  if (parsed.success) {
    if (parsed.data.code === -1121) return new UnknownSymbolError(EX, req.symbol, msg);
    if (parsed.data.code === -1120) return new UnsupportedIntervalError(EX, req.interval, msg);
    return new ExchangeHttpError(EX, raw.status, String(parsed.data.code), msg);
  }
  return new ExchangeHttpError(EX, raw.status, undefined, msg);
}

export const binance: ExchangeAdapter = {
  id: EX,
  maxPageSize: PAGE_LIMIT,
  historyDepth: 'full',
  supports: (interval) => INTERVALS[interval] !== undefined,
  nativeSymbol(unified) {
    const { base, quote } = unifiedParts(EX, unified);
    return base + quote;
  },

  async fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult> {
    const interval = nativeInterval(EX, req.interval, INTERVALS);
    const symbol = binance.nativeSymbol(req.symbol);
    if (isEmptyRange(req)) return { candles: [], weight: 0 };
    // With startTime Binance answers the oldest rows from there on, so pages walk forward.
    const url = withQuery(deps.baseUrl, BINANCE_KLINES_PATH, {
      symbol, interval, startTime: req.from, endTime: req.to, limit: PAGE_LIMIT,
    });
    const raw = await readResponse(await deps.fetch(url));
    if (raw.status !== 200) throw binanceError(raw, req);
    const rows = parseShape(EX, z.array(rowSchema), parseJson(EX, raw), raw);
    const step = INTERVAL_MS[req.interval];
    const candles: Candle[] = rows.map(([openTime, open, high, low, close, volume, closeTime, quoteVolume, trades], i) => {
      if (closeTime !== openTime + step - 1) {
        throw new MalformedResponseError(
          EX,
          `row ${i}: closeTime ${closeTime} does not end a ${req.interval} candle opening at ${openTime} (wrong interval?)`,
          excerpt(raw.text),
        );
      }
      // Binance does not flag the forming candle; it is the one whose close time is not yet past.
      return { openTime, open, high, low, close, volume, quoteVolume, trades, closed: closeTime < req.now };
    });
    // Not "page was full": a page shorter than asked for (a changed limit) must not end the range silently.
    // Only an empty page or reaching `to`/now does; that costs at most one extra call.
    const last = rows.at(-1)?.[0];
    const next = last !== undefined && last + step <= Math.min(req.to, req.now) ? { from: last + step } : undefined;
    return { candles: finishCandles(EX, req.interval, candles, req, raw), next, weight: BINANCE_KLINES_WEIGHT };
  },
};
