import * as z from 'zod';
import { defineExchange } from './define.ts';
import { BadRequestError, ExchangeHttpError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import { countInt, decimalText, errorMessage, parseShape, secondsTime, tryParseJson } from './normalise.ts';
import type { ExchangeAdapter } from './types.ts';

export const KRAKEN_OHLC_PATH = '/0/public/OHLC';
export const KRAKEN_ASSET_PAIRS_PATH = '/0/public/AssetPairs';
export const KRAKEN_TICKER_PATH = '/0/public/Ticker';
/** OHLC serves only the newest 720 rows whatever `since` says; deeper history is not available here. */
export const KRAKEN_MAX_ROWS = 720;

// Kraken's own asset codes for the few assets whose names differ from the common ones.
const TO_KRAKEN: Record<string, string> = { BTC: 'XBT', DOGE: 'XDG' };
const FROM_KRAKEN: Record<string, string> = Object.fromEntries(Object.entries(TO_KRAKEN).map(([ours, theirs]) => [theirs, ours]));

// [time s, open, high, low, close, vwap, volume, count]
const rowSchema = z.tuple(
  [secondsTime, decimalText, decimalText, decimalText, decimalText, decimalText, decimalText, countInt],
  z.unknown(),
);
const envelopeSchema = z.object({ error: z.array(z.string()), result: z.unknown().optional() });
const assetPairsSchema = z.object({
  result: z.record(z.string(), z.object({ altname: z.string(), wsname: z.string().optional(), status: z.string().optional() })),
});
// v: volume [today, last 24 hours]; p: volume-weighted average price [today, last 24 hours].
const tickerSchema = z.object({
  result: z.record(z.string(), z.object({ v: z.tuple([decimalText, decimalText]), p: z.tuple([decimalText, decimalText]) })),
});
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

export const kraken: ExchangeAdapter = defineExchange({
  id: 'kraken',
  baseUrl: 'https://api.kraken.com',
  pageSize: KRAKEN_MAX_ROWS,
  historyDepth: { maxCandles: KRAKEN_MAX_ROWS },
  limits: {
    buckets: { kraken: { limit: 1, windowMs: 1_000 } },
    route: () => ({ key: 'kraken', weight: 1 }),
    // Kraken answers "slow down" with HTTP 200 and no headers.
    bodyRateLimited: (text) => text.includes('EGeneral:Too many requests') || text.includes('EAPI:Rate limit exceeded'),
  },
  bans: { statuses: [], defaultMs: 0, rateLimitedMs: 1_000 },
  // 1w (10080) is left out on purpose: whether Kraken's weeks open on Monday (as candlekeep's do) is
  // not documented, and a guessed alignment would store shifted weeks.
  intervals: { '1m': 1, '5m': 5, '15m': 15, '30m': 30, '1h': 60, '4h': 240, '1d': 1440 },
  symbol: ({ base, quote }) => (TO_KRAKEN[base] ?? base) + (TO_KRAKEN[quote] ?? quote),

  // `since` is exclusive and in seconds; one call returns everything Kraken still has up to now.
  request: ({ req, interval, symbol }) => ({
    path: KRAKEN_OHLC_PATH,
    query: { pair: symbol, interval, since: Math.max(0, Math.floor(req.from / 1000) - 1) },
  }),

  // Kraken answers errors with HTTP 200 and a non-empty error array.
  failed: (body) => {
    const envelope = envelopeSchema.safeParse(body);
    return envelope.success && envelope.data.error.length > 0;
  },

  parse(body, raw, { req, step }) {
    const { result } = parseShape('kraken', z.object({ result: resultSchema }), body, raw);
    const lastCommitted = result.last * 1000;
    // The final row is always the forming candle; `last` and the clock must agree for any other row.
    const candles = result.rows.map(([openTime, open, high, low, close, vwap, volume, trades], i, rows) => ({
      openTime, open, high, low, close, volume, trades, vwap,
      closed: i < rows.length - 1 && openTime <= lastCommitted && openTime + step <= req.now,
    }));
    return { candles };
  },

  instruments: {
    path: KRAKEN_ASSET_PAIRS_PATH,
    // Pairs without a wsname (dark pools, ".d" pairs) cannot be followed as BASE/QUOTE and are left out.
    parse: (body, raw) =>
      Object.entries(parseShape('kraken', assetPairsSchema, body, raw).result).flatMap(([key, p]) => {
        const [base, quote] = (p.wsname ?? '').split('/');
        if (!base || !quote) return [];
        const unified = (a: string) => FROM_KRAKEN[a] ?? a;
        const status = p.status ?? 'online';
        return [{ symbol: `${unified(base)}/${unified(quote)}`, native: p.altname, key, base: unified(base), quote: unified(quote), trading: status === 'online', status }];
      }),
  },
  // Every pair's ticker in one call, keyed by pair key: 24h volume (base) times the 24h average price.
  quoteVolumes: {
    path: KRAKEN_TICKER_PATH,
    parse: (body, raw) =>
      new Map(Object.entries(parseShape('kraken', tickerSchema, body, raw).result).map(([key, t]) => [key, Number(t.v[1]) * Number(t.p[1])])),
  },

  error(raw, req) {
    const parsed = envelopeSchema.safeParse(tryParseJson(raw));
    const errors = parsed.data?.error ?? [];
    const msg = errorMessage(raw, errors.length > 0 ? errors.join('; ') : undefined);
    if (raw.status === 429 || errors.some((e) => e.startsWith('EGeneral:Too many requests') || e.startsWith('EAPI:Rate limit'))) {
      return new RateLimitedError('kraken', kraken.bans.rateLimitedMs, msg);
    }
    if (errors.some((e) => e.startsWith('EQuery:Unknown asset pair'))) return new UnknownSymbolError('kraken', req.symbol, msg);
    const invalid = errors.find((e) => e.startsWith('EGeneral:Invalid arguments') || e.startsWith('EGeneral:Unknown method'));
    if (invalid && /interval/i.test(invalid)) return new UnsupportedIntervalError('kraken', req.interval, msg);
    if (invalid) return new BadRequestError('kraken', raw.status, invalid.split(':').slice(0, 2).join(':'), msg);
    return new ExchangeHttpError('kraken', raw.status, errors[0]?.split(':').slice(0, 2).join(':'), msg);
  },
});
