import type { Candle } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../functions/candles/intervals.ts';
import { COINBASE_PRODUCTS_PATH, coinbase } from '../../functions/exchanges/coinbase.ts';
import { TokenBucket, publishedLimit } from './limits.ts';
import { FAKE_MARKETS, bucketTimes, fakeListings, jsonNumber, take, trimmedText, type FakeMarket } from './series.ts';
import { faultRetryAfter, injectedBan, json, type Answer, type Venue, type VenueContext } from './venue.ts';

const perIp = publishedLimit(coinbase, 'coinbase');
export const COINBASE_LIMITS = {
  /** Token bucket. */
  coinbase: { burst: perIp.burst ?? perIp.limit, perSecond: (perIp.limit * 1000) / perIp.windowMs },
};

const GRANULARITY: Record<string, Interval> = { '60': '1m', '300': '5m', '900': '15m', '3600': '1h', '21600': '6h', '86400': '1d' };
const MAX_BUCKETS = 300;
const TOO_MANY = { message: 'Public rate limit exceeded' };

export function coinbaseVenue(ctx: VenueContext, limits: (typeof COINBASE_LIMITS)['coinbase']): Venue {
  const limiter = new TokenBucket(limits.burst, limits.perSecond, ctx.timeScale);

  function row(m: FakeMarket, interval: Interval, t: number, now: number): string {
    const c = ctx.gen.candle('coinbase', m, interval, t, now);
    const p = (v: number) => jsonNumber(v, m.priceDecimals);
    return `[${t / 1000},${p(c.low)},${p(c.high)},${p(c.open)},${p(c.close)},${jsonNumber(c.volume, 8)}]`;
  }

  function gate(now: number): Answer | undefined {
    if (!ctx.enforce) return undefined;
    const admitted = limiter.admit(now, 1);
    return admitted.ok ? undefined : json(429, TOO_MANY, 'rateLimited', { 'Retry-After': ctx.retryAfter(admitted.retryAfterMs) });
  }

  /** GET /products: every product with its status (delisted ones as `delisted`). */
  function products(now: number): Answer {
    const refused = gate(now);
    if (refused) return refused;
    const body = fakeListings('coinbase').map(({ market: m, trading }) => ({
      id: `${m.base}-${m.quote}`, base_currency: m.base, quote_currency: m.quote,
      quote_increment: (10 ** -m.priceDecimals).toFixed(m.priceDecimals), base_increment: '0.00000001', display_name: `${m.base}-${m.quote}`,
      min_market_funds: '1', margin_enabled: false, post_only: false, limit_only: false, cancel_only: false,
      status: trading ? 'online' : 'delisted', status_message: '', trading_disabled: !trading, fx_stablecoin: false,
      max_slippage_percentage: '0.02000000', auction_mode: false, high_bid_limit_percentage: '',
    }));
    return json(200, body, 'ok');
  }

  function candles(path: string, q: URLSearchParams, now: number): Answer {
    const refused = gate(now);
    if (refused) return refused;
    const product = decodeURIComponent(/^\/products\/([^/]+)\/candles$/.exec(path)?.[1] ?? '');
    const m = FAKE_MARKETS.find((x) => `${x.base}-${x.quote}` === product);
    if (!m) return json(404, { message: 'NotFound' }, 'errors');
    const interval = GRANULARITY[q.get('granularity') ?? ''];
    if (!interval) return json(400, { message: 'Unsupported granularity' }, 'errors');
    const step = INTERVAL_MS[interval];
    const { first, last } = ctx.span(m, interval, now);
    const startText = q.get('start');
    const endText = q.get('end');
    let lo: number;
    let hi: number;
    if (startText !== null && endText !== null) {
      const start = Date.parse(startText);
      const end = Date.parse(endText);
      if (Number.isNaN(start) || Number.isNaN(end)) return json(400, { message: 'Invalid start or end' }, 'errors');
      if (start > end) return json(400, { message: 'start must be before end' }, 'errors');
      if ((end - start) / step > MAX_BUCKETS) {
        return json(400, { message: `granularity too small for the requested time range. Count of aggregations requested exceeds ${MAX_BUCKETS}` }, 'errors');
      }
      lo = Math.max(first, bucketStart(start, interval));
      hi = Math.min(last, bucketStart(end, interval));
    } else {
      hi = last;
      lo = Math.max(first, last - (MAX_BUCKETS - 1) * step);
    }
    const rows = take(bucketTimes(lo, hi, interval, -1, (t) => ctx.isHole(m, interval, t)), MAX_BUCKETS).map((t) => row(m, interval, t, now));
    return { status: 200, body: `[${rows.join(',')}]`, outcome: 'ok' };
  }

  return {
    answer(path, q, now) {
      if (path === COINBASE_PRODUCTS_PATH) return products(now);
      return /^\/products\/[^/]+\/candles$/.test(path) ? candles(path, q, now) : undefined;
    },
    fault(kind, o, now) {
      if (kind === '429') return json(429, TOO_MANY, 'faults', faultRetryAfter(o, 1));
      if (kind === '418') return injectedBan(403, o, now);
      return json(500, { message: 'Internal server error' }, 'faults');
    },
    expected(m, interval, t, now): Candle | undefined {
      // Buckets without trades are missing from Coinbase's answers.
      if (ctx.isHole(m, interval, t)) return undefined;
      const c = ctx.gen.candle('coinbase', m, interval, t, now);
      const { quoteVolume: _, ...text } = trimmedText(c, m);
      return { openTime: t, closed: c.closed, ...text };
    },
    reset() {
      limiter.reset();
    },
  };
}
