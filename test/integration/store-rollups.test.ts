import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomWalk, seededRandom } from '../../dev/sample-candles.ts';
import type { CandleBatch, CandleRow } from '../../functions/candles/candle-batch.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../../functions/candles/intervals.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { resampledWindow, rolledUpWindow, ROLLUP_INTERVALS } from '../../functions/store/rollups.ts';
import { findSeriesId } from '../../functions/store/series.ts';
import { pollUntil } from '../support/poll.ts';
import { testPool, uniqueSymbol } from '../support/db.ts';

let db: Db;
const store = new CandleStore();
beforeAll(() => {
  db = testPool(3);
});
afterAll(async () => {
  await db.end();
});

const MIN = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2024, 2, 1, 5, 17); // mid-hour on a Friday, so the first hour, day and week are partial

const message = (symbol: string, rows: CandleRow[], fetchedAt: number, range?: [number, number]): CandleBatch => ({
  v: 1,
  exchange: 'binance',
  symbol,
  interval: '1m',
  fetchedAt,
  rows,
  ...(range ? { range } : {}),
});

/**
 * Random 1m candles over about ten days: quiet minutes, a missing hour and a missing day, and the
 * newest few candles still open.
 */
function randomSeries(seed: number): CandleRow[] {
  const rand = seededRandom(seed);
  const count = 10 * 1440 + Math.floor(rand() * 600);
  const skip = (i: number) => rand() < 0.02 || (i >= 1500 && i < 1560) || (i >= 4 * 1440 && i < 5 * 1440);
  const shape = { step: 2, wick: 1, minLow: 0.01, priceDecimals: 4, volume: { max: 10, decimals: 6 }, quoteVolume: { max: 1000, decimals: 2 }, maxTrades: 100 };
  const rows: CandleRow[] = [];
  for (const b of randomWalk({ rand, startPrice: 100 + seed, count, shape, skip })) {
    // Some candles lack a quote volume or a trade count, as some exchanges' do.
    const noQuote = rand() < 0.01;
    rows.push([T0 + b.index * MIN, b.open, b.high, b.low, b.close, b.volume, noQuote ? null : b.quoteVolume, rand() < 0.01 ? null : b.trades, 1]);
  }
  for (const r of rows.slice(-5)) r[8] = 0;
  return rows;
}

async function seriesId(symbol: string): Promise<number> {
  return (await findSeriesId(db, { exchange: 'binance', symbol, interval: '1m' }))!;
}

async function lastStored(id: number): Promise<number> {
  const { rows } = await db.query<{ t: number }>(`SELECT (extract(epoch FROM max(open_time)) * 1000)::float8 AS t FROM candles WHERE series_id = $1`, [id]);
  return Number(rows[0]!.t);
}

/** Every rollup interval over the whole series, read through the rollups (twice: building, then kept) and straight from the source. */
async function expectSameAsSource(id: number, rows: CandleRow[]): Promise<void> {
  const last = await lastStored(id);
  for (const interval of ROLLUP_INTERVALS) {
    const lo = bucketStart(rows[0]![0], interval);
    const hi = bucketStart(last, interval) + INTERVAL_MS[interval];
    const page = { seriesId: id, interval, source: '1m' as const, lo, hi };
    const plain = await resampledWindow(db, page);
    expect(plain.length).toBeGreaterThan(0);
    expect(await rolledUpWindow(db, page, last), `${interval}, first read`).toEqual(plain);
    expect(await rolledUpWindow(db, page, last), `${interval}, second read`).toEqual(plain);
    // A page in the middle reads the same buckets as the whole range does.
    const midLo = lo + Math.floor((hi - lo) / INTERVAL_MS[interval] / 3) * INTERVAL_MS[interval];
    const midHi = Math.min(hi, midLo + 5 * INTERVAL_MS[interval]);
    expect(await rolledUpWindow(db, { ...page, lo: midLo, hi: midHi }, last)).toEqual(plain.filter((b) => b.candle.openTime >= midLo && b.candle.openTime < midHi));
  }
}

type RollupState = Map<string, { gen: string; stale: boolean }>;
async function rollupState(id: number): Promise<RollupState> {
  const { rows } = await db.query<{ interval: string; t: number; gen: string; stale: boolean }>(
    `SELECT interval, (extract(epoch FROM open_time) * 1000)::float8 AS t, gen, stale FROM candle_rollups WHERE series_id = $1`,
    [id],
  );
  return new Map(rows.map((r) => [`${r.interval} ${Number(r.t)}`, { gen: r.gen, stale: r.stale }]));
}

const bucketsOf = (openTimes: number[]) => new Set(openTimes.flatMap((t) => ROLLUP_INTERVALS.map((i: Interval) => `${i} ${bucketStart(t, i)}`)));

/** The rollup buckets whose mark moved between two states. */
function marked(before: RollupState, after: RollupState): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of after) if (before.get(k)?.gen !== v.gen) out.add(k);
  return out;
}

