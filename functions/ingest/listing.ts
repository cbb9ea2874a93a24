import type { SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS } from '../candles/intervals.ts';
import type { ExchangeAdapter, FetchDeps } from '../exchanges/types.ts';
import type { Range } from './ranges.ts';

export interface FirstCandle {
  /**
   * Where fetching should start: no candle of the range opens before it. Undefined when the
   * exchange has no candle anywhere in the range.
   */
  first: number | undefined;
  /**
   * True when the exchange itself answered "nothing before this" (so [range.start, first) may be
   * recorded as confirmed empty). Coinbase's probes only see 300 buckets at a time, so there a
   * quiet stretch and "not listed yet" look alike and the answer is a best guess.
   */
  exact: boolean;
  probes: number;
}

/**
 * Exchanges whose answer to "candles from T" is the oldest rows at or after T: the first page of
 * the range shows the first candle directly. (Kraken only ever serves its newest rows, oldest first.)
 */
const OLDEST_FIRST = new Set(['binance', 'kraken']);
/** Newest-first exchanges whose page for (from, to] reaches as far back as `from`, so an empty page means nothing before `to`. */
const EXACT_PROBES = new Set(['okx', 'bybit']);

/**
 * Finds where a market's history starts inside `range`, so a backfill does not walk years of empty
 * pages before the listing. Oldest-first exchanges answer in one request. Newest-first ones are
 * binary-searched with one page per probe, "is there any candle at or before t?": each non-empty
 * probe also lowers the upper bound to the oldest candle it returned. The search stops within one
 * page of the start: about log2(range / page) requests, 11 for a year of 1m candles on OKX.
 */
export async function findFirstCandle(
  adapter: ExchangeAdapter,
  series: Pick<SeriesKey, 'symbol' | 'interval'>,
  range: Range,
  deps: FetchDeps,
  now: number,
): Promise<FirstCandle> {
  const step = INTERVAL_MS[series.interval];
  const last = bucketStart(range.end - 1, series.interval);
  let probes = 0;
  /** Oldest candle at or before `t` the exchange shows in one page (undefined: none). */
  const probe = async (t: number): Promise<number | undefined> => {
    probes += 1;
    const page = await adapter.fetchPage({ symbol: series.symbol, interval: series.interval, from: range.start, to: t, now }, deps);
    return page.candles.length > 0 ? Math.min(...page.candles.map((c) => c.openTime)) : undefined;
  };

  if (OLDEST_FIRST.has(adapter.id)) {
    return { first: await probe(last), exact: true, probes };
  }

  let upper = await probe(last);
  if (upper === undefined) return { first: undefined, exact: EXACT_PROBES.has(adapter.id), probes };
  let lower = range.start;
  const resolution = adapter.maxPageSize * step;
  while (upper - lower > resolution) {
    const mid = bucketStart(lower + Math.floor((upper - lower) / 2), series.interval);
    const found = await probe(mid);
    if (found === undefined) lower = mid + step;
    else upper = Math.min(upper, found);
  }
  return { first: lower, exact: EXACT_PROBES.has(adapter.id), probes };
}
