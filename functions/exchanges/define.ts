import type { Candle, Exchange } from '../candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import type { ExchangeError } from './errors.ts';
import {
  finishCandles,
  isEmptyRange,
  nativeInterval,
  parseJson,
  readResponse,
  unifiedParts,
  withQuery,
  type RawResponse,
} from './normalise.ts';
import type { BanPolicy, ExchangeAdapter, ExchangeLimits, FetchDeps, Instrument, PageCursor, PageRequest, PageResult, QuoteVolumes } from './types.ts';

/** What a page call knows before it asks: the request, and the symbol and interval under the exchange's names. */
export interface PageContext<N> {
  req: PageRequest;
  interval: N;
  symbol: string;
  /** The interval's length in ms. */
  step: number;
}

export interface PageCall {
  path: string;
  query: Record<string, string | number | undefined>;
  /** Where the next page starts, for an exchange paged by time windows rather than by the rows it returns. */
  next?: PageCursor;
}

/** A listing call: where it is, and how its body reads (the body already checked for the exchange's error envelope). */
export interface ListingCall<T> {
  path: string;
  query?: Record<string, string>;
  parse(body: unknown, raw: RawResponse): T;
}

/**
 * Everything an exchange declares about itself, in one place: where it lives, how much one call
 * returns, its published limits and ban policy, its intervals and symbols, and how to ask for and
 * read one page. `defineExchange` turns it into an adapter; the governor reads `limits` and `bans`.
 */
export interface ExchangeSpec<N extends string | number> {
  id: Exchange;
  baseUrl: string;
  pageSize: number;
  historyDepth: ExchangeAdapter['historyDepth'];
  limits: ExchangeLimits;
  bans: BanPolicy;
  intervals: Readonly<Partial<Record<Interval, N>>>;
  symbol(parts: { base: string; quote: string }): string;
  /** Read every JSON number as its source text (for exchanges that send prices as numbers). */
  numbersAsText?: boolean;
  /** The call for one page; undefined when no candle of the range can exist yet. */
  request(page: PageContext<N>): PageCall | undefined;
  /** True for an HTTP 200 body that is an error in the exchange's envelope. */
  failed?(body: unknown): boolean;
  /** The candles of a data answer, and where the next page starts when the rows decide it. */
  parse(body: unknown, raw: RawResponse, page: PageContext<N>): { candles: Candle[]; next?: PageCursor };
  /** An error answer as a typed error. */
  error(raw: RawResponse, req: Pick<PageRequest, 'symbol' | 'interval' | 'now'>): ExchangeError;
  /** The spot instrument list (Binance exchangeInfo, OKX instruments, ...). */
  instruments: ListingCall<Instrument[]>;
  /** 24h quote volumes of every spot instrument in one call, when the exchange publishes them. */
  quoteVolumes?: ListingCall<QuoteVolumes>;
}

const nothing = (): PageResult => ({ candles: [], weight: 0 });

/** Candlekeep's symbol rule: instruments whose names it cannot carry (lower case, dots, long names) are left out. */
const UNIFIED_RE = /^[A-Z0-9]{1,20}\/[A-Z0-9]{1,20}$/;

/**
 * The entry of a table keyed by API path that a request's path ends with. A base URL may carry a
 * path of its own (a proxy, the fake exchange's `/okx` prefix), so a limit rule keyed by the exact
 * pathname would silently miss and charge the request to the wrong bucket or weight.
 */
export function byPathSuffix<T>(table: Readonly<Record<string, T>>, pathname: string): T | undefined {
  for (const [path, value] of Object.entries(table)) if (pathname.endsWith(path)) return value;
  return undefined;
}

export function defineExchange<N extends string | number>(spec: ExchangeSpec<N>): ExchangeAdapter {
  async function listing<T>(call: ListingCall<T>, deps: FetchDeps, now: number): Promise<T> {
    const url = withQuery(deps.baseUrl, call.path, call.query ?? {});
    const raw = await readResponse(spec.id, await deps.fetch(url));
    // Errors are read as a page's are; no symbol or interval was asked for.
    const req = { symbol: '*', interval: '1m' as const, now };
    if (raw.status !== 200) throw spec.error(raw, req);
    const body = parseJson(spec.id, raw, { numbersAsText: false });
    if (spec.failed?.(body)) throw spec.error(raw, req);
    return call.parse(body, raw);
  }

  const volumes = spec.quoteVolumes;
  const adapter: ExchangeAdapter = {
    id: spec.id,
    baseUrl: spec.baseUrl,
    limits: spec.limits,
    bans: spec.bans,
    intervals: spec.intervals,
    maxPageSize: spec.pageSize,
    historyDepth: spec.historyDepth,
    supports: (interval) => spec.intervals[interval] !== undefined,
    nativeSymbol: (unified) => spec.symbol(unifiedParts(spec.id, unified)),

    async instruments(deps, now) {
      return (await listing(spec.instruments, deps, now)).filter((i) => UNIFIED_RE.test(i.symbol));
    },
    quoteVolumes: volumes ? (deps, now) => listing(volumes, deps, now) : undefined,

    async fetchPage(req: PageRequest, deps: FetchDeps): Promise<PageResult> {
      // Symbol and interval are checked before the range, so a bad request fails even when empty.
      const interval = nativeInterval(spec.id, req.interval, spec.intervals);
      const symbol = adapter.nativeSymbol(req.symbol);
      if (isEmptyRange(req)) return nothing();
      const page: PageContext<N> = { req, interval, symbol, step: INTERVAL_MS[req.interval] };
      const call = spec.request(page);
      if (!call) return nothing();
      const url = withQuery(deps.baseUrl, call.path, call.query);
      const raw = await readResponse(spec.id, await deps.fetch(url));
      if (raw.status !== 200) throw spec.error(raw, req);
      const body = parseJson(spec.id, raw, { numbersAsText: spec.numbersAsText ?? false });
      if (spec.failed?.(body)) throw spec.error(raw, req);
      const { candles, next } = spec.parse(body, raw, page);
      return {
        candles: finishCandles(spec.id, req.interval, candles, req, raw),
        next: next ?? call.next,
        weight: spec.limits.route(new URL(url)).weight,
      };
    },
  };
  return adapter;
}
