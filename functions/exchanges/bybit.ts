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
  decimalText,
  excerpt,
  finishCandles,
  isEmptyRange,
  looksLikeHtml,
  msTimeText,
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

const EX = 'bybit' as const;
export const BYBIT_KLINE_PATH = '/v5/market/kline';
const PAGE_LIMIT = 1000;
/** Bybit bans an IP for at least ten minutes after a 403; it sends no end time. */
export const BYBIT_BAN_MS = 10 * 60_000;

const INTERVALS: Partial<Record<Interval, string>> = {
  '1m': '1', '3m': '3', '5m': '5', '15m': '15', '30m': '30', '1h': '60',
  '2h': '120', '4h': '240', '6h': '360', '12h': '720', '1d': 'D', '1w': 'W',
};

// [start, open, high, low, close, volume, turnover]
const rowSchema = z.tuple([msTimeText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText], z.unknown());
const envelopeSchema = z.object({ retCode: z.number().int(), retMsg: z.string(), result: z.unknown(), time: z.number().int().optional() });
const resultSchema = z.object({ symbol: z.string(), category: z.string(), list: z.array(rowSchema) });

export function bybitError(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError {
  const parsed = envelopeSchema.safeParse(tryParseJson(raw));
  const msg = parsed.success ? parsed.data.retMsg : looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
  const retryAfterMs = parseRetryAfter(raw.headers.get('retry-after'), req.now);
  if (raw.status === 403) return new BannedError(EX, req.now + (retryAfterMs ?? BYBIT_BAN_MS), `HTTP 403: ${msg}`);
  if (raw.status === 429) return new RateLimitedError(EX, retryAfterMs ?? 1_000, msg);
  if (!parsed.success) return new ExchangeHttpError(EX, raw.status, undefined, msg);
  const { retCode } = parsed.data;
  if (retCode === 10006 || retCode === 10018) {
    // Per-UID limit; the reset time comes as an epoch-ms header.
    const reset = Number(raw.headers.get('x-bapi-limit-reset-timestamp'));
    return new RateLimitedError(EX, Number.isFinite(reset) && reset > req.now ? reset - req.now : 1_000, msg);
  }
  if (retCode === 10001 && /symbol/i.test(msg)) return new UnknownSymbolError(EX, req.symbol, msg);
  if (retCode === 10001 && /interval|period/i.test(msg)) return new UnsupportedIntervalError(EX, req.interval, msg);
  return new ExchangeHttpError(EX, raw.status, String(retCode), msg);
}

export const bybit: ExchangeAdapter = {
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
    const symbol = bybit.nativeSymbol(req.symbol);
    if (isEmptyRange(req)) return { candles: [], weight: 0 };
    // Newest first within [start, end] (both inclusive), so pages walk backward from `to`.
    const url = withQuery(deps.baseUrl, BYBIT_KLINE_PATH, {
      category: 'spot', symbol, interval, start: req.from, end: req.to, limit: PAGE_LIMIT,
    });
    const raw = await readResponse(await deps.fetch(url));
    const body = raw.status === 200 ? parseJson(EX, raw) : undefined;
    const envelope = envelopeSchema.safeParse(body);
    // Bybit reports most errors with HTTP 200 and a non-zero retCode.
    if (raw.status !== 200 || (envelope.success && envelope.data.retCode !== 0)) throw bybitError(raw, req);
    const { time } = parseShape(EX, envelopeSchema, body, raw);
    const result = parseShape(EX, z.object({ result: resultSchema }), body, raw).result;
    if (result.symbol.toUpperCase() !== symbol) {
      throw new MalformedResponseError(EX, `answer is for symbol ${result.symbol}, not ${symbol}`, excerpt(raw.text));
    }
    const step = INTERVAL_MS[req.interval];
    // Bybit does not flag the forming candle; the earlier of our clock and Bybit's decides, so clock skew never closes one early.
    const closedBy = Math.min(req.now, time ?? req.now);
    const candles: Candle[] = result.list.map(([openTime, open, high, low, close, volume, quoteVolume]) => ({
      openTime, open, high, low, close, volume, quoteVolume, closed: openTime + step <= closedBy,
    }));
    const oldest = result.list.reduce((min, row) => Math.min(min, row[0]), Number.POSITIVE_INFINITY);
    // Any non-empty page may have older rows behind it, full or not; an empty page ends the range.
    const next = result.list.length > 0 && oldest - step >= req.from ? { to: oldest - 1 } : undefined;
    return { candles: finishCandles(EX, req.interval, candles, req, raw), next, weight: 1 };
  },
};
