import type { Candle } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../../functions/candles/intervals.ts';
import { KRAKEN_ASSET_PAIRS_PATH, KRAKEN_MAX_ROWS, KRAKEN_OHLC_PATH, KRAKEN_TICKER_PATH, kraken } from '../../functions/exchanges/kraken.ts';
import { SlidingWindow, publishedLimit } from './limits.ts';
import { FAKE_MARKETS, bucketAtOrAfter, bucketTimes, fakeListings, fixed, rescale, type FakeMarket } from './series.ts';
import { injectedBan, json, type Answer, type Venue, type VenueContext } from './venue.ts';

const perIp = publishedLimit(kraken, 'kraken');
export const KRAKEN_LIMITS = {
  kraken: { limit: perIp.limit, windowMs: perIp.windowMs },
};

// Kraken serves weeks too; candlekeep's adapter leaves them out.
const INTERVALS: Record<string, Interval> = { '1': '1m', '5': '5m', '15': '15m', '30': '30m', '60': '1h', '240': '4h', '1440': '1d', '10080': '1w' };

const ASSET: Record<string, string> = { BTC: 'XBT', DOGE: 'XDG' };
const CLASSIC = new Set(['XBT', 'ETH', 'LTC', 'XRP', 'XLM', 'ETC', 'XMR', 'ZEC', 'XDG']);
const FIAT = new Set(['USD', 'EUR', 'GBP', 'JPY', 'CAD']);

/** The pair's request name and the (older, X/Z-prefixed) key Kraken answers under. */
function names(m: FakeMarket): { altname: string; key: string } {
  const b = ASSET[m.base] ?? m.base;
  const q = ASSET[m.quote] ?? m.quote;
  return { altname: b + q, key: CLASSIC.has(b) && FIAT.has(q) ? `X${b}Z${q}` : b + q };
}
const priceDecimals = (m: FakeMarket) => (m.base === 'BTC' ? 1 : m.priceDecimals);
const TOO_MANY = { error: ['EGeneral:Too many requests'] };

