import type { Candle } from '../../functions/candles/candle.ts';
import { bucketStart, type Interval } from '../../functions/candles/intervals.ts';
import { BYBIT_INSTRUMENTS_PATH, BYBIT_KLINE_PATH, BYBIT_TICKERS_PATH, bybit } from '../../functions/exchanges/bybit.ts';
import { SlidingWindow, publishedLimit } from './limits.ts';
import { FAKE_MARKETS, bucketTimes, fakeListings, take, trimmedText } from './series.ts';
import { json, type Answer, type Venue, type VenueContext } from './venue.ts';

const perIp = publishedLimit(bybit, 'bybit');
export const BYBIT_LIMITS = {
  /** Requests per 5 s, sliding; a breach answers 403 and bans for `banMs`. */
  bybit: { limit: perIp.limit, windowMs: perIp.windowMs, banMs: bybit.bans.defaultMs },
};

const INTERVALS: Record<string, Interval> = {
  '1': '1m', '3': '3m', '5': '5m', '15': '15m', '30': '30m', '60': '1h',
  '120': '2h', '240': '4h', '360': '6h', '720': '12h', D: '1d', W: '1w',
};

const BANNED: Answer = { status: 403, body: 'Forbidden: access too frequent, IP rate limit exceeded', headers: { 'Content-Type': 'text/plain' }, outcome: 'banned' };

export function bybitVenue(ctx: VenueContext, limits: (typeof BYBIT_LIMITS)['bybit']): Venue {
  const limiter = new SlidingWindow(limits.limit, limits.windowMs / ctx.timeScale);
  let bannedUntil = 0;
  const envelope = (retCode: number, retMsg: string, result: unknown, now: number) => ({ retCode, retMsg, result, retExtInfo: {}, time: Math.floor(now) });

  /** Every request draws on the one per-IP limit; a breach is a 403 and a ban. */
  function gate(now: number): Answer | undefined {
    if (!ctx.enforce) return undefined;
    if (now < bannedUntil) return BANNED;
    if (!limiter.admit(now, 1).ok) {
      bannedUntil = now + limits.banMs / ctx.timeScale;
      return BANNED;
    }
    return undefined;
  }

  /** GET /v5/market/instruments-info?category=spot: every spot instrument at once (spot has no paging). */
  function instruments(q: URLSearchParams, now: number): Answer {
    const refused = gate(now);
    if (refused) return refused;
    if (q.get('category') !== 'spot') return json(200, envelope(10001, 'params error: category only support spot here', {}, now), 'errors');
    const list = fakeListings('bybit').map(({ market: m, trading }) => ({
      symbol: m.base + m.quote, baseCoin: m.base, quoteCoin: m.quote, innovation: '0', status: trading ? 'Trading' : 'PreLaunch',
      marginTrading: 'none', stTag: '0',
      lotSizeFilter: { basePrecision: '0.000001', quotePrecision: '0.00000001', minOrderQty: '0.000048', maxOrderQty: '71.73956243', minOrderAmt: '1', maxOrderAmt: '2000000' },
      priceFilter: { tickSize: (10 ** -m.priceDecimals).toFixed(m.priceDecimals) },
      riskParameters: { priceLimitRatioX: '0.01', priceLimitRatioY: '0.02' },
    }));
    return json(200, envelope(0, 'OK', { category: 'spot', list, nextPageCursor: '' }, now), 'ok');
  }

  /** GET /v5/market/tickers?category=spot: every spot ticker; turnover24h is the quote volume. */
  function tickers(q: URLSearchParams, now: number): Answer {
    const refused = gate(now);
    if (refused) return refused;
    if (q.get('category') !== 'spot') return json(200, envelope(10001, 'params error: category only support spot here', {}, now), 'errors');
    const list = fakeListings('bybit').map(({ market: m, baseVolume, quoteVolume, last }) => ({
      symbol: m.base + m.quote, bid1Price: last, bid1Size: '1', ask1Price: last, ask1Size: '1', lastPrice: last, prevPrice24h: last,
      price24hPcnt: '0', highPrice24h: last, lowPrice24h: last, turnover24h: quoteVolume, volume24h: baseVolume, usdIndexPrice: last,
    }));
    return json(200, envelope(0, 'OK', { category: 'spot', list }, now), 'ok');
  }

  function kline(q: URLSearchParams, now: number): Answer {
    const refused = gate(now);
    if (refused) return refused;
    // Bybit answers parameter errors with HTTP 200 and a non-zero retCode.
    const bad = (msg: string) => json(200, envelope(10001, msg, {}, now), 'errors');
    const category = q.get('category') ?? 'linear';
    if (!['spot', 'linear', 'inverse'].includes(category)) return bad('Illegal category');
    const m = FAKE_MARKETS.find((x) => x.base + x.quote === q.get('symbol'));
    if (!m) return bad('Not supported symbols');
    const interval = INTERVALS[q.get('interval') ?? ''];
    if (!interval) return bad('Invalid period!');
    const limit = Number(q.get('limit') ?? 200);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad('Invalid limit');
    const { first, last } = ctx.span(m, interval, now);
    const start = q.get('start');
    const end = q.get('end');
    // A start inside a bucket selects that bucket.
    const lo = start === null ? first : Math.max(first, bucketStart(Number(start), interval));
    const hi = end === null ? last : Math.min(last, bucketStart(Number(end), interval));
    const list = take(bucketTimes(lo, hi, interval, -1), limit).map((t) => {
      const { open, high, low, close, volume, quoteVolume } = trimmedText(ctx.gen.candle('bybit', m, interval, t, now), m);
      return [String(t), open, high, low, close, volume, quoteVolume];
    });
    return json(200, envelope(0, 'OK', { category, symbol: m.base + m.quote, list }, now), 'ok');
  }

  return {
    answer(path, q, now) {
      if (path === BYBIT_KLINE_PATH) return kline(q, now);
      if (path === BYBIT_INSTRUMENTS_PATH) return instruments(q, now);
      if (path === BYBIT_TICKERS_PATH) return tickers(q, now);
      return undefined;
    },
    fault(kind, o, now) {
      if (kind === '429') {
        return json(200, envelope(10006, 'Too many visits!', {}, now), 'faults', {
          'X-Bapi-Limit-Reset-Timestamp': String(Math.floor(now + (o.retryAfterSec ?? 1) * 1000)),
        });
      }
      if (kind === '418') return { ...BANNED, outcome: 'faults' };
      return json(500, envelope(10016, 'Internal server error.', {}, now), 'faults');
    },
    expected(m, interval, t, now): Candle {
      const c = ctx.gen.candle('bybit', m, interval, t, now);
      return { openTime: t, closed: c.closed, ...trimmedText(c, m) };
    },
    reset() {
      limiter.reset();
      bannedUntil = 0;
    },
  };
}
