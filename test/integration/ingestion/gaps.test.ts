import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCandleBatches, parseCandleBatch, type CandleBatch } from '../../../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill } from '../../../functions/ingest/backfill-planner.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import { backfillRequestsForGaps, findGaps, UnknownSeriesError } from '../../../functions/ingest/gaps.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { recordCoverage } from '../../../functions/store/coverage.ts';
import type { Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { testPool, uniqueSymbol } from '../../support/db.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { fakeAccess, HOUR, MIN, resetSeries } from './support.ts';

let db: Db;
let fake: FakeExchange;
const T0 = Date.UTC(2024, 2, 1);
// Hours the fake's Coinbase market had no trades: Coinbase omits those buckets.
const QUIET = new Set([T0 + 5 * HOUR, T0 + 6 * HOUR, T0 + 30 * HOUR]);

beforeAll(async () => {
  db = testPool(3);
  fake = await startFakeExchange({ enforceLimits: false, holes: (t, s) => s.exchange === 'coinbase' && s.interval === '1h' && QUIET.has(t) });
});
afterAll(async () => {
  await fake?.close();
  await db?.end();
});

function candle(openTime: number): Candle {
  return { openTime, open: '100.5', high: '101', low: '100', close: '100.75', volume: '3.25', closed: true };
}

async function store(series: SeriesKey, times: number[]): Promise<void> {
  const batches: CandleBatch[] = encodeCandleBatches(series, times.map(candle), Date.now()).map((b) => {
    const parsed = parseCandleBatch(b);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.batch;
  });
  await new CandleStore().upsert(db, batches);
}

describe('gaps of a series', () => {
  it('reports exactly the three holes of a series with three holes', async () => {
    const series: SeriesKey = { exchange: 'binance', symbol: uniqueSymbol(), interval: '1m' };
    const all = Array.from({ length: 600 }, (_, i) => T0 + i * MIN);
    const holes = [
      { start: T0 + 100 * MIN, end: T0 + 101 * MIN }, // one candle
      { start: T0 + 250 * MIN, end: T0 + 310 * MIN }, // an hour
      { start: T0 + 597 * MIN, end: T0 + 599 * MIN }, // two, just before the last stored candle
    ];
    await store(series, all.filter((t) => !holes.some((h) => t >= h.start && t < h.end)));

    // By default: from the first stored candle up to the forming bucket (here: just after the last stored one).
    const report = await findGaps(db, series, { now: T0 + 600 * MIN + 30_000 });
    expect(report.range).toEqual({ start: T0, end: T0 + 600 * MIN });
    expect(report.holes).toEqual([
      { ...holes[0], kind: 'missing', candles: 1 },
      { ...holes[1], kind: 'missing', candles: 60 },
      { ...holes[2], kind: 'missing', candles: 2 },
    ]);
    expect(report).toMatchObject({ stored: 600 - 63, missingCandles: 63, emptyCandles: 0 });

    // Within an explicit range, holes at its edges count too (here: the range runs past the data).
    const clipped = await findGaps(db, series, { from: T0 + 260 * MIN, to: T0 + 620 * MIN, now: T0 + 10 * 24 * HOUR });
    expect(clipped.holes.map((h) => [(h.start - T0) / MIN, (h.end - T0) / MIN])).toEqual([[260, 310], [597, 599], [600, 620]]);
  });

  it('tells ranges the exchange confirmed empty from missing ones', async () => {
    const series: SeriesKey = { exchange: 'okx', symbol: uniqueSymbol(), interval: '1h' };
    const times = Array.from({ length: 48 }, (_, i) => T0 + i * HOUR).filter((t) => t < T0 + 10 * HOUR || t >= T0 + 20 * HOUR);
    await store(series, times);
    const id = (await findSeriesId(db, series))!;
    // The exchange was asked for hours 0..15 and had nothing in 10..15; 15..20 nobody asked for yet.
    await recordCoverage(db, id, { start: T0, end: T0 + 15 * HOUR }, times.filter((t) => t < T0 + 15 * HOUR));
    const report = await findGaps(db, series, { now: T0 + 48 * HOUR });
    expect(report.holes).toEqual([
      { start: T0 + 10 * HOUR, end: T0 + 15 * HOUR, kind: 'empty', candles: 5 },
      { start: T0 + 15 * HOUR, end: T0 + 20 * HOUR, kind: 'missing', candles: 5 },
    ]);
    expect(backfillRequestsForGaps(report)).toEqual([{ ...series, from: T0 + 15 * HOUR, to: T0 + 20 * HOUR, requestedBy: 'gaps' }]);
  });

  it('shows quiet hours as confirmed empty after a backfill from an exchange that omits them', async () => {
    const series: SeriesKey = { exchange: 'coinbase', symbol: 'ETH/USD', interval: '1h' };
    await resetSeries(db, [series]);
    const plan = await planBackfill({ ...series, from: T0, to: T0 + 48 * HOUR }, { db, access: fakeAccess(fake) });
    await runBackfillLocally(plan.backfillId, { db, access: fakeAccess(fake), sink: new DirectSink(db, new CandleStore()) });
    const report = await findGaps(db, series, { from: T0, to: T0 + 48 * HOUR, now: fake.now() });
    expect(report.holes).toEqual([
      { start: T0 + 5 * HOUR, end: T0 + 7 * HOUR, kind: 'empty', candles: 2 },
      { start: T0 + 30 * HOUR, end: T0 + 31 * HOUR, kind: 'empty', candles: 1 },
    ]);
    expect(backfillRequestsForGaps(report)).toEqual([]);
  });

  it('refuses a series that was never stored, saying what to do', async () => {
    await expect(findGaps(db, { exchange: 'binance', symbol: uniqueSymbol(), interval: '1m' }, { now: Date.now() })).rejects.toThrow(UnknownSeriesError);
  });
});
