import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { Governor, MemoryBudgetStore, type BudgetStore, type GovernorOptions } from '../../../functions/exchanges/governor.ts';
import type { ExchangeAccess } from '../../../functions/ingest/exchange-access.ts';
import type { Queryable } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import type { FakeExchange } from '../../support/fake-exchange/index.ts';

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

export interface StoredCandle {
  openTime: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  quoteVolume: string | null;
  trades: number | null;
  closed: boolean;
}

/** The stored candles of a series in [from, to), as text exactly as stored. */
export async function storedCandles(db: Queryable, s: SeriesKey, from: number, to: number): Promise<StoredCandle[]> {
  const { rows } = await db.query<{ t: number; o: string; h: string; l: string; c: string; v: string; q: string | null; n: string | null; closed: boolean }>(
    `SELECT (extract(epoch FROM c.open_time) * 1000)::float8 AS t, c.open::text AS o, c.high::text AS h, c.low::text AS l,
            c.close::text AS c, c.volume::text AS v, c.quote_volume::text AS q, c.trades::text AS n, c.closed
     FROM candles c JOIN series s ON s.id = c.series_id
     WHERE s.exchange = $1 AND s.symbol = $2 AND s.interval = $3
       AND c.open_time >= to_timestamp($4::float8 / 1000) AND c.open_time < to_timestamp($5::float8 / 1000)
     ORDER BY c.open_time`,
    [s.exchange, s.symbol, s.interval, from, to],
  );
  return rows.map((r) => ({
    openTime: Number(r.t), open: r.o, high: r.h, low: r.l, close: r.c, volume: r.v, quoteVolume: r.q,
    trades: r.n === null ? null : Number(r.n), closed: r.closed,
  }));
}

/** A fake's expected candles in the stored shape, for exact comparison. */
export function asStored(candles: ReturnType<FakeExchange['expected']>): StoredCandle[] {
  return candles.map((c) => ({
    openTime: c.openTime, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume,
    quoteVolume: c.quoteVolume ?? null, trades: c.trades ?? null, closed: c.closed,
  }));
}
