import * as z from 'zod';
import type { Candle } from '../candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import {
  ExchangeHttpError,
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
  nativeInterval,
  parseJson,
  parseShape,
  readResponse,
  secondsTime,
  tryParseJson,
  unifiedParts,
  withQuery,
  type RawResponse,
} from './normalise.ts';
import type { ExchangeAdapter, FetchDeps, PageRequest, PageResult } from './types.ts';

const EX = 'kraken' as const;
export const KRAKEN_OHLC_PATH = '/0/public/OHLC';
/** OHLC serves only the newest 720 rows whatever `since` says; deeper history is not available here. */
export const KRAKEN_MAX_ROWS = 720;

// 1w (10080) is left out on purpose: whether Kraken's weeks open on Monday (as candlekeep's do) is
// not documented, and a guessed alignment would store shifted weeks.
const INTERVALS: Partial<Record<Interval, number>> = {
  '1m': 1, '5m': 5, '15m': 15, '30m': 30, '1h': 60, '4h': 240, '1d': 1440,
};

// Kraken's own asset codes for the few assets whose names differ from the common ones.
const TO_KRAKEN: Record<string, string> = { BTC: 'XBT', DOGE: 'XDG' };

// [time s, open, high, low, close, vwap, volume, count]
const rowSchema = z.tuple(
  [secondsTime, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, countInt],
  z.unknown(),
);
const envelopeSchema = z.object({ error: z.array(z.string()), result: z.unknown().optional() });
// The pair key is Kraken's internal name (XXBTZUSD for XBTUSD), so it is found, not predicted.
const resultSchema = z
  .record(z.string(), z.unknown())
  .superRefine((r, ctx) => {
    const keys = Object.keys(r).filter((k) => k !== 'last');
    if (keys.length !== 1) ctx.addIssue({ code: 'custom', message: `expected one pair key besides "last", got ${JSON.stringify(keys)}` });
  })
  .transform((r) => {
    const key = Object.keys(r).find((k) => k !== 'last') ?? '';
    return { key, rows: r[key], last: r['last'] };
  })
  .pipe(z.object({ key: z.string(), rows: z.array(rowSchema), last: z.number().int().nonnegative() }));

export function krakenError(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError {
  const parsed = envelopeSchema.safeParse(tryParseJson(raw));
  const errors = parsed.success ? parsed.data.error : [];
  const msg = errors.length > 0 ? errors.join('; ') : looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
  if (raw.status === 429 || errors.some((e) => e.startsWith('EGeneral:Too many requests') || e.startsWith('EAPI:Rate limit'))) {
    return new RateLimitedError(EX, 1_000, msg);
  }
  if (errors.some((e) => e.startsWith('EQuery:Unknown asset pair'))) return new UnknownSymbolError(EX, req.symbol, msg);
  if (errors.some((e) => e.startsWith('EGeneral:Invalid arguments') && /interval/i.test(e))) {
    return new UnsupportedIntervalError(EX, req.interval, msg);
  }
  return new ExchangeHttpError(EX, raw.status, errors[0]?.split(':').slice(0, 2).join(':'), msg);
}

export const kraken: ExchangeAdapter = {
  id: EX,
  maxPageSize: KRAKEN_MAX_ROWS,
  historyDepth: { maxCandles: KRAKEN_MAX_ROWS },
  supports: (interval) => INTERVALS[interval] !== undefined,
  nativeSymbol(unified) {
    const { base, quote } = unifiedParts(EX, unified);
    return (TO_KRAKEN[base] ?? base) + (TO_KRAKEN[quote] ?? quote);
  },

  async fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult> {
    const interval = nativeInterval(EX, req.interval, INTERVALS);
    const pair = kraken.nativeSymbol(req.symbol);
    if (isEmptyRange(req)) return { candles: [], weight: 0 };
    // `since` is exclusive and in seconds; one call returns everything Kraken still has up to now.
    const since = Math.max(0, Math.floor(req.from / 1000) - 1);
    const url = withQuery(deps.baseUrl, KRAKEN_OHLC_PATH, { pair, interval, since });
    const raw = await readResponse(await deps.fetch(url));
    const body = raw.status === 200 ? parseJson(EX, raw) : undefined;
    const envelope = envelopeSchema.safeParse(body);
    // Kraken answers errors with HTTP 200 and a non-empty error array.
    if (raw.status !== 200 || (envelope.success && envelope.data.error.length > 0)) throw krakenError(raw, req);
    const { result } = parseShape(EX, z.object({ result: resultSchema }), body, raw);
    const lastCommitted = result.last * 1000;
    const step = INTERVAL_MS[req.interval];
    // The final row is always the forming candle; `last` and the clock must agree for any other row.
    const candles: Candle[] = result.rows.map(([openTime, open, high, low, close, , volume, trades], i, rows) => ({
      openTime, open, high, low, close, volume, trades,
      closed: i < rows.length - 1 && openTime <= lastCommitted && openTime + step <= req.now,
    }));
    return { candles: finishCandles(EX, req.interval, candles, req, raw), weight: 1 };
  },
};
