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

export interface PageResult {
  /** Ascending by openTime, unique, all inside [from, to]. */
  candles: Candle[];
  /**
   * The part of the range this page did not cover: merge it into the request for the next page
   * (`{ ...req, ...next }`). Absent when the range is exhausted. Ascending exchanges move `from`
   * forward, newest-first exchanges move `to` backward.
   */
  next?: { from?: number; to?: number } | undefined;
  /** Budget units the call cost at the exchange (request weight). */
  weight: number;
}

export interface FetchDeps {
  /** Usually the governor's fetch for this exchange, so budgets, bans and retries apply. */
  fetch: typeof fetch;
  baseUrl: string;
}

export interface ExchangeAdapter {
  readonly id: Exchange;
  supports(interval: Interval): boolean;
  /** Unified `BASE/QUOTE` to the exchange's own id; throws UnknownSymbolError for a malformed symbol. */
  nativeSymbol(unified: string): string;
  /** Most candles one call can return. */
  readonly maxPageSize: number;
  /** How far back the endpoint serves: all history, or only the newest `maxCandles` rows. */
  readonly historyDepth: 'full' | { maxCandles: number };
  fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult>;
}
