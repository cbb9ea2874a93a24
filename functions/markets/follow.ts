import type { Exchange } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { Unavailable, Unprocessable } from '../errors.ts';
import { pageDeps, type ExchangeAccess } from '../exchanges/access.ts';
import { BadRequestError, UnknownSymbolError, UnsupportedIntervalError } from '../exchanges/errors.ts';
import { adapters } from '../exchanges/index.ts';
import type { Db } from '../store/db.ts';
import { exchangeListing, type ListedInstrument } from './discovery.ts';
import { followMarkets, listMarkets, type FollowRequest, type MarketRow } from '../store/markets.ts';

/** One market a request refused, and why, in the exchange's own words where it gave any. */
export interface Refusal {
  exchange: Exchange;
  symbol: string;
  reason: string;
}

/** Markets refused as a whole: nothing of the request was followed. */
export class MarketsRefused extends Unprocessable {
  override name = 'MarketsRefused';
  readonly refusals: Refusal[];
  constructor(refusals: Refusal[]) {
    super(refusals.map((r) => r.reason).join('; '), 'markets', 'market-refused');
    this.refusals = refusals;
  }
}

/** An interval the exchange lacks, named as the exchange names its own intervals. */
export function intervalRefusal(exchange: Exchange, interval: Interval): string | undefined {
  const offered = adapters[exchange].intervals;
  if (offered[interval] !== undefined) return undefined;
  const own = Object.entries(offered).map(([ours, theirs]) => (String(theirs) === ours ? ours : `${ours} (${String(theirs)})`));
  return `${exchange} has no ${interval} candles; it offers ${own.join(' ')}`;
}

/**
 * Asks the exchange for the newest candles of the market: a market it does not list fails with
 * its own error (Binance "Invalid symbol.", Kraken "EQuery:Unknown asset pair", ...). Undefined
 * when it answered with candles or none.
 */
async function probe(access: ExchangeAccess, exchange: Exchange, symbol: string, interval: Interval): Promise<string | undefined> {
  const adapter = adapters[exchange];
  const now = access.now();
  const step = INTERVAL_MS[interval];
  try {
    await adapter.fetchPage({ symbol, interval, from: bucketStart(now, interval) - step, to: now, now }, pageDeps(access, exchange));
    return undefined;
  } catch (err) {
    if (err instanceof UnknownSymbolError || err instanceof BadRequestError || err instanceof UnsupportedIntervalError) {
      return `${exchange} does not list ${symbol}: ${err.message}`;
    }
    throw new Unavailable(`could not ask ${exchange} whether it lists ${symbol}: ${(err as Error).message}`, 'symbol');
  }
}

/**
 * Why each market cannot be followed:
 * - an interval the exchange lacks, decided from its declaration without a call;
 * - a symbol it lists but does not trade (its status word, from its instrument list);
 * - a symbol its instrument list lacks: then the exchange is asked for the market's newest candles,
 *   so the refusal carries its own error (and a listing a little behind the exchange refuses nothing).
 * `listed` vouches for symbols the caller knows are listed (no check at all).
 */
export async function refusals(
  access: ExchangeAccess,
  requests: readonly FollowRequest[],
  opts: { listed?: (exchange: Exchange, symbol: string) => boolean; concurrency?: number } = {},
): Promise<Refusal[]> {
  const out: Refusal[] = [];
  const unchecked: FollowRequest[] = [];
  for (const r of requests) {
    const bad = r.intervals.map((i) => intervalRefusal(r.exchange, i)).filter((x): x is string => x !== undefined);
    if (bad.length) out.push({ exchange: r.exchange, symbol: r.symbol, reason: bad.join('; ') });
    else if (!opts.listed?.(r.exchange, r.symbol)) unchecked.push(r);
  }
  const listings = new Map<Exchange, Map<string, ListedInstrument> | undefined>();
  for (const exchange of new Set(unchecked.map((r) => r.exchange))) {
    // Without the listing (the exchange did not answer it), every symbol is asked about instead.
    const listing = await exchangeListing(access, exchange).catch(() => undefined);
    listings.set(exchange, listing && new Map(listing.instruments.map((i) => [i.symbol, i])));
  }
  const toProbe: FollowRequest[] = [];
  for (const r of unchecked) {
    const instrument = listings.get(r.exchange)?.get(r.symbol);
    if (!instrument) toProbe.push(r);
    else if (!instrument.trading) {
      out.push({ exchange: r.exchange, symbol: r.symbol, reason: `${r.exchange} lists ${r.symbol} (${instrument.native}) as ${instrument.status}, not open for trading` });
    }
  }
  let next = 0;
  const worker = async () => {
    for (let r = toProbe[next++]; r; r = toProbe[next++]) {
      const reason = await probe(access, r.exchange, r.symbol, r.intervals[0]!);
      if (reason) out.push({ exchange: r.exchange, symbol: r.symbol, reason });
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, toProbe.length) }, worker));
  return out;
}

/**
 * Follows the markets, all or none: any refusal throws MarketsRefused naming every refused market.
 * Returns the followed markets as stored.
 */
export async function follow(
  db: Db,
  access: ExchangeAccess,
  requests: readonly FollowRequest[],
  opts: { listed?: (exchange: Exchange, symbol: string) => boolean } = {},
): Promise<MarketRow[]> {
  const refused = await refusals(access, requests, opts);
  if (refused.length) throw new MarketsRefused(refused);
  await followMarkets(db, requests);
  const wanted = new Set(requests.map((r) => `${r.exchange}|${r.symbol}`));
  return (await listMarkets(db, { active: true })).filter((m) => wanted.has(`${m.exchange}|${m.symbol}`));
}
