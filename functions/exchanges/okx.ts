import * as z from 'zod';
import type { Candle } from '../candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../candles/intervals.ts';
import {
  ExchangeHttpError,
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

const EX = 'okx' as const;
export const OKX_CANDLES_PATH = '/api/v5/market/candles';
export const OKX_HISTORY_PATH = '/api/v5/market/history-candles';
/** `candles` serves only this many of the newest rows; older ones need `history-candles`. */
export const OKX_RECENT_ROWS = 1440;
const PAGE_LIMIT = 300;
// A couple of bars of slack so a clock a little ahead of OKX's never asks `candles` for a row it has dropped.
const RECENT_MARGIN_ROWS = 2;

// 6H and longer plain bars open at UTC+8; the *utc bars open at UTC midnight like every other exchange.
const BARS: Partial<Record<Interval, string>> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1H',
  '2h': '2H', '4h': '4H', '6h': '6Hutc', '12h': '12Hutc', '1d': '1Dutc', '1w': '1Wutc',
};

// [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]
const rowSchema = z.tuple(
  [msTimeText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, z.enum(['0', '1'])],
  z.unknown(),
);
// Older bodies carried a numeric code; both mean the same.
const codeSchema = z.union([z.string(), z.number()]).transform(String);
const envelopeSchema = z.object({ code: codeSchema, msg: z.string(), data: z.unknown().optional() });
const okSchema = z.object({ code: z.literal('0'), msg: z.string(), data: z.array(rowSchema) });

export function okxError(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError {
  const parsed = envelopeSchema.safeParse(tryParseJson(raw));
  const code = parsed.success ? parsed.data.code : undefined;
  const msg = parsed.success ? parsed.data.msg : looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
  if (raw.status === 429 || code === '50011') {
    // OKX sends no Retry-After; its limits are per 2 s window.
    return new RateLimitedError(EX, parseRetryAfter(raw.headers.get('retry-after'), req.now) ?? 2_000, msg);
  }
  if (code === '51001') return new UnknownSymbolError(EX, req.symbol, msg);
  if (code === '51000' && /bar/i.test(msg)) return new UnsupportedIntervalError(EX, req.interval, msg);
  return new ExchangeHttpError(EX, raw.status, code, msg);
}

export const okx: ExchangeAdapter = {
  id: EX,
  maxPageSize: PAGE_LIMIT,
  historyDepth: 'full',
  supports: (interval) => BARS[interval] !== undefined,
  nativeSymbol(unified) {
    const { base, quote } = unifiedParts(EX, unified);
    return `${base}-${quote}`;
  },

  async fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult> {
    const bar = nativeInterval(EX, req.interval, BARS);
    const instId = okx.nativeSymbol(req.symbol);
    if (isEmptyRange(req)) return { candles: [], weight: 0 };
    const step = INTERVAL_MS[req.interval];
    // Newest first: a page holds the newest rows below `after`, so pages walk backward from `to`.
    const newest = Math.min(bucketStart(req.to, req.interval), bucketStart(req.now, req.interval));
    const oldestWanted = Math.max(req.from, newest - (PAGE_LIMIT - 1) * step);
    const recentHorizon = bucketStart(req.now, req.interval) - (OKX_RECENT_ROWS - 1 - RECENT_MARGIN_ROWS) * step;
    const path = oldestWanted >= recentHorizon ? OKX_CANDLES_PATH : OKX_HISTORY_PATH;
    const url = withQuery(deps.baseUrl, path, {
      instId, bar, after: req.to + 1, before: req.from - 1, limit: PAGE_LIMIT,
    });
    const raw = await readResponse(await deps.fetch(url));
    const body = raw.status === 200 ? parseJson(EX, raw) : undefined;
    const envelope = envelopeSchema.safeParse(body);
    // Errors arrive with HTTP 200 too: only code "0" is data.
    if (raw.status !== 200 || (envelope.success && envelope.data.code !== '0')) throw okxError(raw, req);
    const { data } = parseShape(EX, okSchema, body, raw);
    const candles: Candle[] = data.map(([openTime, open, high, low, close, volume, , quoteVolume, confirm]) => ({
      openTime, open, high, low, close, volume, quoteVolume, closed: confirm === '1',
    }));
    const oldest = data.reduce((min, row) => Math.min(min, row[0]), Number.POSITIVE_INFINITY);
    // Any non-empty page may have older rows behind it, full or not; an empty page ends the range.
    const next = data.length > 0 && oldest - step >= req.from ? { to: oldest - 1 } : undefined;
    return { candles: finishCandles(EX, req.interval, candles, req, raw), next, weight: 1 };
  },
};
