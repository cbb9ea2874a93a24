import type { Exchange } from '../candles/candle.ts';
import { Invalid, Unavailable } from '../errors.ts';
import { pageDeps, type ExchangeAccess } from '../exchanges/access.ts';
import { adapters } from '../exchanges/index.ts';
import type { Instrument } from '../exchanges/types.ts';

/** An instrument with its 24h volume in the quote currency (null where the exchange publishes none in one call). */
export interface ListedInstrument extends Instrument {
  quoteVolume24h: number | null;
}

export interface Listing {
  exchange: Exchange;
  /** When the exchange was asked (the listing is cached for LISTING_TTL_MS). */
  fetchedAt: number;
  instruments: ListedInstrument[];
}

/** How long an exchange's instrument list is reused: listings change a few times a week, and one call costs Binance 100 weight. */
export const LISTING_TTL_MS = 10 * 60_000;

const cache = new Map<Exchange, Listing>();

/**
 * Every spot instrument of the exchange with its 24h quote volume, most traded first; cached per
 * process for LISTING_TTL_MS (a Lambda container, the local server). Two governed calls per
 * exchange and period: the instrument list, and the volumes when the exchange has them in one call.
 */
export async function exchangeListing(access: ExchangeAccess, exchange: Exchange): Promise<Listing> {
  const now = access.now();
  const hit = cache.get(exchange);
  if (hit && now - hit.fetchedAt < LISTING_TTL_MS) return hit;
  const adapter = adapters[exchange];
  const deps = pageDeps(access, exchange);
  let instruments: Instrument[];
  let volumes: Map<string, number> | undefined;
  try {
    [instruments, volumes] = await Promise.all([adapter.instruments(deps, now), adapter.quoteVolumes?.(deps, now)]);
  } catch (err) {
    throw new Unavailable(`could not list ${exchange}'s instruments: ${(err as Error).message}`, 'exchange');
  }
  const listed = instruments
    .map((i) => ({ ...i, quoteVolume24h: volumes ? (volumes.get(i.key) ?? 0) : null }))
    .sort((a, b) => (b.quoteVolume24h ?? -1) - (a.quoteVolume24h ?? -1) || a.symbol.localeCompare(b.symbol));
  const listing = { exchange, fetchedAt: now, instruments: listed };
  cache.set(exchange, listing);
  return listing;
}

export interface Selection {
  /** Only this quote currency (`USDT`). */
  quote?: string | undefined;
  /** The N most traded by 24h quote volume, like freqtrade's VolumePairList. */
  top?: number | undefined;
  /** Only instruments open for trading (default true). */
  trading?: boolean | undefined;
}

/** The instruments a selection picks from the listing. */
export async function selectInstruments(access: ExchangeAccess, exchange: Exchange, selection: Selection): Promise<Listing> {
  if (selection.top !== undefined && !adapters[exchange].quoteVolumes) {
    throw new Invalid(
      `${exchange} publishes no 24h volume of all its products in one call, so it cannot rank a top ${selection.top}; ` +
        'list its instruments and name the symbols instead',
      'top',
      'no-volume-ranking',
    );
  }
  const listing = await exchangeListing(access, exchange);
  let picked = listing.instruments.filter((i) => (selection.trading ?? true ? i.trading : true) && (!selection.quote || i.quote === selection.quote));
  if (selection.top !== undefined) picked = picked.slice(0, selection.top);
  return { ...listing, instruments: picked };
}

/** Forgets every cached listing (tests that change what an exchange lists). */
export function forgetListings(): void {
  cache.clear();
}
