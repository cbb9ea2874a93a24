import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCandleBatches, fromRow } from '../../functions/candles/candle-batch.ts';
import type { SeriesKey } from '../../functions/candles/candle.ts';
import { DirectSink } from '../../functions/ingest/candle-sink.ts';
import { findGaps } from '../../functions/ingest/gaps.ts';
import { writeCandleMessages, type QueueRecord } from '../../functions/ingest/write-candles.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import { loadCoverage } from '../../functions/store/coverage.ts';
import type { Db } from '../../functions/store/db.ts';
import { findSeriesId } from '../../functions/store/series.ts';
import { row, T0 } from '../support/candles.ts';
import { coverageHoldings } from '../support/coverage.ts';
import { testPool, uniqueSymbol } from '../support/db.ts';
import { pollUntil } from '../support/poll.ts';
import { readStored } from '../support/stored-candles.ts';

const MIN = 60_000;
let db: Db;
beforeAll(() => {
  db = testPool(3);
});
afterAll(async () => {
  await db.end();
});

const seriesOf = (): SeriesKey => ({ exchange: 'binance', symbol: uniqueSymbol(), interval: '1m' });
const candles = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => fromRow(row(from + i)));
const records = (bodies: readonly string[]): QueueRecord[] => bodies.map((body, i) => ({ messageId: `m${i}`, body }));
const deps = () => ({
  db,
  store: new CandleStore(),
  deadLetter: async () => {
    throw new Error('no message of these tests is invalid');
  },
});
const idOf = async (s: SeriesKey) => (await findSeriesId(db, s))!;

