import type { Candle } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../functions/candles/intervals.ts';
import { OKX_CANDLES_PATH, OKX_HISTORY_PATH, OKX_INSTRUMENTS_PATH, OKX_RECENT_ROWS, OKX_TICKERS_PATH, okx } from '../../functions/exchanges/okx.ts';
import { SlidingWindow, publishedLimit } from './limits.ts';
import { FAKE_MARKETS, bucketAtOrAfter, bucketTimes, fakeListings, take, trimmedText } from './series.ts';
import { faultRetryAfter, injectedBan, json, type Answer, type Venue, type VenueContext } from './venue.ts';

const candles = publishedLimit(okx, 'okx:candles');
const history = publishedLimit(okx, 'okx:history');
const instruments = publishedLimit(okx, 'okx:instruments');
const tickers = publishedLimit(okx, 'okx:tickers');
export const OKX_LIMITS = {
  okxCandles: { limit: candles.limit, windowMs: candles.windowMs },
  okxHistory: { limit: history.limit, windowMs: history.windowMs },
  okxInstruments: { limit: instruments.limit, windowMs: instruments.windowMs },
  okxTickers: { limit: tickers.limit, windowMs: tickers.windowMs },
};

const BARS: Record<string, Interval> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1H': '1h',
  '2H': '2h', '4H': '4h', '6Hutc': '6h', '12Hutc': '12h', '1Dutc': '1d', '1Wutc': '1w',
};

const TOO_MANY = { msg: 'Too Many Requests', code: '50011' };

export function okxVenue(ctx: VenueContext, limits: typeof OKX_LIMITS): Venue {
  const limiters = {
    candles: new SlidingWindow(limits.okxCandles.limit, limits.okxCandles.windowMs / ctx.timeScale),
    history: new SlidingWindow(limits.okxHistory.limit, limits.okxHistory.windowMs / ctx.timeScale),
    instruments: new SlidingWindow(limits.okxInstruments.limit, limits.okxInstruments.windowMs / ctx.timeScale),
    tickers: new SlidingWindow(limits.okxTickers.limit, limits.okxTickers.windowMs / ctx.timeScale),
  };

  /** GET /api/v5/public/instruments?instType=SPOT: every spot instrument with its state. */
  function spotInstruments(q: URLSearchParams, now: number): Answer {
    if (ctx.enforce && !limiters.instruments.admit(now, 1).ok) return json(429, TOO_MANY, 'rateLimited');
    if (q.get('instType') !== 'SPOT') return json(200, { code: '51000', msg: 'Parameter instType error', data: [] }, 'errors');
    const data = fakeListings('okx').map(({ market: m, trading }) => ({
      alias: '', auctionEndTime: '', baseCcy: m.base, category: '1', ctMult: '', ctType: '', ctVal: '', ctValCcy: '', expTime: '',
      instFamily: '', instId: `${m.base}-${m.quote}`, instType: 'SPOT', lever: '', listTime: '1606468572000', lotSz: '0.00000001',
      maxIcebergSz: '9999999999.0000000000000000', maxLmtAmt: '1000000', maxLmtSz: '9999999999', maxMktAmt: '1000000', maxMktSz: '',
      maxStopSz: '', maxTriggerSz: '9999999999.0000000000000000', maxTwapSz: '9999999999.0000000000000000', minSz: '0.00001',
      optType: '', quoteCcy: m.quote, ruleType: 'normal', settleCcy: '', state: trading ? 'live' : 'suspend', stk: '',
      tickSz: (10 ** -m.priceDecimals).toFixed(m.priceDecimals), uly: '',
    }));
    return json(200, { code: '0', msg: '', data }, 'ok');
  }

  /** GET /api/v5/market/tickers?instType=SPOT: every spot ticker; volCcy24h is the quote volume. */
  function spotTickers(q: URLSearchParams, now: number): Answer {
    if (ctx.enforce && !limiters.tickers.admit(now, 1).ok) return json(429, TOO_MANY, 'rateLimited');
    if (q.get('instType') !== 'SPOT') return json(200, { code: '51000', msg: 'Parameter instType error', data: [] }, 'errors');
    const ts = String(Math.floor(now));
    const data = fakeListings('okx').map(({ market: m, baseVolume, quoteVolume, last }) => ({
      instType: 'SPOT', instId: `${m.base}-${m.quote}`, last, lastSz: '0.1', askPx: last, askSz: '1', bidPx: last, bidSz: '1',
      open24h: last, high24h: last, low24h: last, volCcy24h: quoteVolume, vol24h: baseVolume, ts, sodUtc0: last, sodUtc8: last,
    }));
    return json(200, { code: '0', msg: '', data }, 'ok');
  }

  function marketCandles(path: string, q: URLSearchParams, now: number): Answer {
    const fromHistory = path.endsWith('/history-candles');
    if (ctx.enforce && !(fromHistory ? limiters.history : limiters.candles).admit(now, 1).ok) return json(429, TOO_MANY, 'rateLimited');
    // OKX reports parameter errors with HTTP 200 and a non-zero code.
    const bad = (code: string, msg: string) => json(200, { code, msg, data: [] }, 'errors');
    const m = FAKE_MARKETS.find((x) => `${x.base}-${x.quote}` === q.get('instId'));
    if (!m) return bad('51001', "Instrument ID doesn't exist.");
    const interval = BARS[q.get('bar') ?? '1m'];
    if (!interval) return bad('51000', 'Parameter bar error');
    const limit = Number(q.get('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 300) return bad('51000', 'Parameter limit error');
    const step = INTERVAL_MS[interval];
    const { first, last } = ctx.span(m, interval, now);
    const lo = Math.max(first, fromHistory ? first : last - (OKX_RECENT_ROWS - 1) * step);
    const after = q.get('after');
    const before = q.get('before');
    const hi = after === null ? last : Math.min(last, bucketStart(Number(after) - 1, interval));
    const floor = before === null ? lo : Math.max(lo, bucketAtOrAfter(Number(before) + 1, interval));
    const rows = take(bucketTimes(floor, hi, interval, -1), limit).map((t) => {
      const c = ctx.gen.candle('okx', m, interval, t, now);
      const { open, high, low, close, volume, quoteVolume } = trimmedText(c, m);
      return [String(t), open, high, low, close, volume, quoteVolume, quoteVolume, c.closed ? '1' : '0'];
    });
    return json(200, { code: '0', msg: '', data: rows }, 'ok');
  }

  return {
    answer(path, q, now) {
      if (path === OKX_CANDLES_PATH || path === OKX_HISTORY_PATH) return marketCandles(path, q, now);
      if (path === OKX_INSTRUMENTS_PATH) return spotInstruments(q, now);
      if (path === OKX_TICKERS_PATH) return spotTickers(q, now);
      return undefined;
    },
    fault(kind, o, now) {
      if (kind === '429') return json(429, TOO_MANY, 'faults', o.retryAfterSec === undefined ? undefined : faultRetryAfter(o, 1));
      if (kind === '418') return injectedBan(403, o, now);
      return json(500, { code: '50001', msg: 'Service temporarily unavailable. Please try again later.', data: [] }, 'faults');
    },
    expected(m, interval, t, now): Candle {
      const c = ctx.gen.candle('okx', m, interval, t, now);
      return { openTime: t, closed: c.closed, ...trimmedText(c, m) };
    },
    reset() {
      for (const l of Object.values(limiters)) l.reset();
    },
  };
}
