import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeExchange, type FakeExchange } from '../../dev/fake-exchange/server.ts';
import { checkFingerprints, computeFingerprint } from '../../functions/backtests/fingerprint.ts';
import type { CandleBatch, CandleRow } from '../../functions/candles/candle-batch.ts';
import type { SeriesKey } from '../../functions/candles/candle.ts';
import { bucketStart, INTERVAL_MS } from '../../functions/candles/intervals.ts';
import { planBackfill } from '../../functions/ingest/backfill-planner.ts';
import { backfillRequestsForGaps, findGaps } from '../../functions/ingest/gaps.ts';
import { applySeed } from '../../functions/markets/seed.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { changeMarket, followMarkets, listMarkets } from '../../functions/store/markets.ts';
import { applyRetention, retentionHorizon } from '../../functions/store/retention.ts';
import { resampledWindow, rolledUpWindow, ROLLUP_INTERVALS } from '../../functions/store/rollups.ts';
import { findSeriesId } from '../../functions/store/series.ts';
import { readCandles } from '../../functions/api/candles/read-candles.ts';
import { isolatedDatabase } from '../support/db.ts';
import { readStored } from '../support/stored-candles.ts';
import { fakeAccess } from './ingestion/support.ts';

const MIN = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2024, 2, 1);
/** The clock every run here is measured by: ten and a half days after T0. */
const NOW = T0 + 10 * DAY + 12 * 3_600_000 + 30_000;

// Retention runs over every followed series of a database: this file has its own.
let iso: Awaited<ReturnType<typeof isolatedDatabase>>;
let db: Db;
let fake: FakeExchange;
const store = new CandleStore();

beforeAll(async () => {
  iso = await isolatedDatabase(4);
  db = iso.pool;
  fake = await startFakeExchange({ enforceLimits: false, now: () => NOW, listedAt: Date.UTC(2020, 0, 1) });
}, 120_000);
afterAll(async () => {
  await fake?.close();
  await iso?.drop();
});

const btc1m: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
const btc1d: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1d' };
const eth1m: SeriesKey = { exchange: 'binance', symbol: 'ETH/USDT', interval: '1m' };
const HORIZON = retentionHorizon(7, '1m', NOW);
// A hole before the horizon (expires with its neighbours) and one after it (stays missing).
const OLD_HOLE = { start: T0 + 100 * MIN, end: T0 + 160 * MIN };
const NEW_HOLE = { start: T0 + 8 * DAY, end: T0 + 8 * DAY + 30 * MIN };

function candleRow(t: number, i: number): CandleRow {
  const p = 100 + (i % 97) / 4;
  return [t, p.toFixed(2), (p + 1).toFixed(2), (p - 1).toFixed(2), (p + 0.5).toFixed(2), `${1 + (i % 13)}.5`, `${100 + i}.25`, 10 + (i % 7), 1];
}

/**
 * Candles of `series` at `times`, written as the writer writes fetched messages: each run of
 * consecutive candles claims its range in the coverage ledger.
 */
async function write(series: SeriesKey, times: number[]): Promise<void> {
  const step = INTERVAL_MS[series.interval];
  const batches: CandleBatch[] = [];
  let run: CandleRow[] = [];
  const flush = () => {
    if (run.length === 0) return;
    batches.push({ v: 1, ...series, fetchedAt: NOW, rows: run, range: [run[0]![0], run.at(-1)![0] + step] });
    run = [];
  };
  times.forEach((t, i) => {
    if (run.length > 0 && (t !== run.at(-1)![0] + step || run.length >= 1000)) flush();
    run.push(candleRow(t, i));
  });
  flush();
  for (let i = 0; i < batches.length; i += 20) await store.write(db, batches.slice(i, i + 20));
}

const minutes = (from: number, to: number, skip: { start: number; end: number }[] = []) =>
  Array.from({ length: (to - from) / MIN }, (_, i) => from + i * MIN).filter((t) => !skip.some((h) => t >= h.start && t < h.end));