export function krakenVenue(ctx: VenueContext, limits: (typeof KRAKEN_LIMITS)['kraken']): Venue {
  const limiter = new SlidingWindow(limits.limit, limits.windowMs / ctx.timeScale);

  /** One row; buckets without trades are flat candles with count 0. */
  function row(m: FakeMarket, interval: Interval, t: number, now: number): { row: unknown[]; candle: Candle } {
    const d = priceDecimals(m);
    const down = (v: number) => rescale(v, m.priceDecimals, d);
    const c = ctx.gen.candle('kraken', m, interval, t, now);
    const flat = ctx.isHole(m, interval, t);
    const o = down(flat ? ctx.gen.level('kraken', m, t) : c.open);
    const [h, l, cl] = flat ? [o, o, o] : [down(c.high), down(c.low), down(c.close)];
    const vwap = flat ? o : (h + l + cl) / 3n;
    const volume = flat ? 0 : c.volume;
    const count = flat ? 0 : c.trades;
    return {
      row: [t / 1000, fixed(o, d), fixed(h, d), fixed(l, d), fixed(cl, d), fixed(vwap, d), fixed(volume, 8), count],
      candle: { openTime: t, open: fixed(o, d), high: fixed(h, d), low: fixed(l, d), close: fixed(cl, d), volume: fixed(volume, 8), trades: count, closed: c.closed, vwap: fixed(vwap, d) },
    };
  }

  /** Kraken's own asset code: X-prefixed classics, Z-prefixed fiat, the rest as they are. */
  const assetCode = (a: string) => {
    const k = ASSET[a] ?? a;
    return CLASSIC.has(k) ? `X${k}` : FIAT.has(k) ? `Z${k}` : k;
  };

  /** GET /0/public/AssetPairs: every pair under its key, with altname (the request name) and wsname (BASE/QUOTE). */
  function assetPairs(now: number): Answer {
    if (ctx.enforce && !limiter.admit(now, 1).ok) return json(200, TOO_MANY, 'rateLimited');
    const result: Record<string, unknown> = {};
    for (const { market: m, trading } of fakeListings('kraken')) {
      const { altname, key } = names(m);
      const b = ASSET[m.base] ?? m.base;
      const q = ASSET[m.quote] ?? m.quote;
      result[key] = {
        altname, wsname: `${b}/${q}`, aclass_base: 'currency', base: assetCode(m.base), aclass_quote: 'currency', quote: assetCode(m.quote),
        lot: 'unit', cost_decimals: 5, pair_decimals: priceDecimals(m), lot_decimals: 8, lot_multiplier: 1, leverage_buy: [], leverage_sell: [],
        fees: [[0, 0.4], [10000, 0.35], [50000, 0.24]], fees_maker: [[0, 0.25], [10000, 0.2], [50000, 0.14]], fee_volume_currency: 'ZUSD',
        margin_call: 80, margin_stop: 40, ordermin: '0.0001', costmin: '0.5', tick_size: fixed(1, priceDecimals(m)),
        status: trading ? 'online' : 'cancel_only',
      };
    }
    return json(200, { error: [], result }, 'ok');
  }

  /** GET /0/public/Ticker without a pair: every pair's ticker under its key (v: volume today/24h, p: VWAP today/24h). */
  function ticker(now: number): Answer {
    if (ctx.enforce && !limiter.admit(now, 1).ok) return json(200, TOO_MANY, 'rateLimited');
    const result: Record<string, unknown> = {};
    for (const { market: m, baseVolume, last } of fakeListings('kraken')) {
      result[names(m).key] = {
        a: [last, '1', '1.000'], b: [last, '1', '1.000'], c: [last, '0.00100000'], v: [baseVolume, baseVolume], p: [last, last],
        t: [1000, 1000], l: [last, last], h: [last, last], o: last,
      };
    }
    return json(200, { error: [], result }, 'ok');
  }

  function ohlc(q: URLSearchParams, now: number): Answer {
    if (ctx.enforce && !limiter.admit(now, 1).ok) return json(200, TOO_MANY, 'rateLimited');
    const pair = q.get('pair') ?? '';
    const m = FAKE_MARKETS.find((x) => names(x).altname === pair || names(x).key === pair);
    if (!m) return json(200, { error: ['EQuery:Unknown asset pair'] }, 'errors');
    const interval = INTERVALS[q.get('interval') ?? '1'];
    if (!interval) return json(200, { error: ['EGeneral:Invalid arguments'] }, 'errors');
    const step = INTERVAL_MS[interval];
    const { first, last } = ctx.span(m, interval, now);
    const since = q.get('since');
    // Only the newest rows exist here, the forming one last, whatever `since` asks for.
    const lo = Math.max(first, last - (KRAKEN_MAX_ROWS - 1) * step, since === null ? 0 : bucketAtOrAfter(Number(since) * 1000 + 1, interval));
    const rows = [...bucketTimes(lo, last, interval, 1)].map((t) => row(m, interval, t, now).row);
    if (rows.length === 0) rows.push(row(m, interval, last, now).row);
    const body = `{"error":[],"result":{"${names(m).key}":${JSON.stringify(rows)},"last":${(last - step) / 1000}}}`;
    return { status: 200, body, outcome: 'ok' };
  }

  return {
    answer(path, q, now) {
      if (path === KRAKEN_OHLC_PATH) return ohlc(q, now);
      if (path === KRAKEN_ASSET_PAIRS_PATH) return assetPairs(now);
      // Without a pair: every tradeable pair.
      if (path === KRAKEN_TICKER_PATH && !q.has('pair')) return ticker(now);
      return undefined;
    },
    fault(kind, o, now) {
      if (kind === '429') return json(200, TOO_MANY, 'faults');
      if (kind === '418') return injectedBan(403, o, now);
      return json(500, { error: ['EService:Unavailable'] }, 'faults');
    },
    expected: (m, interval, t, now) => row(m, interval, t, now).candle,
    servedRows: KRAKEN_MAX_ROWS,
    reset() {
      limiter.reset();
    },
  };
}
