import type { Candle, Exchange } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';

/**
 * One page request. `from`/`to` bound candle open times (UTC ms, both inclusive); `now` is the
 * caller's clock, used to tell a still-forming candle from a closed one.
 */
export interface PageRequest {
  symbol: string;
  interval: Interval;
  from: number;
  to: number;
  now: number;
}

/**
 * The part of a range a page did not cover: merge it into the request for the next page
 * (`{ ...req, ...next }`). Ascending exchanges move `from` forward, newest-first exchanges move
 * `to` backward.
 */
export type PageCursor = { from?: number; to?: number } | undefined;

export interface PageResult {
  /** Ascending by openTime, unique, all inside [from, to]. */
  candles: Candle[];
  /** Absent when the range is exhausted. */
  next?: PageCursor;
  /** Budget units the call cost at the exchange (request weight). */
  weight: number;
}

export interface FetchDeps {
  /** Usually the governor's fetch for this exchange, so budgets, bans and retries apply. */
  fetch: typeof fetch;
  baseUrl: string;
}

/** At most `limit` weight in any `windowMs`-long sliding window. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

/** A limit as the exchange publishes it; `burst` is what it tolerates at once above the sustained rate. */
export interface PublishedLimit extends RateRule {
  burst?: number;
}

/** The exchange's published request limits for its kline endpoints (per IP). */
export interface ExchangeLimits {
  /** Budget buckets by key (`binance`, `okx:history`…); keys are unique across exchanges. */
  buckets: Readonly<Record<string, PublishedLimit>>;
  /** Which bucket a request draws on and what it costs. */
  route(url: URL): { key: string; weight: number };
  /** Header carrying the exchange's own count of weight used in the current window of bucket `key`. */
  usageHeader?: { name: string; key: string } | undefined;
  /** Rate-limit answers that come with HTTP 200 (Kraken, Bybit per-UID). */
  bodyRateLimited?: ((text: string) => boolean) | undefined;
}

/** How the exchange punishes and paces callers. */
export interface BanPolicy {
  /** Statuses that mean "this IP is banned" rather than "slow down". */
  statuses: readonly number[];
  /** Ban length when the answer does not say. */
  defaultMs: number;
  /** Wait after a rate-limit answer that carries no Retry-After. */
  rateLimitedMs: number;
}

/** One spot market an exchange lists, as its instrument list describes it. */
export interface Instrument {
  /** Unified `BASE/QUOTE`, in candlekeep's asset names (Kraken's XBT is BTC). */
  symbol: string;
  /** The exchange's own id (`BTCUSDT`, `BTC-USDT`, `XBTUSD`). */
  native: string;
  /** The name its volume listing reports it under: the native id, except Kraken's pair key (`XXBTZUSD`). */
  key: string;
  base: string;
  quote: string;
  /** Open for trading now (Binance TRADING, OKX live, Bybit Trading, Coinbase online, Kraken online). */
  trading: boolean;
  /** The exchange's status word as sent, for people. */
  status: string;
}

/** 24h traded volume in the quote currency, by native id: what "top N by volume" ranks on. */
export type QuoteVolumes = Map<string, number>;

export interface ExchangeAdapter {
  readonly id: Exchange;
  /** The public REST host. */
  readonly baseUrl: string;
  readonly limits: ExchangeLimits;
  readonly bans: BanPolicy;
  /** candlekeep's intervals this exchange offers, under the exchange's own names. */
  readonly intervals: Readonly<Partial<Record<Interval, string | number>>>;
  supports(interval: Interval): boolean;
  /** Unified `BASE/QUOTE` to the exchange's own id; throws UnknownSymbolError for a malformed symbol. */
  nativeSymbol(unified: string): string;
  /** Most candles one call can return. */
  readonly maxPageSize: number;
  /** How far back the endpoint serves: all history, or only the newest `maxCandles` rows. */
  readonly historyDepth: 'full' | { maxCandles: number };
  fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult>;
  /** Every spot instrument the exchange lists (one call). */
  instruments(deps: FetchDeps, now: number): Promise<Instrument[]>;
  /** 24h quote volume of every spot instrument in one call; undefined when the exchange publishes none. */
  readonly quoteVolumes: ((deps: FetchDeps, now: number) => Promise<QuoteVolumes>) | undefined;
}