describe('the writer records coverage from the messages it stores', () => {
  it('claims each stored message range with the candles it carried; a range without candles as confirmed empty', async () => {
    const series = seriesOf();
    const sink = new DirectSink(db, new CandleStore());

    await sink.write(series, candles(0, 50), T0, { start: T0, end: T0 + 60 * MIN });
    await sink.write(series, [], T0, { start: T0 + 60 * MIN, end: T0 + 90 * MIN });

    const id = await idOf(series);
    // The second range continues the first, so it extends that row.
    expect(await loadCoverage(db, id, { start: T0, end: T0 + 90 * MIN })).toEqual([{ start: T0, end: T0 + 90 * MIN, candles: 50 }]);
    const gaps = await findGaps(db, series, { from: T0, to: T0 + 90 * MIN, now: T0 + 100 * MIN });
    expect(gaps.holes.map((h) => [h.start, h.end, h.kind])).toEqual([[T0 + 50 * MIN, T0 + 90 * MIN, 'empty']]);
  });

  it('records the ranges of a batch of several series at once: one extends its row, one adds a row, one is already covered', async () => {
    const [extends_, adds, covered] = [seriesOf(), seriesOf(), seriesOf()];
    const sink = new DirectSink(db, new CandleStore());
    await sink.write(extends_, candles(0, 30), T0, { start: T0, end: T0 + 30 * MIN });
    await sink.write(covered, candles(0, 60), T0, { start: T0, end: T0 + 60 * MIN });
    // One SQS batch: each series' message, the extension re-carrying 10 candles it already claimed.
    const bodies = [
      ...encodeCandleBatches(extends_, candles(20, 45), T0, { start: T0 + 20 * MIN, end: T0 + 45 * MIN }),
      ...encodeCandleBatches(adds, candles(100, 110), T0, { start: T0 + 100 * MIN, end: T0 + 120 * MIN }),
      ...encodeCandleBatches(covered, candles(10, 20), T0, { start: T0 + 10 * MIN, end: T0 + 20 * MIN }),
    ];

    const result = await writeCandleMessages(records(bodies), deps());

    expect(result.written).toBe(15 + 10);
    const rows = async (s: SeriesKey) => (await coverageHoldings(db, await idOf(s))).map(({ start, end, candles, stored }) => [start, end, candles, stored]);
    expect(await rows(extends_)).toEqual([[T0, T0 + 45 * MIN, 45, 45]]);
    expect(await rows(adds)).toEqual([[T0 + 100 * MIN, T0 + 120 * MIN, 10, 10]]);
    expect(await rows(covered)).toEqual([[T0, T0 + 60 * MIN, 60, 60]]);
  });

  it('leaves exactly the range of a message that was never stored missing', async () => {
    const series = seriesOf();
    const bodies = encodeCandleBatches(series, candles(0, 300), T0, { start: T0, end: T0 + 300 * MIN }, 8 * 1024);
    expect(bodies.length).toBeGreaterThanOrEqual(3);
    const lost = JSON.parse(bodies[1]!) as { range: [number, number] };

    await writeCandleMessages(records(bodies.filter((_, i) => i !== 1)), deps());

    const gaps = await findGaps(db, series, { from: T0, to: T0 + 300 * MIN, now: T0 + 400 * MIN });
    expect(gaps.holes.map((h) => [h.start, h.end, h.kind])).toEqual([[lost.range[0], lost.range[1], 'missing']]);
    expect((await coverageHoldings(db, await idOf(series))).every((r) => r.stored === r.candles)).toBe(true);
  });

  it('stores candles and coverage in one transaction: when the ledger write fails, no candle is stored either', async () => {
    const series = seriesOf();
    const store = new CandleStore();
    await store.upsert(db, [{ v: 1, ...series, fetchedAt: T0, rows: [row(0)] }]); // gives the series its id
    const id = await idOf(series);
    const trigger = `refuse_coverage_${id}`;
    await db.query(`CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.series_id = ${id} THEN RAISE EXCEPTION 'ledger refused'; END IF; RETURN NEW; END $$`);
    await db.query(`CREATE TRIGGER ${trigger} BEFORE INSERT OR UPDATE ON coverage FOR EACH ROW EXECUTE FUNCTION ${trigger}()`);
    try {
      const bodies = encodeCandleBatches(series, candles(1, 20), T0, { start: T0 + MIN, end: T0 + 20 * MIN });
      await expect(writeCandleMessages(records(bodies), { ...deps(), store })).rejects.toThrow(/ledger refused/);
    } finally {
      await db.query(`DROP TRIGGER ${trigger} ON coverage`);
      await db.query(`DROP FUNCTION ${trigger}()`);
    }
    expect((await readStored(db, series)).map((c) => c.openTime)).toEqual([T0]);
    expect(await loadCoverage(db, id, { start: T0, end: T0 + 20 * MIN })).toEqual([]);
  });

  it('starts over with the guarded upsert when another writer commits one of its new candles first', async () => {
    const series = seriesOf();
    const store = new CandleStore();
    await store.upsert(db, [{ v: 1, ...series, fetchedAt: T0, rows: [row(0)] }]);
    const id = await idOf(series);
    // Another writer holds an open version of bucket 5, not yet committed: the probe cannot see it,
    // so the batch's plain insert waits on it and then fails with a unique violation.
    const other = await db.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO candles (series_id, closed, open_time, fetched_at, open, high, low, close, volume)
         VALUES ($1, false, to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000), 1, 1, 1, 1, 1)`,
        [id, T0 + 5 * MIN, T0],
      );
      const bodies = encodeCandleBatches(series, candles(1, 10), T0 + 3_600_000, { start: T0 + MIN, end: T0 + 10 * MIN });
      const writing = writeCandleMessages(records(bodies), { ...deps(), store });
      await pollUntil(
        async () =>
          (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`))
            .rows[0]!.n > 0,
        { timeoutMs: 10_000, intervalMs: 50, description: 'the batch to wait on the uncommitted candle' },
      );
      await other.query('COMMIT');
      const outcome = await writing;
      expect(outcome.written).toBe(9);
    } finally {
      other.release();
    }
    // The batch's closed version replaced the other writer's open one, and the range is claimed.
    expect((await readStored(db, series)).map((c) => [c.openTime, c.closed])).toEqual(Array.from({ length: 10 }, (_, i) => [T0 + i * MIN, true]));
    expect(await loadCoverage(db, id, { start: T0, end: T0 + 10 * MIN })).toEqual([{ start: T0 + MIN, end: T0 + 10 * MIN, candles: 9 }]);
  });

  it('writes nothing when a batch is redelivered: no candle row and no ledger row changes', async () => {
    const series = seriesOf();
    const bodies = encodeCandleBatches(series, candles(0, 120), T0, { start: T0, end: T0 + 150 * MIN }, 8 * 1024);
    await writeCandleMessages(records(bodies), deps());
    const id = await idOf(series);
    const ledgerVersions = () =>
      db.query<{ v: string }>(`SELECT ctid::text || '/' || xmin::text AS v FROM coverage WHERE series_id = $1 ORDER BY range_start`, [id]);
    const before = (await ledgerVersions()).rows;

    const again = await writeCandleMessages(records(bodies), deps());
    const reversed = await writeCandleMessages(records([...bodies].reverse()), deps());

    expect([again.written, reversed.written]).toEqual([0, 0]);
    expect((await ledgerVersions()).rows).toEqual(before);
    expect(await loadCoverage(db, id, { start: T0, end: T0 + 150 * MIN })).toEqual([{ start: T0, end: T0 + 150 * MIN, candles: 120 }]);
  });

  it('keeps messages without a range valid, and they claim nothing', async () => {
    const series = seriesOf();
    const outcome = await writeCandleMessages(records(encodeCandleBatches(series, candles(0, 10), T0)), deps());
    expect(outcome.written).toBe(10);
    expect(await loadCoverage(db, await idOf(series), { start: T0, end: T0 + 10 * MIN })).toEqual([]);
  });
});
