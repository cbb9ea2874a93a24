import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeExchange, type FakeExchange } from '../../dev/fake-exchange/server.ts';
import { checkFingerprints, computeFingerprint } from '../../functions/backtests/fingerprint.ts';
import { createBacktestSchema } from '../../functions/backtests/record.ts';
import { createBacktest } from '../../functions/backtests/runs.ts';
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
import { runCli } from '../support/cli.ts';
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
let dir: string;
const store = new CandleStore();

beforeAll(async () => {
  iso = await isolatedDatabase(4);
  db = iso.pool;
  fake = await startFakeExchange({ enforceLimits: false, now: () => NOW, listedAt: Date.UTC(2020, 0, 1) });
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-retention-'));
}, 120_000);
afterAll(async () => {
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
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

type Bucket = Awaited<ReturnType<typeof resampledWindow>>[number];
/** Per rollup interval, the buckets of btc 1m from T0 through the one holding the horizon, resampled before retention ran. */
const resampledBefore = new Map<string, Bucket[]>();
/** Rollup intervals with a bucket the horizon falls inside (Monday 2024-03-04 12:00: the day's and the week's). */
const STRADDLING = ROLLUP_INTERVALS.filter((i) => bucketStart(HORIZON, i) !== HORIZON);

async function rollupRows(seriesId: number, where = 'true', params: readonly unknown[] = []) {
  const { rows } = await db.query<{ interval: string; t: number; stale: boolean; n: number | null }>(
    `SELECT interval, (extract(epoch FROM open_time) * 1000)::float8 AS t, stale, source_candles AS n FROM candle_rollups
     WHERE series_id = $1 AND ${where} ORDER BY interval, open_time`,
    [seriesId, ...params],
  );
  return rows;
}

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
    for (const interval of ROLLUP_INTERVALS) {
      const page = { seriesId: btcId, interval, source: '1m' as const, lo: bucketStart(T0, interval), hi: bucketStart(HORIZON, interval) + INTERVAL_MS[interval] };
      resampledBefore.set(interval, await resampledWindow(db, page));
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

    // A second run finds nothing due.
    expect(await applyRetention(db, { now: NOW })).toMatchObject({ complete: true, deleted: 0, batches: 0, series: [] });
  });

  it('deletes the rollups of the expired range, and keeps the bucket straddling the horizon as built from all its candles', async () => {
    expect(STRADDLING).toEqual(['1d', '1w']);
    const btcId = (await findSeriesId(db, btc1m))!;
    const whole = (interval: string) => resampledBefore.get(interval)!.filter((b) => b.candle.openTime === bucketStart(HORIZON, interval as '1d'));
    // Before the horizon only the straddling buckets are left, kept (not stale), with every source candle of the bucket.
    expect(await rollupRows(btcId, 'open_time < to_timestamp($2::float8 / 1000)', [HORIZON])).toEqual(
      STRADDLING.map((i) => ({ interval: i, t: bucketStart(HORIZON, i), stale: false, n: whole(i)[0]!.sourceCandles })),
    );
    expect(whole('1d')[0]!.sourceCandles).toBe(1440);
    for (const interval of STRADDLING) {
      const lo = bucketStart(HORIZON, interval);
      const page = { seriesId: btcId, interval, source: '1m' as const, lo, hi: lo + INTERVAL_MS[interval] };
      expect(await rolledUpWindow(db, page, NOW - MIN), interval).toEqual(whole(interval));
    }
    // A resampled read of the expired range: nothing of the days wholly expired, the straddling day whole.
    const src = { seriesId: btcId, interval: '1d' as const, source: '1m' as const, resampled: true, perBucket: 1440 };
    const days = await readCandles(db, src, { start: T0, end: HORIZON, limit: 100, gaps: 'omit' });
    expect(days.candles.map((c) => [c.openTime, c.open, c.close, c.volume, c.closed])).toEqual(
      whole('1d').map((b) => [b.candle.openTime, b.candle.open, b.candle.close, b.candle.volume, true]),
    );

    // A restatement in the stored part of the straddling day marks its bucket; it is still served
    // as kept, never rebuilt from the half day that is left.
    const t = HORIZON + 10 * MIN;
    const [row] = (await readStored(db, btc1m, { from: t, to: t + MIN })).map((c) => [c.openTime, c.open, c.high, c.low, '99.99', c.volume, c.quoteVolume, c.trades, 1] as CandleRow);
    await store.write(db, [{ v: 1, ...btc1m, fetchedAt: NOW + MIN, rows: [row!], range: [t, t + MIN] }]);
    const day = bucketStart(HORIZON, '1d');
    expect(await rollupRows(btcId, `interval = '1d' AND open_time = to_timestamp($2::float8 / 1000)`, [day])).toMatchObject([{ stale: true, n: 1440 }]);
    const page = { seriesId: btcId, interval: '1d' as const, source: '1m' as const, lo: day, hi: day + DAY };
    expect(await rolledUpWindow(db, page, NOW - MIN)).toEqual(whole('1d'));

    // A straddling bucket with nothing kept is built from what is left for the answer only: not
    // kept, and not closed, so it does not pass for the whole week.
    const week = bucketStart(HORIZON, '1w');
    await db.query(`DELETE FROM candle_rollups WHERE series_id = $1 AND interval = '1w' AND open_time = to_timestamp($2::float8 / 1000)`, [btcId, week]);
    const [partial, ...more] = await rolledUpWindow(db, { seriesId: btcId, interval: '1w', source: '1m', lo: week, hi: week + 7 * DAY }, NOW - MIN);
    expect(more).toEqual([]);
    expect(partial!.candle.closed).toBe(false);
    expect(partial!.sourceCandles).toBe(await count(btc1m, 'open_time >= to_timestamp($2::float8 / 1000) AND open_time < to_timestamp($3::float8 / 1000)', [week, week + 7 * DAY]));
    expect(partial!.sourceCandles).toBeLessThan(whole('1w')[0]!.sourceCandles);
    expect(await rollupRows(btcId, `interval = '1w' AND open_time = to_timestamp($2::float8 / 1000)`, [week])).toEqual([]);
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

  it('`backtests reproduce` of a run whose candles retention deleted says so, naming retention', async () => {
    const xrp: SeriesKey = { exchange: 'binance', symbol: 'XRP/USDT', interval: '1m' };
    await followMarkets(db, [{ exchange: 'binance', symbol: 'XRP/USDT', intervals: ['1m'] }]);
    await write(xrp, minutes(T0, T0 + 3 * DAY));
    const body = {
      strategy: 'sma-cross',
      strategyVersion: '1',
      parameters: { fast: 5 },
      instruments: [{ exchange: 'binance' as const, symbol: 'XRP/USDT', interval: '1h' as const }],
      start: T0,
      end: T0 + DAY,
      metrics: { totalReturn: 0.01 },
      tags: [],
    };
    const { run } = await createBacktest(db, createBacktestSchema.parse(body), { now: Date.now() - 60_000 });
    const reproduce = (out: string) => runCli(['backtests', 'reproduce', run.id, '--out', join(dir, out), '--quiet'], { DATABASE_URL: iso.url });

    const before = await reproduce('before');
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toContain('fingerprint matches');

    await changeMarket(db, 'binance', 'XRP/USDT', { retention: { default: 9 } });
    const cut = retentionHorizon(9, '1m', NOW);
    expect(cut).toBeGreaterThan(T0 + DAY);
    await applyRetention(db, { now: NOW });

    const after = await reproduce('after');
    expect(after.code, after.stderr).toBe(1);
    expect(after.stdout, after.stderr).toContain('cannot reproduce: retention has deleted candles this run read');
    expect(after.stdout).toContain(
      `binance XRP/USDT 1m: 1440 of the 1440 candles the run read were deleted by retention since it ran (the series keeps no candles before ${new Date(cut).toISOString()})`,
    );
    expect(after.stdout).not.toMatch(/candles as of the run where the run saw/);
    // The file is still written, with the columns and none of the deleted candles.
    expect(after.stdout).toContain('holds only the candles retention left (0 as of the run)');
    expect(existsSync(join(dir, 'after', 'candles.parquet'))).toBe(true);
    const json = await runCli(['backtests', 'reproduce', run.id, '--out', join(dir, 'json'), '--json', '--quiet'], { DATABASE_URL: iso.url });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      matches: false,
      expired: [{ exchange: 'binance', symbol: 'XRP/USDT', source: '1m', missing: 1440, expiredBefore: new Date(cut).toISOString() }],
    });
  });

  it('deletes the optional fields (candle_extras) of the candles it expires, and touches no other row', async () => {
    const bnb: SeriesKey = { exchange: 'binance', symbol: 'BNB/USDT', interval: '1m' };
    const bnbKept: SeriesKey = { exchange: 'binance', symbol: 'BNB/BTC', interval: '1m' };
    await followMarkets(db, [
      { exchange: 'binance', symbol: 'BNB/USDT', intervals: ['1m'], retention: { default: 2 } },
      { exchange: 'binance', symbol: 'BNB/BTC', intervals: ['1m'] },
    ]);
    // Every other candle carries taker-buy volumes; the second series (kept forever) has them too.
    const from = bucketStart(NOW - 4 * DAY, '1m');
    const withExtras = (series: SeriesKey, times: number[]) => {
      const rows = times.map((t, i): CandleRow => (i % 2 === 0 ? [...(candleRow(t, i) as [number, string, string, string, string, string, string | null, number | null, 0 | 1]), `${i}.5`, `${i * 100}.25`, null] : candleRow(t, i)));
      return store.write(db, [{ v: 1, ...series, fetchedAt: NOW, rows, range: [times[0]!, times.at(-1)! + MIN] }]);
    };
    await withExtras(bnb, minutes(from, from + 3 * DAY));
    await withExtras(bnbKept, minutes(from, from + 3 * DAY));
    const bnbId = (await findSeriesId(db, bnb))!;
    const horizon = retentionHorizon(2, '1m', NOW);
    const snapshot = async (table: 'candles' | 'candle_extras') =>
      (await db.query(`SELECT * FROM ${table} ORDER BY series_id, open_time`)).rows as { series_id: number; open_time: Date }[];
    const [candlesBefore, extrasBefore] = [await snapshot('candles'), await snapshot('candle_extras')];
    const expiring = (r: { series_id: number; open_time: Date }) => r.series_id === bnbId && r.open_time.getTime() < horizon;
    expect(extrasBefore.filter(expiring).length).toBe((horizon - from) / MIN / 2);
    expect(extrasBefore.filter((r) => r.series_id === bnbId && !expiring(r)).length).toBeGreaterThan(0);

    const report = await applyRetention(db, { now: NOW, batchSize: 500 });
    expect(report.series).toMatchObject([{ symbol: 'BNB/USDT', deleted: (horizon - from) / MIN, pending: false }]);
    // Exactly the expired candles and their extras are gone; every other row of both tables is as it was.
    expect(await snapshot('candle_extras')).toEqual(extrasBefore.filter((r) => !expiring(r)));
    expect(await snapshot('candles')).toEqual(candlesBefore.filter((r) => !expiring(r)));
  });

  it("applies the seed list's retention to the markets it adds", async () => {
    await applySeed(db, [{ exchange: 'okx', symbol: 'ETH/USDT', intervals: ['1m', '1h', '1d'], start: '2024-01-01', retentionDays: { default: 30, '1m': 365, '1d': null } }]);
    const [m] = await listMarkets(db, { exchange: 'okx', symbol: 'ETH/USDT' });
    expect(m!.retentionDays).toEqual({ default: 30, '1m': 365, '1h': 30, '1d': null });
  });
});
