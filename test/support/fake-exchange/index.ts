/**
 * A local stand-in for the five exchanges' public kline endpoints, over real HTTP (127.0.0.1, port 0).
 *
 *   const fake = await startFakeExchange({ now: () => clock, timeScale: 60 });
 *   await binance.fetchPage(req, { fetch, baseUrl: fake.baseUrls.binance });
 *   fake.inject('binance', '429', { retryAfterSec: 2 });   // next answer: 429 + Retry-After: 2
 *   fake.stats('binance');  // { requests, ok, rateLimited, banned, errors, faults }
 *   await fake.close();
 *
 * It serves a deterministic (seeded) price series in each exchange's own response shape, order,
 * page limits, pagination and error formats, with a forming last candle by its clock, and enforces
 * the exchanges' published rate limits (FAKE_LIMITS) on that clock. `timeScale` runs every
 * rate-limit window and ban that many times faster (timeScale 60: Binance's minute lasts one
 * second), and Retry-After is then sent in fractional seconds. With `enforceLimits: false` nothing is
 * limited and Binance sends no X-MBX-USED-WEIGHT-1M. Only candlekeep's intervals are served; other
 * valid exchange intervals get the exchange's "bad interval" answer.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Candle, Exchange } from '../../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../../functions/candles/intervals.ts';
import { FixedWindow, SlidingWindow, TokenBucket, type Limiter } from './limits.ts';
import {
  FAKE_MARKETS,
  SeriesGenerator,
  bucketAtOrAfter,
  bucketTimes,
  fixed,
  jsonNumber,
  rescale,
  take,
  trimmed,
  type FakeMarket,
  type RawCandle,
} from './series.ts';

export { FAKE_MARKETS, type FakeMarket } from './series.ts';

/** The exchanges' published limits, as the fake enforces them (before `timeScale`). */
export const FAKE_LIMITS = {
  /** Weight per minute, fixed window; klines weight 2; `banAfter` requests during a 429 back-off earn a 418 ban. */
  binance: { weightPerWindow: 6000, windowMs: 60_000, klinesWeight: 2, banAfter: 3, banMs: 120_000 },
  okxCandles: { limit: 40, windowMs: 2_000 },
  okxHistory: { limit: 20, windowMs: 2_000 },
  /** Requests per 5 s, sliding; a breach answers 403 and bans for `banMs`. */
  bybit: { limit: 600, windowMs: 5_000, banMs: 600_000 },
  /** Token bucket. */
  coinbase: { burst: 15, perSecond: 10 },
  kraken: { limit: 1, windowMs: 1_000 },
};
export type FakeLimits = typeof FAKE_LIMITS;

export type FaultKind = '429' | '418' | '500' | 'html' | 'truncated';
export interface FaultOptions {
  /** How many of the next responses get the fault (default 1). */
  count?: number;
  /** Retry-After for '429'/'418' (default 1 s / 120 s). */
  retryAfterSec?: number;
  /** Status for 'html' (default 502, a Cloudflare error page; 200 makes it an HTML page where JSON was due). */
  status?: number;
}

export interface FakeExchangeOptions {
  /** Server clock (ms) for candles and rate limits; default Date.now. */
  now?: () => number;
  seed?: number;
  /** Rate-limit windows and bans run this many times faster than the real ones (default 1). */
  timeScale?: number;
  limits?: { [K in keyof FakeLimits]?: Partial<FakeLimits[K]> };
  /** Default true. */
  enforceLimits?: boolean;
  /** No candles open before this (ms): one value, one per exchange, or per market. Default 2019-01-01. */
  listedAt?: number | Partial<Record<Exchange, number>> | ((exchange: Exchange, symbol: string) => number | undefined);
  /** Buckets without trades: Coinbase omits them, Kraken serves flat candles with count 0; others ignore this. */
  holes?: (openTime: number, series: { exchange: Exchange; symbol: string; interval: Interval }) => boolean;
}

