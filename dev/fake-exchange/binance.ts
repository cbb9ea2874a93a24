import type { Candle } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../functions/candles/intervals.ts';
import { BINANCE_EXCHANGE_INFO_PATH, BINANCE_KLINES_PATH, BINANCE_TICKER_PATH, binance } from '../../functions/exchanges/binance.ts';
import { FixedWindow, publishedLimit } from './limits.ts';
import { FAKE_MARKETS, bucketAtOrAfter, bucketTimes, fakeListings, fixed, rescale, take, type FakeMarket, type RawCandle } from './series.ts';
import { banMessage, faultRetryAfter, injectedBan, json, type Answer, type Venue, type VenueContext } from './venue.ts';

const weight = publishedLimit(binance, 'binance');
export const BINANCE_LIMITS = {
  /** Weight per minute, fixed window; klines weight 2; `banAfter` requests during a 429 back-off earn a 418 ban. */
  binance: {
    weightPerWindow: weight.limit,
    windowMs: weight.windowMs,
    klinesWeight: binance.limits.route(new URL(BINANCE_KLINES_PATH, binance.baseUrl)).weight,
    banAfter: 3,
    banMs: binance.bans.defaultMs,
  },
};

/** The published weight of a listing call, as the adapter declares it. */
const listingWeight = (path: string) => binance.limits.route(new URL(path, binance.baseUrl)).weight;

const INTERVALS: Record<string, Interval> = {
  '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1h',
  '2h': '2h', '4h': '4h', '6h': '6h', '12h': '12h', '1d': '1d', '1w': '1w',
};

/** Binance prints every price and volume with 8 decimals. */
function text(m: FakeMarket, c: RawCandle) {
  const p = (v: number) => fixed(rescale(v, m.priceDecimals, 8), 8);
  const quote = BigInt(c.volume) * BigInt(c.close);
  const taker = BigInt(Math.floor(c.volume * 0.45));
  return {
    open: p(c.open), high: p(c.high), low: p(c.low), close: p(c.close), volume: fixed(c.volume, 8),
    quoteVolume: fixed(rescale(quote, 8 + m.priceDecimals, 8), 8),
    takerBase: fixed(taker, 8), takerQuote: fixed(rescale(taker * BigInt(c.close), 8 + m.priceDecimals, 8), 8),
  };
}

