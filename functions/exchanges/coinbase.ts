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
  nativeInterval,
  parseJson,
  parseRetryAfter,
  parseShape,
  readResponse,
  secondsTimeText,
  tryParseJson,
  unifiedParts,
  withQuery,
  type RawResponse,
} from './normalise.ts';
import type { ExchangeAdapter, FetchDeps, PageRequest, PageResult } from './types.ts';

const EX = 'coinbase' as const;
/** Coinbase rejects (HTTP 400) a start/end range holding more buckets than this. */
export const COINBASE_MAX_BUCKETS = 300;

// Only these granularities exist; 3m, 30m, 2h, 4h, 12h and 1w must be aggregated by the caller.
const GRANULARITY: Partial<Record<Interval, number>> = {
  '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '1d': 86400,
};

// [time s, low, high, open, close, volume], JSON numbers read as their source text.
const rowSchema = z.tuple([secondsTimeText, decimalText, decimalText, decimalText, decimalText, decimalText], z.unknown());
const errorSchema = z.object({ message: z.string() });

export function coinbaseError(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError {
  const parsed = errorSchema.safeParse(tryParseJson(raw));
  const msg = parsed.success ? parsed.data.message : looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
  if (raw.status === 429) return new RateLimitedError(EX, parseRetryAfter(raw.headers.get('retry-after'), req.now) ?? 1_000, msg);
  if (raw.status === 404 || /not ?found/i.test(msg)) return new UnknownSymbolError(EX, req.symbol, msg);
  if (raw.status === 400 && /granularity/i.test(msg) && !/range|exceeds/i.test(msg)) return new UnsupportedIntervalError(EX, req.interval, msg);
  return new ExchangeHttpError(EX, raw.status, undefined, msg);
}

export const coinbase: ExchangeAdapter = {
  id: EX,
  maxPageSize: COINBASE_MAX_BUCKETS,
  historyDepth: 'full',
  supports: (interval) => GRANULARITY[interval] !== undefined,
  nativeSymbol(unified) {
    const { base, quote } = unifiedParts(EX, unified);
    return `${base}-${quote}`;
  },

  async fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult> {
    const granularity = nativeInterval(EX, req.interval, GRANULARITY);
    const product = coinbase.nativeSymbol(req.symbol);
    const step = INTERVAL_MS[req.interval];
    const first = bucketStart(req.from + step - 1, req.interval); // first bucket opening at or after `from`
    const last = Math.min(bucketStart(req.to, req.interval), bucketStart(req.now, req.interval));
    if (isEmptyRange(req) || first > last) return { candles: [], weight: 0 };
    // Pages are time windows, not row counts: buckets without trades are simply missing, so a short
    // page says nothing about whether older data exists.
    const start = Math.max(first, last - (COINBASE_MAX_BUCKETS - 1) * step);
    const url = withQuery(deps.baseUrl, `/products/${encodeURIComponent(product)}/candles`, {
      granularity, start: new Date(start).toISOString(), end: new Date(last).toISOString(),
    });
    const raw = await readResponse(await deps.fetch(url));
    if (raw.status !== 200) throw coinbaseError(raw, req);
    const rows = parseShape(EX, z.array(rowSchema), parseJson(EX, raw, { numbersAsText: true }), raw);
    const candles: Candle[] = rows.map(([openTime, low, high, open, close, volume]) => ({
      openTime, open, high, low, close, volume, closed: openTime + step <= req.now,
    }));
    const next = start > first ? { to: start - 1 } : undefined;
    return { candles: finishCandles(EX, req.interval, candles, req, raw), next, weight: 1 };
  },
};