export interface ExchangeStats {
  requests: number;
  /** 200 answers with data. */
  ok: number;
  /** 429s and the exchange's other "slow down" answers (OKX 50011, Kraken EGeneral:Too many requests, Bybit 10006). */
  rateLimited: number;
  /** Ban answers: Binance 418, Bybit 403. */
  banned: number;
  /** Validation errors (unknown symbol, bad interval, bad parameter). */
  errors: number;
  /** Injected faults served. */
  faults: number;
}

export interface RequestRecord {
  path: string;
  query: Record<string, string>;
  status: number;
  at: number;
}

export interface FakeExchange {
  readonly origin: string;
  /** Pass as the adapters' `baseUrl`. */
  readonly baseUrls: Record<Exchange, string>;
  readonly timeScale: number;
  now(): number;
  setClock(now: () => number): void;
  /** Forces the next responses of `exchange` to fail in that exchange's format. */
  inject(exchange: Exchange, kind: FaultKind, options?: FaultOptions): void;
  stats(exchange: Exchange): ExchangeStats;
  requests(exchange: Exchange): readonly RequestRecord[];
  /** The candles an adapter should produce for this range, as the fake serves them now. */
  expected(exchange: Exchange, unified: string, interval: Interval, from: number, to: number): Candle[];
  /** Clears counters, faults, rate-limit state and bans. */
  reset(): void;
  close(): Promise<void>;
}

const EXCHANGES: readonly Exchange[] = ['binance', 'okx', 'bybit', 'coinbase', 'kraken'];

const BINANCE_INTERVALS: Record<string, Interval> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1h',
  '2h': '2h', '4h': '4h', '6h': '6h', '12h': '12h', '1d': '1d', '1w': '1w',
};
const OKX_BARS: Record<string, Interval> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1H': '1h',
  '2H': '2h', '4H': '4h', '6Hutc': '6h', '12Hutc': '12h', '1Dutc': '1d', '1Wutc': '1w',
};
const BYBIT_INTERVALS: Record<string, Interval> = {
  '1': '1m', '3': '3m', '5': '5m', '15': '15m', '30': '30m', '60': '1h',
  '120': '2h', '240': '4h', '360': '6h', '720': '12h', D: '1d', W: '1w',
};
const COINBASE_GRANULARITY: Record<string, Interval> = { '60': '1m', '300': '5m', '900': '15m', '3600': '1h', '21600': '6h', '86400': '1d' };
const KRAKEN_INTERVALS: Record<string, Interval> = { '1': '1m', '5': '5m', '15': '15m', '30': '30m', '60': '1h', '240': '4h', '1440': '1d', '10080': '1w' };

const KRAKEN_ASSET: Record<string, string> = { BTC: 'XBT', DOGE: 'XDG' };
const KRAKEN_CLASSIC = new Set(['XBT', 'ETH', 'LTC', 'XRP', 'XLM', 'ETC', 'XMR', 'ZEC', 'XDG']);
const KRAKEN_FIAT = new Set(['USD', 'EUR', 'GBP', 'JPY', 'CAD']);
const KRAKEN_ROWS = 720;
const OKX_RECENT_ROWS = 1440;

function krakenNames(m: FakeMarket): { altname: string; key: string } {
  const b = KRAKEN_ASSET[m.base] ?? m.base;
  const q = KRAKEN_ASSET[m.quote] ?? m.quote;
  return { altname: b + q, key: KRAKEN_CLASSIC.has(b) && KRAKEN_FIAT.has(q) ? `X${b}Z${q}` : b + q };
}
const krakenPriceDecimals = (m: FakeMarket) => (m.base === 'BTC' ? 1 : m.priceDecimals);

interface Answer {
  status: number;
  body: string;
  headers?: Record<string, string>;
  outcome: keyof Omit<ExchangeStats, 'requests'>;
}

const HTML_PAGE = (status: number) =>
  `<!DOCTYPE html>\n<html><head><title>${status} Bad gateway</title></head><body><h1>Error ${status}</h1>` +
  '<p>The web server reported a bad gateway error.</p><p>cloudflare</p></body></html>';