async function count(series: SeriesKey, where = 'true', params: readonly unknown[] = []): Promise<number> {
  const id = (await findSeriesId(db, series))!;
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM candles WHERE series_id = $1 AND ${where}`, [id, ...params]);
  return Number(rows[0]!.n);
}
const before = (t: number) => ['open_time < to_timestamp($2::float8 / 1000)', [t]] as const;

describe('retention', () => {
  it('deletes exactly the candles before the horizon of each series that has one, and keeps the ledgers and summaries true', async () => {
    await followMarkets(db, [
      { exchange: 'binance', symbol: 'BTC/USDT', intervals: ['1m', '1d'], retention: { '1m': 7, '1d': null } },
      { exchange: 'binance', symbol: 'ETH/USDT', intervals: ['1m'] },
    ]);
    await write(btc1m, minutes(T0, NOW - 30_000, [OLD_HOLE, NEW_HOLE]));
    await write(btc1d, Array.from({ length: 10 }, (_, i) => T0 + i * DAY));
    await write(eth1m, minutes(T0, T0 + 3000 * MIN));
    const btcId = (await findSeriesId(db, btc1m))!;

    const due = await count(btc1m, ...before(HORIZON));
    expect(due).toBe((HORIZON - T0) / MIN - 60);
    const keptBefore = await readStored(db, btc1m, { from: HORIZON, to: NOW });
    // What a resampled read of the expired range answers while its source is still stored.
    const expected = new Map<string, unknown>();
    for (const interval of ROLLUP_INTERVALS) {
      const page = { seriesId: btcId, interval, source: '1m' as const, lo: bucketStart(T0, interval), hi: bucketStart(HORIZON, interval) + INTERVAL_MS[interval] };
      expected.set(interval, await resampledWindow(db, page));
    }

    const report = await applyRetention(db, { now: NOW, batchSize: 2000 });
    expect(report).toMatchObject({ complete: true, dryRun: false, deleted: due });
    expect(report.series).toEqual([
      { ...btc1m, seriesId: btcId, retentionDays: 7, horizon: HORIZON, deleted: due, pending: false },
    ]);
    expect(report.batches).toBeGreaterThanOrEqual(Math.ceil(due / 2000));

    // Nothing before the horizon, everything from it on exactly as it was; the other series untouched.
    expect(await count(btc1m, ...before(HORIZON))).toBe(0);
    expect(await readStored(db, btc1m, { from: HORIZON, to: NOW })).toEqual(keptBefore);
    expect(await count(btc1d)).toBe(10);
    expect(await count(eth1m)).toBe(3000);

    // The per-series summary, the gaps table and the coverage ledger agree with what is stored.
    const { rows: stats } = await db.query(
      `SELECT candles::int, (extract(epoch FROM first_open) * 1000)::float8 AS first, gap_count::int, missing::int FROM series_stats WHERE series_id = $1`,
      [btcId],
    );
    expect(stats[0]).toEqual({ candles: keptBefore.length, first: HORIZON, gap_count: 1, missing: 30 });
    const { rows: ledger } = await db.query(
      `SELECT (extract(epoch FROM min(range_start)) * 1000)::float8 AS start, sum(candles)::int AS claimed FROM coverage WHERE series_id = $1`,
      [btcId],
    );
    expect(ledger[0]).toEqual({ start: HORIZON, claimed: keptBefore.length });
    const { rows: expiry } = await db.query(
      `SELECT (extract(epoch FROM first_expired) * 1000)::float8 AS first, (extract(epoch FROM expired_before) * 1000)::float8 AS before, expired_candles::int AS n
       FROM series_expiry WHERE series_id = $1`,
      [btcId],
    );
    expect(expiry).toEqual([{ first: T0, before: HORIZON, n: due }]);

    // The coarser buckets built from the expired candles survive them, value for value.
    for (const interval of ROLLUP_INTERVALS) {
      const page = { seriesId: btcId, interval, source: '1m' as const, lo: bucketStart(T0, interval), hi: bucketStart(HORIZON, interval) + INTERVAL_MS[interval] };
      expect(await rolledUpWindow(db, page, NOW - MIN), interval).toEqual(expected.get(interval));
    }

    // So does a resampled read of the expired days through the API's read path.
    const days = await readCandles(db, { seriesId: btcId, interval: '1d', source: '1m', resampled: true, perBucket: 1440 }, { start: T0, end: HORIZON, limit: 100, gaps: 'omit' });
    expect(days.candles.map((c) => c.openTime)).toEqual((expected.get('1d') as { candle: { openTime: number } }[]).map((b) => b.candle.openTime).filter((t) => t < HORIZON));
    expect(days.candles.map((c) => c.close)).toEqual((expected.get('1d') as { candle: { close: string } }[]).slice(0, days.candles.length).map((b) => b.candle.close));

    // A second run finds nothing due.
    expect(await applyRetention(db, { now: NOW })).toMatchObject({ complete: true, deleted: 0, batches: 0, series: [] });
  });

  it('shows the expired range in gaps as expired, not missing, and plans no backfill of it', async () => {
    const report = await findGaps(db, btc1m, { now: NOW });
    expect(report.range.start).toBe(T0);
    expect(report.holes).toEqual([
      { start: T0, end: HORIZON, kind: 'expired', candles: (HORIZON - T0) / MIN },
      { ...NEW_HOLE, kind: 'missing', candles: 30 },
    ]);
    expect(report).toMatchObject({ expiredCandles: (HORIZON - T0) / MIN, missingCandles: 30, retentionDays: 7, expiredBefore: HORIZON });
    expect(backfillRequestsForGaps(report).map((r) => [r.from, r.to])).toEqual([[NEW_HOLE.start, NEW_HOLE.end]]);

    // A backfill asked for the whole history plans from the horizon on, and says why.
    const whole = await planBackfill({ ...btc1m, from: T0 - DAY, to: NOW, requestedBy: 'test' }, { db, access: fakeAccess(fake) });
    expect(whole.status).toBe('planned');
    expect(whole.message).toContain('expired by retention (the series keeps 7 days)');
    const { rows: chunks } = await db.query<{ start: number }>(
      `SELECT (extract(epoch FROM min(range_start)) * 1000)::float8 AS start FROM backfill_chunks WHERE backfill_id = $1`,
      [whole.backfillId],
    );
    expect(chunks[0]!.start).toBeGreaterThanOrEqual(HORIZON);
    // One entirely before the horizon fetches nothing.
    const old = await planBackfill({ ...btc1m, from: T0, to: T0 + DAY, requestedBy: 'test' }, { db, access: fakeAccess(fake) });
    expect(old).toMatchObject({ status: 'done', chunks: 0 });
    expect(old.message).toMatch(/^nothing to fetch: .* is expired by retention/);
    // The 1d series keeps its candles forever: nothing of it is expired.
    expect((await findGaps(db, btc1d, { now: NOW })).holes.filter((h) => h.kind === 'expired')).toEqual([]);
  });

  it('keeps the expired range expired after retention is lifted, and deletes nothing more', async () => {
    await changeMarket(db, 'binance', 'BTC/USDT', { retention: { '1m': null } });
    const [market] = await listMarkets(db, { exchange: 'binance', symbol: 'BTC/USDT' });
    expect(market!.retentionDays).toEqual({ default: null, '1m': null, '1d': null });
    const later = NOW + 5 * DAY;
    expect(await applyRetention(db, { now: later })).toMatchObject({ deleted: 0, series: [] });
    const report = await findGaps(db, btc1m, { now: later, to: NOW });
    expect(report.holes[0]).toEqual({ start: T0, end: HORIZON, kind: 'expired', candles: (HORIZON - T0) / MIN });
    expect(report).toMatchObject({ retentionDays: null, expiredBefore: HORIZON });
  });

  it('deletes in bounded batches within its budget, and the next run resumes where it stopped', async () => {
    const sol: SeriesKey = { exchange: 'binance', symbol: 'SOL/USDT', interval: '1m' };
    await followMarkets(db, [{ exchange: 'binance', symbol: 'SOL/USDT', intervals: ['1m'], retention: { default: 1 } }]);
    const from = T0 + 2 * DAY;
    await write(sol, minutes(from, from + 5000 * MIN));
    const horizon = retentionHorizon(1, '1m', NOW);

    const dry = await applyRetention(db, { now: NOW, batchSize: 400, dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, deleted: 400, complete: false, batches: 0 });
    expect(dry.series).toMatchObject([{ symbol: 'SOL/USDT', deleted: 400, pending: true, horizon }]);
    expect(await count(sol)).toBe(5000);

    // A clock that moves 100 ms each time it is read: the budget runs out after a few batches.
    let t = 0;
    const first = await applyRetention(db, { now: NOW, batchSize: 400, budgetMs: 1000, clock: () => (t += 100) });
    expect(first.complete).toBe(false);
    expect(first.batches).toBeGreaterThan(0);
    expect(first.batches).toBeLessThan(5000 / 400);
    expect(first.deleted).toBe(400 * first.batches); // every batch full, none larger
    expect(first.series).toMatchObject([{ symbol: 'SOL/USDT', deleted: first.deleted, pending: true }]);
    expect(await count(sol)).toBe(5000 - first.deleted);
    // What is left is the newest part, contiguous: each batch took the oldest candles.
    const left = await readStored(db, sol, { from: T0, to: NOW });
    expect(left[0]!.openTime).toBe(from + first.deleted * MIN);

    const rest = await applyRetention(db, { now: NOW, batchSize: 400 });
    expect(rest).toMatchObject({ complete: true, deleted: 5000 - first.deleted });
    expect(await count(sol)).toBe(0);
    const solId = (await findSeriesId(db, sol))!;
    const { rows } = await db.query(`SELECT candles::int, first_open FROM series_stats WHERE series_id = $1`, [solId]);
    expect(rows[0]).toEqual({ candles: 0, first_open: null });
    // Everything it had is expired; the kept window holds nothing yet, which a backfill may fill.
    const forming = bucketStart(NOW, '1m');
    expect((await findGaps(db, sol, { now: NOW })).holes).toEqual([
      { start: from, end: horizon, kind: 'expired', candles: (horizon - from) / MIN },
      { start: horizon, end: forming, kind: 'missing', candles: (forming - horizon) / MIN },
    ]);
  });

  it('tells a backtest whose candles retention deleted since it was recorded that its data expired, not that it was restated', async () => {
    const ada: SeriesKey = { exchange: 'binance', symbol: 'ADA/USDT', interval: '1m' };
    await followMarkets(db, [{ exchange: 'binance', symbol: 'ADA/USDT', intervals: ['1m'] }]);
    await write(ada, minutes(T0, T0 + 3 * DAY));
    const instruments = [{ exchange: 'binance' as const, symbol: 'ADA/USDT', interval: '1h' as const }];
    const oldRun = await computeFingerprint(db, instruments, T0, T0 + DAY, Date.now() - 60_000);
    const newRun = await computeFingerprint(db, instruments, T0 + 2 * DAY, T0 + 3 * DAY, Date.now() - 60_000);
    expect(await checkFingerprints(db, [oldRun, newRun])).toEqual([
      { changed: false, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0, expired: false },
      { changed: false, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0, expired: false },
    ]);
    await changeMarket(db, 'binance', 'ADA/USDT', { retention: { default: 9 } });
    expect((await applyRetention(db, { now: NOW })).deleted).toBe(((retentionHorizon(9, '1m', NOW) - T0) / MIN));
    expect(await checkFingerprints(db, [oldRun, newRun])).toEqual([
      { changed: true, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0, expired: true },
      { changed: false, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0, expired: false },
    ]);
  });

  it("applies the seed list's retention to the markets it adds", async () => {
    await applySeed(db, [{ exchange: 'okx', symbol: 'ETH/USDT', intervals: ['1m', '1h', '1d'], start: '2024-01-01', retentionDays: { default: 30, '1m': 365, '1d': null } }]);
    const [m] = await listMarkets(db, { exchange: 'okx', symbol: 'ETH/USDT' });
    expect(m!.retentionDays).toEqual({ default: 30, '1m': 365, '1h': 30, '1d': null });
  });
});