export function binanceVenue(ctx: VenueContext, limits: (typeof BINANCE_LIMITS)['binance']): Venue {
  const limiter = new FixedWindow(limits.weightPerWindow, limits.windowMs / ctx.timeScale);
  const state = { backoffUntil: 0, abuse: 0, bannedUntil: 0 };

  function row(m: FakeMarket, interval: Interval, c: RawCandle): string {
    const t = text(m, c);
    return `[${c.openTime},"${t.open}","${t.high}","${t.low}","${t.close}","${t.volume}",${c.openTime + INTERVAL_MS[interval] - 1},` +
      `"${t.quoteVolume}",${c.trades},"${t.takerBase}","${t.takerQuote}","0"]`;
  }
  function tooMuch(ms: number, headers: Record<string, string>): Answer {
    return json(429, {
      code: -1003,
      msg: `Too much request weight used; current limit is ${limits.weightPerWindow} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`,
    }, 'rateLimited', { ...headers, 'Retry-After': ctx.retryAfter(ms) });
  }
  function banned(now: number, headers: Record<string, string>): Answer {
    return json(418, { code: -1003, msg: banMessage(state.bannedUntil) }, 'banned', { ...headers, 'Retry-After': ctx.retryAfter(state.bannedUntil - now) });
  }

  // Without limits there is no usage to report (and a frozen clock would never reset it).
  const weightHeaderAt = (now: number): Record<string, string> => (ctx.enforce ? { 'X-MBX-USED-WEIGHT-1M': String(limiter.usedAt(now)) } : {});

  /** Admits a request of this weight, or answers as Binance does: 429 with Retry-After, a 418 for continued abuse. */
  function gate(now: number, cost: number): Answer | undefined {
    if (!ctx.enforce) return undefined;
    if (now < state.bannedUntil) return banned(now, weightHeaderAt(now));
    if (now < state.backoffUntil) {
      state.abuse += 1;
      if (state.abuse >= limits.banAfter) {
        state.bannedUntil = now + limits.banMs / ctx.timeScale;
        return banned(now, weightHeaderAt(now));
      }
      return tooMuch(state.backoffUntil - now, weightHeaderAt(now));
    }
    const admitted = limiter.admit(now, cost);
    if (!admitted.ok) {
      state.backoffUntil = now + admitted.retryAfterMs;
      state.abuse = 0;
      return tooMuch(admitted.retryAfterMs, weightHeaderAt(now));
    }
    return undefined;
  }

  /** GET /api/v3/exchangeInfo (weight 20): every symbol with its status, assets and filters. */
  function exchangeInfo(now: number): Answer {
    const refused = gate(now, listingWeight(BINANCE_EXCHANGE_INFO_PATH));
    if (refused) return refused;
    const symbols = fakeListings('binance').map(({ market: m, trading }) => ({
      symbol: m.base + m.quote,
      status: trading ? 'TRADING' : 'BREAK',
      baseAsset: m.base,
      baseAssetPrecision: 8,
      quoteAsset: m.quote,
      quotePrecision: 8,
      quoteAssetPrecision: 8,
      baseCommissionPrecision: 8,
      quoteCommissionPrecision: 8,
      orderTypes: ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS_LIMIT', 'TAKE_PROFIT_LIMIT'],
      icebergAllowed: true,
      ocoAllowed: true,
      otoAllowed: true,
      quoteOrderQtyMarketAllowed: true,
      allowTrailingStop: true,
      cancelReplaceAllowed: true,
      isSpotTradingAllowed: true,
      isMarginTradingAllowed: false,
      filters: [
        { filterType: 'PRICE_FILTER', minPrice: fixed(1, m.priceDecimals), maxPrice: '1000000.00000000', tickSize: fixed(1, m.priceDecimals) },
        { filterType: 'LOT_SIZE', minQty: '0.00001000', maxQty: '9000.00000000', stepSize: '0.00001000' },
      ],
      permissions: [],
      permissionSets: [['SPOT']],
      defaultSelfTradePreventionMode: 'EXPIRE_MAKER',
      allowedSelfTradePreventionModes: ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
    }));
    const body = {
      timezone: 'UTC',
      serverTime: Math.floor(now),
      rateLimits: [
        { rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: limits.weightPerWindow },
        { rateLimitType: 'ORDERS', interval: 'SECOND', intervalNum: 10, limit: 100 },
        { rateLimitType: 'RAW_REQUESTS', interval: 'MINUTE', intervalNum: 5, limit: 61000 },
      ],
      exchangeFilters: [],
      symbols,
    };
    return { ...json(200, body, 'ok'), headers: weightHeaderAt(now) };
  }

  /** GET /api/v3/ticker/24hr without a symbol (weight 80): every symbol's rolling 24h statistics. */
  function tickers(q: URLSearchParams, now: number): Answer {
    const refused = gate(now, listingWeight(BINANCE_TICKER_PATH));
    if (refused) return refused;
    const closeTime = Math.floor(now);
    const rows = fakeListings('binance').map(({ market: m, baseVolume, quoteVolume, last }, i) => ({
      symbol: m.base + m.quote,
      ...(q.get('type') === 'MINI' ? {} : { priceChange: '0.00000000', priceChangePercent: '0.000', weightedAvgPrice: last, prevClosePrice: last, lastQty: '1.00000000', bidPrice: last, bidQty: '1.00000000', askPrice: last, askQty: '1.00000000' }),
      openPrice: last,
      highPrice: last,
      lowPrice: last,
      lastPrice: last,
      volume: baseVolume,
      quoteVolume,
      openTime: closeTime - 86_400_000,
      closeTime,
      firstId: 1000 * i,
      lastId: 1000 * i + 999,
      count: 1000,
    }));
    return { ...json(200, rows, 'ok'), headers: weightHeaderAt(now) };
  }

  function klines(q: URLSearchParams, now: number): Answer {
    const weightHeader = () => weightHeaderAt(now);
    const refused = gate(now, limits.klinesWeight);
    if (refused) return refused;
    const bad = (code: number, msg: string) => json(400, { code, msg }, 'errors', weightHeader());
    const symbol = q.get('symbol');
    if (!symbol) return bad(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
    const m = FAKE_MARKETS.find((x) => x.base + x.quote === symbol);
    if (!m) return bad(-1121, 'Invalid symbol.');
    const interval = INTERVALS[q.get('interval') ?? ''];
    if (!interval) return bad(-1120, 'Invalid interval.');
    const limit = Number(q.get('limit') ?? 500);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return bad(-1130, "Invalid data sent for a parameter 'limit'.");
    const { first, last } = ctx.span(m, interval, now);
    const start = q.get('startTime');
    const end = q.get('endTime');
    const hi = end === null ? last : Math.min(last, bucketStart(Number(end), interval));
    // startTime → oldest rows from there; otherwise the newest rows up to endTime (or now).
    const times =
      start !== null
        ? take(bucketTimes(Math.max(first, bucketAtOrAfter(Number(start), interval)), hi, interval, 1), limit)
        : take(bucketTimes(first, hi, interval, -1), limit).reverse();
    const rows = times.map((t) => row(m, interval, ctx.gen.candle('binance', m, interval, t, now)));
    return { status: 200, body: `[${rows.join(',')}]`, headers: weightHeader(), outcome: 'ok' };
  }

  return {
    answer(path, q, now) {
      if (path === BINANCE_KLINES_PATH) return klines(q, now);
      if (path === BINANCE_EXCHANGE_INFO_PATH) return exchangeInfo(now);
      // Without a symbol: every symbol's ticker.
      if (path === BINANCE_TICKER_PATH && !q.has('symbol')) return tickers(q, now);
      return undefined;
    },
    fault(kind, o, now) {
      if (kind === '429') return { ...tooMuch((o.retryAfterSec ?? 1) * 1000, {}), headers: faultRetryAfter(o, 1), outcome: 'faults' };
      if (kind === '418') return injectedBan(418, o, now);
      return json(500, { code: -1000, msg: 'An unknown error occurred while processing the request.' }, 'faults');
    },
    expected(m, interval, t, now): Candle {
      const c = ctx.gen.candle('binance', m, interval, t, now);
      const { open, high, low, close, volume, quoteVolume, takerBase, takerQuote } = text(m, c);
      return { openTime: t, closed: c.closed, open, high, low, close, volume, quoteVolume, trades: c.trades, takerBuyVolume: takerBase, takerBuyQuoteVolume: takerQuote };
    },
    reset() {
      limiter.reset();
      Object.assign(state, { backoffUntil: 0, abuse: 0, bannedUntil: 0 });
    },
  };
}