export async function startFakeExchange(options: FakeExchangeOptions = {}): Promise<FakeExchange> {
  let clock = options.now ?? Date.now;
  const timeScale = options.timeScale ?? 1;
  const enforce = options.enforceLimits ?? true;
  const gen = new SeriesGenerator(options.seed ?? 1);
  const L = {
    binance: { ...FAKE_LIMITS.binance, ...options.limits?.binance },
    okxCandles: { ...FAKE_LIMITS.okxCandles, ...options.limits?.okxCandles },
    okxHistory: { ...FAKE_LIMITS.okxHistory, ...options.limits?.okxHistory },
    bybit: { ...FAKE_LIMITS.bybit, ...options.limits?.bybit },
    coinbase: { ...FAKE_LIMITS.coinbase, ...options.limits?.coinbase },
    kraken: { ...FAKE_LIMITS.kraken, ...options.limits?.kraken },
  };
  const limiters = {
    binance: new FixedWindow(L.binance.weightPerWindow, L.binance.windowMs / timeScale),
    okxCandles: new SlidingWindow(L.okxCandles.limit, L.okxCandles.windowMs / timeScale),
    okxHistory: new SlidingWindow(L.okxHistory.limit, L.okxHistory.windowMs / timeScale),
    bybit: new SlidingWindow(L.bybit.limit, L.bybit.windowMs / timeScale),
    coinbase: new TokenBucket(L.coinbase.burst, L.coinbase.perSecond, timeScale),
    kraken: new SlidingWindow(L.kraken.limit, L.kraken.windowMs / timeScale),
  } satisfies Record<string, Limiter>;
  const state = { binanceBackoffUntil: 0, binanceAbuse: 0, binanceBannedUntil: 0, bybitBannedUntil: 0 };
  const faults = new Map<Exchange, { kind: FaultKind; options: FaultOptions }[]>();
  const stats = new Map<Exchange, ExchangeStats>();
  const logs = new Map<Exchange, RequestRecord[]>();
  const emptyStats = (): ExchangeStats => ({ requests: 0, ok: 0, rateLimited: 0, banned: 0, errors: 0, faults: 0 });
  for (const ex of EXCHANGES) stats.set(ex, emptyStats());

  const retryAfter = (ms: number): string => (timeScale === 1 ? String(Math.max(1, Math.ceil(ms / 1000))) : (Math.max(1, ms) / 1000).toFixed(3));
  const listedAt = (ex: Exchange, m: FakeMarket): number => {
    const l = options.listedAt;
    const at = typeof l === 'number' ? l : typeof l === 'function' ? l(ex, m.unified) : l?.[ex];
    return at ?? Date.UTC(2019, 0, 1);
  };
  const isHole = (ex: Exchange, m: FakeMarket, interval: Interval, t: number) =>
    options.holes?.(t, { exchange: ex, symbol: m.unified, interval }) ?? false;

  /** Open times of every bucket that exists for the series right now: listing to the forming one. */
  const span = (ex: Exchange, m: FakeMarket, interval: Interval, now: number) => ({
    first: bucketAtOrAfter(listedAt(ex, m), interval),
    last: bucketStart(now, interval),
  });

  const json = (status: number, value: unknown, outcome: Answer['outcome'], headers?: Record<string, string>): Answer => ({
    status, body: JSON.stringify(value), outcome, ...(headers ? { headers } : {}),
  });

  // ---------------------------------------------------------------- Binance
  const binanceMarket = (s: string | undefined) => FAKE_MARKETS.find((m) => m.base + m.quote === s);
  function binanceRow(m: FakeMarket, interval: Interval, c: RawCandle): string {
    const p = (v: number) => `"${fixed(rescale(v, m.priceDecimals, 8), 8)}"`;
    const quote = BigInt(c.volume) * BigInt(c.close);
    const q = (v: bigint) => `"${fixed(rescale(v, 8 + m.priceDecimals, 8), 8)}"`;
    const taker = BigInt(Math.floor(c.volume * 0.45));
    return `[${c.openTime},${p(c.open)},${p(c.high)},${p(c.low)},${p(c.close)},"${fixed(c.volume, 8)}",${c.openTime + INTERVAL_MS[interval] - 1},` +
      `${q(quote)},${c.trades},"${fixed(taker, 8)}",${q(taker * BigInt(c.close))},"0"]`;
  }
  function binance(q: URLSearchParams, now: number): Answer {
    // Without limits there is no usage to report (and a frozen clock would never reset it).
    const weightHeader = (): Record<string, string> => (enforce ? { 'X-MBX-USED-WEIGHT-1M': String(limiters.binance.usedAt(now)) } : {});
    if (enforce) {
      if (now < state.binanceBannedUntil) return binanceBan(now, weightHeader());
      if (now < state.binanceBackoffUntil) {
        state.binanceAbuse += 1;
        if (state.binanceAbuse >= L.binance.banAfter) {
          state.binanceBannedUntil = now + L.binance.banMs / timeScale;
          return binanceBan(now, weightHeader());
        }
        return binance429(state.binanceBackoffUntil - now, weightHeader());
      }
      const admitted = limiters.binance.admit(now, L.binance.klinesWeight);
      if (!admitted.ok) {
        state.binanceBackoffUntil = now + admitted.retryAfterMs;
        state.binanceAbuse = 0;
        return binance429(admitted.retryAfterMs, weightHeader());
      }
    }
    const bad = (code: number, msg: string) => json(400, { code, msg }, 'errors', weightHeader());
    const symbol = q.get('symbol');
    if (!symbol) return bad(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
    const m = binanceMarket(symbol);
    if (!m) return bad(-1121, 'Invalid symbol.');
    const interval = BINANCE_INTERVALS[q.get('interval') ?? ''];
    if (!interval) return bad(-1120, 'Invalid interval.');
    const limit = Number(q.get('limit') ?? 500);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad(-1130, "Invalid data sent for a parameter 'limit'.");
    const { first, last } = span('binance', m, interval, now);
    const start = q.get('startTime');
    const end = q.get('endTime');
    const hi = end === null ? last : Math.min(last, bucketStart(Number(end), interval));
    // startTime → oldest rows from there; otherwise the newest rows up to endTime (or now).
    const times =
      start !== null
        ? take(bucketTimes(Math.max(first, bucketAtOrAfter(Number(start), interval)), hi, interval, 1), limit)
        : take(bucketTimes(first, hi, interval, -1), limit).reverse();
    const rows = times.map((t) => binanceRow(m, interval, gen.candle('binance', m, interval, t, now)));
    return { status: 200, body: `[${rows.join(',')}]`, headers: weightHeader(), outcome: 'ok' };
  }
  function binance429(ms: number, headers: Record<string, string>): Answer {
    return json(429, {
      code: -1003,
      msg: `Too much request weight used; current limit is ${L.binance.weightPerWindow} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`,
    }, 'rateLimited', { ...headers, 'Retry-After': retryAfter(ms) });
  }
  function binanceBan(now: number, headers: Record<string, string>): Answer {
    return json(418, {
      code: -1003,
      msg: `Way too much request weight used; IP banned until ${Math.round(state.binanceBannedUntil)}. Please use WebSocket Streams for live updates to avoid bans.`,
    }, 'banned', { ...headers, 'Retry-After': retryAfter(state.binanceBannedUntil - now) });
  }

  // ---------------------------------------------------------------- OKX
  function okx(path: string, q: URLSearchParams, now: number): Answer {
    const history = path.endsWith('/history-candles');
    if (enforce) {
      const admitted = (history ? limiters.okxHistory : limiters.okxCandles).admit(now, 1);
      if (!admitted.ok) return json(429, { msg: 'Too Many Requests', code: '50011' }, 'rateLimited');
    }
    // OKX reports parameter errors with HTTP 200 and a non-zero code.
    const bad = (code: string, msg: string) => json(200, { code, msg, data: [] }, 'errors');
    const m = FAKE_MARKETS.find((x) => `${x.base}-${x.quote}` === q.get('instId'));
    if (!m) return bad('51001', "Instrument ID doesn't exist.");
    const interval = OKX_BARS[q.get('bar') ?? '1m'];
    if (!interval) return bad('51000', 'Parameter bar error');
    const limit = Number(q.get('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 300) return bad('51000', 'Parameter limit error');
    const step = INTERVAL_MS[interval];
    const { first, last } = span('okx', m, interval, now);
    const lo = Math.max(first, history ? first : last - (OKX_RECENT_ROWS - 1) * step);
    const after = q.get('after');
    const before = q.get('before');
    const hi = after === null ? last : Math.min(last, bucketStart(Number(after) - 1, interval));
    const floor = before === null ? lo : Math.max(lo, bucketAtOrAfter(Number(before) + 1, interval));
    const rows = take(bucketTimes(floor, hi, interval, -1), limit).map((t) => {
      const c = gen.candle('okx', m, interval, t, now);
      const quote = trimmed(rescale(BigInt(c.volume) * BigInt(c.close), 8 + m.priceDecimals, 8), 8);
      const p = (v: number) => trimmed(v, m.priceDecimals);
      return [String(t), p(c.open), p(c.high), p(c.low), p(c.close), trimmed(c.volume, 8), quote, quote, c.closed ? '1' : '0'];
    });
    return json(200, { code: '0', msg: '', data: rows }, 'ok');
  }

  // ---------------------------------------------------------------- Bybit
  function bybit(q: URLSearchParams, now: number): Answer {
    if (enforce) {
      if (now < state.bybitBannedUntil) return bybitBan();
      if (!limiters.bybit.admit(now, 1).ok) {
        state.bybitBannedUntil = now + L.bybit.banMs / timeScale;
        return bybitBan();
      }
    }
    // Bybit answers parameter errors with HTTP 200 and a non-zero retCode.
    const bad = (msg: string) => json(200, { retCode: 10001, retMsg: msg, result: {}, retExtInfo: {}, time: Math.floor(now) }, 'errors');
    const category = q.get('category') ?? 'linear';
    if (!['spot', 'linear', 'inverse'].includes(category)) return bad('Illegal category');
    const m = FAKE_MARKETS.find((x) => x.base + x.quote === q.get('symbol'));
    if (!m) return bad('Not supported symbols');
    const interval = BYBIT_INTERVALS[q.get('interval') ?? ''];
    if (!interval) return bad('Invalid period!');
    const limit = Number(q.get('limit') ?? 200);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad('Invalid limit');
    const { first, last } = span('bybit', m, interval, now);
    const start = q.get('start');
    const end = q.get('end');
    // A start inside a bucket selects that bucket.
    const lo = start === null ? first : Math.max(first, bucketStart(Number(start), interval));
    const hi = end === null ? last : Math.min(last, bucketStart(Number(end), interval));
    const list = take(bucketTimes(lo, hi, interval, -1), limit).map((t) => {
      const c = gen.candle('bybit', m, interval, t, now);
      const p = (v: number) => trimmed(v, m.priceDecimals);
      return [String(t), p(c.open), p(c.high), p(c.low), p(c.close), trimmed(c.volume, 8),
        trimmed(rescale(BigInt(c.volume) * BigInt(c.close), 8 + m.priceDecimals, 8), 8)];
    });
    return json(200, { retCode: 0, retMsg: 'OK', result: { category, symbol: m.base + m.quote, list }, retExtInfo: {}, time: Math.floor(now) }, 'ok');
  }
  function bybitBan(): Answer {
    return { status: 403, body: 'Forbidden: access too frequent, IP rate limit exceeded', headers: { 'Content-Type': 'text/plain' }, outcome: 'banned' };
  }

  // ---------------------------------------------------------------- Coinbase
  function coinbaseRow(m: FakeMarket, interval: Interval, t: number, now: number): string {
    const c = gen.candle('coinbase', m, interval, t, now);
    const p = (v: number) => jsonNumber(v, m.priceDecimals);
    return `[${t / 1000},${p(c.low)},${p(c.high)},${p(c.open)},${p(c.close)},${jsonNumber(c.volume, 8)}]`;
  }
  function coinbase(path: string, q: URLSearchParams, now: number): Answer {
    if (enforce) {
      const admitted = limiters.coinbase.admit(now, 1);
      if (!admitted.ok) return json(429, { message: 'Public rate limit exceeded' }, 'rateLimited', { 'Retry-After': retryAfter(admitted.retryAfterMs) });
    }
    const product = decodeURIComponent(/^\/products\/([^/]+)\/candles$/.exec(path)?.[1] ?? '');
    const m = FAKE_MARKETS.find((x) => `${x.base}-${x.quote}` === product);
    if (!m) return json(404, { message: 'NotFound' }, 'errors');
    const interval = COINBASE_GRANULARITY[q.get('granularity') ?? ''];
    if (!interval) return json(400, { message: 'Unsupported granularity' }, 'errors');
    const step = INTERVAL_MS[interval];
    const { first, last } = span('coinbase', m, interval, now);
    const startText = q.get('start');
    const endText = q.get('end');
    let lo: number;
    let hi: number;
    if (startText !== null && endText !== null) {
      const start = Date.parse(startText);
      const end = Date.parse(endText);
      if (Number.isNaN(start) || Number.isNaN(end)) return json(400, { message: 'Invalid start or end' }, 'errors');
      if (start > end) return json(400, { message: 'start must be before end' }, 'errors');
      if ((end - start) / step > 300) {
        return json(400, { message: 'granularity too small for the requested time range. Count of aggregations requested exceeds 300' }, 'errors');
      }
      lo = Math.max(first, bucketStart(start, interval));
      hi = Math.min(last, bucketStart(end, interval));
    } else {
      hi = last;
      lo = Math.max(first, last - 299 * step);
    }
    const rows = take(bucketTimes(lo, hi, interval, -1, (t) => isHole('coinbase', m, interval, t)), 300)
      .map((t) => coinbaseRow(m, interval, t, now));
    return { status: 200, body: `[${rows.join(',')}]`, outcome: 'ok' };
  }

  // ---------------------------------------------------------------- Kraken
  function krakenRow(m: FakeMarket, interval: Interval, t: number, now: number): { row: unknown[]; closed: boolean; candle: Candle } {
    const d = krakenPriceDecimals(m);
    const down = (v: number) => rescale(v, m.priceDecimals, d);
    const c = gen.candle('kraken', m, interval, t, now);
    const flat = isHole('kraken', m, interval, t);
    const o = down(flat ? gen.level('kraken', m, t) : c.open);
    const [h, l, cl] = flat ? [o, o, o] : [down(c.high), down(c.low), down(c.close)];
    const vwap = flat ? o : (h + l + cl) / 3n;
    const volume = flat ? 0 : c.volume;
    const count = flat ? 0 : c.trades;
    const row = [t / 1000, fixed(o, d), fixed(h, d), fixed(l, d), fixed(cl, d), fixed(vwap, d), fixed(volume, 8), count];
    return {
      row,
      closed: c.closed,
      candle: { openTime: t, open: fixed(o, d), high: fixed(h, d), low: fixed(l, d), close: fixed(cl, d), volume: fixed(volume, 8), trades: count, closed: c.closed },
    };
  }
  function kraken(q: URLSearchParams, now: number): Answer {
    if (enforce && !limiters.kraken.admit(now, 1).ok) return json(200, { error: ['EGeneral:Too many requests'] }, 'rateLimited');
    const pair = q.get('pair') ?? '';
    const m = FAKE_MARKETS.find((x) => {
      const names = krakenNames(x);
      return names.altname === pair || names.key === pair;
    });
    if (!m) return json(200, { error: ['EQuery:Unknown asset pair'] }, 'errors');
    const interval = KRAKEN_INTERVALS[q.get('interval') ?? '1'];
    if (!interval) return json(200, { error: ['EGeneral:Invalid arguments'] }, 'errors');
    const step = INTERVAL_MS[interval];
    const { first, last } = span('kraken', m, interval, now);
    const since = q.get('since');
    // Only the newest 720 rows exist here, the forming one last, whatever `since` asks for.
    const lo = Math.max(first, last - (KRAKEN_ROWS - 1) * step, since === null ? 0 : bucketAtOrAfter(Number(since) * 1000 + 1, interval));
    const rows = [...bucketTimes(lo, last, interval, 1)].map((t) => krakenRow(m, interval, t, now).row);
    if (rows.length === 0) rows.push(krakenRow(m, interval, last, now).row);
    const body = `{"error":[],"result":{"${krakenNames(m).key}":${JSON.stringify(rows)},"last":${(last - step) / 1000}}}`;
    return { status: 200, body, outcome: 'ok' };
  }

  // ---------------------------------------------------------------- faults
  function fault(ex: Exchange, kind: FaultKind, o: FaultOptions, normal: () => Answer, now: number): Answer {
    const ra = { 'Retry-After': String(o.retryAfterSec ?? (kind === '418' ? 120 : 1)) };
    switch (kind) {
      case '429':
        switch (ex) {
          case 'binance': return { ...binance429((o.retryAfterSec ?? 1) * 1000, {}), headers: ra, outcome: 'faults' };
          case 'okx': return json(429, { msg: 'Too Many Requests', code: '50011' }, 'faults', o.retryAfterSec === undefined ? undefined : ra);
          case 'bybit': return json(200, { retCode: 10006, retMsg: 'Too many visits!', result: {}, retExtInfo: {}, time: Math.floor(now) }, 'faults',
            { 'X-Bapi-Limit-Reset-Timestamp': String(Math.floor(now + (o.retryAfterSec ?? 1) * 1000)) });
          case 'coinbase': return json(429, { message: 'Public rate limit exceeded' }, 'faults', ra);
          case 'kraken': return json(200, { error: ['EGeneral:Too many requests'] }, 'faults');
        }
        break;
      case '418':
        if (ex === 'bybit') return { ...bybitBan(), outcome: 'faults' };
        return json(ex === 'binance' ? 418 : 403, {
          code: -1003,
          msg: `Way too much request weight used; IP banned until ${Math.round(now + (o.retryAfterSec ?? 120) * 1000)}. Please use WebSocket Streams for live updates to avoid bans.`,
        }, 'faults', ra);
      case '500': {
        const bodies: Record<Exchange, unknown> = {
          binance: { code: -1000, msg: 'An unknown error occurred while processing the request.' },
          okx: { code: '50001', msg: 'Service temporarily unavailable. Please try again later.', data: [] },
          bybit: { retCode: 10016, retMsg: 'Internal server error.', result: {}, retExtInfo: {}, time: Math.floor(now) },
          coinbase: { message: 'Internal server error' },
          kraken: { error: ['EService:Unavailable'] },
        };
        return json(500, bodies[ex], 'faults');
      }
      case 'html': {
        const status = o.status ?? 502;
        return { status, body: HTML_PAGE(status), headers: { 'Content-Type': 'text/html; charset=UTF-8' }, outcome: 'faults' };
      }
      case 'truncated': {
        const answer = normal();
        return { ...answer, status: 200, body: answer.body.slice(0, Math.max(1, Math.floor(answer.body.length / 2))), outcome: 'faults' };
      }
    }
    throw new Error(`unhandled fault ${kind}`);
  }

  function route(ex: Exchange, path: string, q: URLSearchParams, now: number): Answer | undefined {
    switch (ex) {
      case 'binance': return path === '/api/v3/klines' ? binance(q, now) : undefined;
      case 'okx': return path === '/api/v5/market/candles' || path === '/api/v5/market/history-candles' ? okx(path, q, now) : undefined;
      case 'bybit': return path === '/v5/market/kline' ? bybit(q, now) : undefined;
      case 'coinbase': return /^\/products\/[^/]+\/candles$/.test(path) ? coinbase(path, q, now) : undefined;
      case 'kraken': return path === '/0/public/OHLC' ? kraken(q, now) : undefined;
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const [, first = '', ...rest] = url.pathname.split('/');
    const ex = EXCHANGES.find((e) => e === first);
    const now = clock();
    res.setHeader('Date', new Date(now).toUTCString());
    if (!ex || req.method !== 'GET') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const path = `/${rest.join('/')}`;
    const s = stats.get(ex) ?? emptyStats();
    s.requests += 1;
    const queue = faults.get(ex) ?? [];
    const next = queue[0];
    let answer: Answer | undefined;
    const normal = () => route(ex, path, url.searchParams, now) ?? { status: 404, body: '{"error":"no such endpoint"}', outcome: 'errors' as const };
    if (next) {
      next.options.count = (next.options.count ?? 1) - 1;
      if (next.options.count <= 0) queue.shift();
      answer = fault(ex, next.kind, next.options, normal, now);
      if (next.kind === '429') s.rateLimited += 1;
      if (next.kind === '418') s.banned += 1;
    } else {
      answer = normal();
    }
    s[answer.outcome] += 1;
    (logs.get(ex) ?? logs.set(ex, []).get(ex))?.push({ path, query: Object.fromEntries(url.searchParams), status: answer.status, at: now });
    res.writeHead(answer.status, { 'Content-Type': 'application/json;charset=UTF-8', ...answer.headers });
    res.end(answer.body);
  }

  const server = createServer(handle);
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  function expected(ex: Exchange, unified: string, interval: Interval, from: number, to: number): Candle[] {
    const m = FAKE_MARKETS.find((x) => x.unified === unified);
    if (!m) throw new Error(`the fake does not list ${unified}`);
    const now = clock();
    const step = INTERVAL_MS[interval];
    let { first, last } = span(ex, m, interval, now);
    if (ex === 'kraken') first = Math.max(first, last - (KRAKEN_ROWS - 1) * step);
    const lo = Math.max(first, bucketAtOrAfter(from, interval));
    const hi = Math.min(last, bucketStart(to, interval));
    const out: Candle[] = [];
    for (const t of bucketTimes(lo, hi, interval, 1)) {
      if (ex === 'kraken') {
        out.push(krakenRow(m, interval, t, now).candle);
        continue;
      }
      if (ex === 'coinbase' && isHole(ex, m, interval, t)) continue;
      const c = gen.candle(ex, m, interval, t, now);
      const quote = BigInt(c.volume) * BigInt(c.close);
      const base = { openTime: t, closed: c.closed };
      if (ex === 'binance') {
        const p = (v: number) => fixed(rescale(v, m.priceDecimals, 8), 8);
        out.push({ ...base, open: p(c.open), high: p(c.high), low: p(c.low), close: p(c.close), volume: fixed(c.volume, 8),
          quoteVolume: fixed(rescale(quote, 8 + m.priceDecimals, 8), 8), trades: c.trades });
      } else {
        const p = (v: number) => trimmed(v, m.priceDecimals);
        out.push({ ...base, open: p(c.open), high: p(c.high), low: p(c.low), close: p(c.close), volume: trimmed(c.volume, 8),
          ...(ex === 'coinbase' ? {} : { quoteVolume: trimmed(rescale(quote, 8 + m.priceDecimals, 8), 8) }) });
      }
    }
    return out;
  }

  return {
    origin,
    baseUrls: Object.fromEntries(EXCHANGES.map((e) => [e, `${origin}/${e}`])) as Record<Exchange, string>,
    timeScale,
    now: () => clock(),
    setClock(now) {
      clock = now;
    },
    inject(exchange, kind, faultOptions = {}) {
      const queue = faults.get(exchange) ?? [];
      queue.push({ kind, options: { ...faultOptions, count: faultOptions.count ?? 1 } });
      faults.set(exchange, queue);
    },
    stats: (exchange) => ({ ...(stats.get(exchange) ?? emptyStats()) }),
    requests: (exchange) => [...(logs.get(exchange) ?? [])],
    expected,
    reset() {
      for (const ex of EXCHANGES) stats.set(ex, emptyStats());
      faults.clear();
      logs.clear();
      for (const l of Object.values(limiters)) l.reset();
      Object.assign(state, { binanceBackoffUntil: 0, binanceAbuse: 0, binanceBannedUntil: 0, bybitBannedUntil: 0 });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
