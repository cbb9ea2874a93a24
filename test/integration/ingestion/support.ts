import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { Governor, MemoryBudgetStore, type BudgetStore, type GovernorOptions } from '../../../functions/exchanges/governor.ts';
import type { ExchangeAccess } from '../../../functions/exchanges/access.ts';
import type { Queryable } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import type { FakeExchange } from '../../../dev/fake-exchange/server.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { asStored as asStoredCandle, readStored } from '../../support/stored-candles.ts';

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Exchange access pointed at the fake. `now` is the candles' clock (the fake's); the governor keeps
 * real time for its budgets and sleeps.
 */
export function fakeAccess(fake: FakeExchange, opts: { store?: BudgetStore; governor?: GovernorOptions; fetch?: typeof fetch } = {}): ExchangeAccess {
  return {
    governor: new Governor(
      { now: Date.now, sleep, ...(opts.fetch ? { fetch: opts.fetch } : {}) },
      { store: opts.store ?? new MemoryBudgetStore(), ...opts.governor },
    ),
    baseUrls: fake.baseUrls,
    now: () => fake.now(),
  };
}

/**
 * The fake exchange lists fixed markets, so tests share series with nothing but their own earlier
 * runs against this database: each test clears the rows of the series it uses first.
 */
export async function resetSeries(db: Queryable, series: readonly SeriesKey[]): Promise<void> {
  for (const s of series) {
    const id = await findSeriesId(db, s);
    if (id === undefined) continue;
    await db.query('DELETE FROM candles WHERE series_id = $1', [id]);
    await db.query('DELETE FROM coverage WHERE series_id = $1', [id]);
    await db.query('DELETE FROM backfills WHERE series_id = $1', [id]);
  }
}

/** The stored candles of a series in [from, to), as text exactly as stored. */
export const storedCandles = (db: Queryable, s: SeriesKey, from: number, to: number) => readStored(db, s, { from, to });

/** A fake's expected candles in the stored shape, for exact comparison. */
export const asStored = (candles: ReturnType<FakeExchange['expected']>): StoredCandle[] => candles.map(asStoredCandle);