describe('rollups: identical to resampling the source', () => {
  it.each([1, 2, 3])('random series %i: after loading, restatements, late candles, closing candles and redelivery', async (seed) => {
    const rand = seededRandom(seed * 101);
    const symbol = uniqueSymbol();
    const rows = randomSeries(seed);
    const fetchedAt = T0 + 11 * DAY;
    // Loaded as a backfill would send it: ranged messages, each written in its own transaction.
    for (let i = 0; i < rows.length; i += 2000) {
      const part = rows.slice(i, i + 2000);
      const end = i + 2000 >= rows.length ? part.at(-1)![0] + MIN : rows[i + 2000]![0];
      await store.write(db, [message(symbol, part, fetchedAt, [part[0]![0], end])]);
    }
    const id = await seriesId(symbol);
    await expectSameAsSource(id, rows);
    const kept = [...(await rollupState(id)).values()].filter((v) => !v.stale).length;
    expect(kept).toBeGreaterThan(200); // most hours are kept, and the gaps as empty buckets

    // Redelivering everything changes no candle, so it marks nothing.
    const beforeRedelivery = await rollupState(id);
    for (let i = 0; i < rows.length; i += 2000) await store.upsert(db, [message(symbol, rows.slice(i, i + 2000), fetchedAt)]);
    expect(marked(beforeRedelivery, await rollupState(id))).toEqual(new Set());

    // Restated closed candles (a later fetch with other values), late candles in the gaps (the
    // missing hour, the missing day and quiet minutes), and the open candles closing.
    const have = new Set(rows.map((r) => r[0]));
    const restated = Array.from({ length: 5 }, () => rows[Math.floor(rand() * (rows.length - 10))]!).map((r): CandleRow => {
      const high = (Number(r[2]) + 1.5).toFixed(4);
      return [r[0], r[1], high, r[3], r[4], (Number(r[5]) + 0.25).toFixed(6), r[6], r[7], 1];
    });
    const late: CandleRow[] = [T0 + 1530 * MIN, T0 + (4 * 1440 + 700) * MIN, ...rows.slice(0, -10).map((r) => r[0] + MIN).filter((t) => !have.has(t)).slice(3, 6)].map(
      (t): CandleRow => [t, '100.0000', '101.0000', '99.5000', '100.5000', '1.000000', '100.50', 3, 1],
    );
    const closing = rows.slice(-5).map((r): CandleRow => [...r.slice(0, 8), 1] as CandleRow);
    const changes = [...restated, ...late, ...closing];
    const beforeChanges = await rollupState(id);
    await store.write(db, [message(symbol, [...restated, ...late].sort((a, b) => a[0] - b[0]), fetchedAt + DAY)]);
    await store.write(db, [message(symbol, closing, fetchedAt + DAY, [closing[0]![0], closing.at(-1)![0] + MIN])]);
    const after = await rollupState(id);
    // Exactly the buckets the changed candles fall in are marked, and they are stale until read.
    expect(marked(beforeChanges, after)).toEqual(bucketsOf(changes.map((r) => r[0])));
    for (const k of bucketsOf(changes.map((r) => r[0]))) expect(after.get(k)?.stale).toBe(true);

    const merged = new Map(rows.map((r) => [r[0], r]));
    for (const r of changes) merged.set(r[0], r);
    await expectSameAsSource(id, [...merged.values()].sort((a, b) => a[0] - b[0]));
  });
});

describe('rollups: a write racing a read', () => {
  it('a bucket built from a snapshot older than a concurrent write is not kept', async () => {
    const symbol = uniqueSymbol();
    const rows = randomSeries(9).map((r): CandleRow => [...r.slice(0, 8), 1] as CandleRow);
    await store.write(db, [message(symbol, rows.slice(0, 3000), T0 + 11 * DAY, [rows[0]![0], rows[3000]![0]])]);
    const id = await seriesId(symbol);
    const day = bucketStart(rows[0]![0], '1d') + DAY;
    const last = await lastStored(id);

    // A writer restates a candle of the day and holds its transaction open.
    const writer = await db.connect();
    try {
      await writer.query('BEGIN');
      const target = rows.find((r) => r[0] >= day + 600 * MIN)!;
      const restated: CandleRow = [target[0], target[1], (Number(target[2]) + 7).toFixed(4), target[3], target[4], target[5], target[6], target[7], 1];
      // The store wants a pool for adding partitions; this year's is known to it already, so on this
      // client it runs only the write itself.
      await store.upsert(writer as unknown as Db, [message(symbol, [restated], T0 + 12 * DAY)]);

      // The reader builds the day from what it can see (the old values) and tries to keep it: it
      // waits for the writer's mark of that day.
      const reading = rolledUpWindow(db, { seriesId: id, interval: '1d', source: '1m', lo: day, hi: day + DAY }, last);
      await pollUntil(
        async () =>
          (
            await db.query<{ n: number }>(
              // The reader's build, known by how it starts: the text shown is cut at 1 kB.
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH c AS (SELECT g.*%'`,
            )
          ).rows[0]!.n > 0,
        { timeoutMs: 10_000, description: 'the reader to wait for the writer' },
      );
      await writer.query('COMMIT');
      await reading;
    } finally {
      writer.release();
    }
    // What the reader built missed the restatement, so it was not kept: the day is still marked,
    // and the next read builds it with the restated candle.
    const state = await rollupState(id);
    expect(state.get(`1d ${day}`)?.stale).toBe(true);
    const dayPage = { seriesId: id, interval: '1d' as const, source: '1m' as const, lo: day, hi: day + DAY };
    const now = await resampledWindow(db, dayPage);
    expect(await rolledUpWindow(db, dayPage, last)).toEqual(now);
    expect((await rollupState(id)).get(`1d ${day}`)?.stale).toBe(false);
    expect(await rolledUpWindow(db, dayPage, last)).toEqual(now);
  });
});
