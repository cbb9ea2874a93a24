import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill, planBackfillInTurn } from '../../../functions/ingest/backfill-planner.ts';
import { getBackfillProgress } from '../../../functions/ingest/backfill-progress.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { runBackfillWorker } from '../../../functions/ingest/backfill-worker.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import { findGaps } from '../../../functions/ingest/gaps.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { loadCoverage } from '../../../functions/store/coverage.ts';
import type { Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { testPool } from '../../support/db.ts';
import { pollUntil } from '../../support/poll.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { asStored, fakeAccess, HOUR, resetSeries, storedCandles } from './support.ts';

const OKX_LISTED = Date.UTC(2024, 2, 10, 7, 0);

let db: Db;
let fake: FakeExchange;

beforeAll(async () => {
  db = testPool(6);
  fake = await startFakeExchange({
    enforceLimits: false,
    listedAt: (exchange, symbol) => (exchange === 'okx' && symbol === 'ETH/USDT' ? OKX_LISTED : undefined),
  });
});
afterAll(async () => {
  await fake?.close();
  await db?.end();
});

const chunkOf = (chunks: { start: number; end: number; chunkNo: number }[], t: number) => chunks.find((c) => t >= c.start && t < c.end)?.chunkNo;

describe('a backfill interrupted half-way', () => {
  const series: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1h' };
  const [from, to] = [Date.UTC(2022, 0, 1), Date.UTC(2024, 0, 1)];

  it('resumes after the dead worker’s lease, with every candle exactly once and no finished chunk fetched again', async () => {
    await resetSeries(db, [series]);
    const plan = await planBackfill({ ...series, from, to }, { db, access: fakeAccess(fake), chunkPages: 2 });
    expect(plan).toMatchObject({ status: 'planned', chunks: 9, probes: 1 }); // 17,520 hours in chunks of 2,000
    const planRequests = fake.requests('binance').length;

    // Worker 1 dies on its 10th request: four chunks of two pages are done, the fifth is half fetched.
    const killer = new AbortController();
    let calls = 0;
    const dying = fakeAccess(fake, {
      fetch: (input, init) => {
        if (++calls === 10) killer.abort(new Error('worker killed'));
        return fetch(input, init);
      },
    });
    const sink = new DirectSink(db, new CandleStore());
    await expect(runBackfillWorker({ db, access: dying, sink, workerId: 'worker-1', leaseMs: 1_500, signal: killer.signal, backfillId: plan.backfillId })).rejects.toThrow();

    const { rows: atCrash } = await db.query<{ chunk_no: number; status: string; claimed_by: string | null; s: number; e: number }>(
      `SELECT chunk_no, status, claimed_by, (extract(epoch FROM range_start) * 1000)::float8 AS s, (extract(epoch FROM range_end) * 1000)::float8 AS e
       FROM backfill_chunks WHERE backfill_id = $1 ORDER BY chunk_no`,
      [plan.backfillId],
    );
    const chunks = atCrash.map((c) => ({ chunkNo: c.chunk_no, start: Number(c.s), end: Number(c.e) }));
    const doneAtCrash = atCrash.filter((c) => c.status === 'done').map((c) => c.chunk_no);
    expect(doneAtCrash).toEqual([1, 2, 3, 4]);
    expect(atCrash[4]).toMatchObject({ status: 'claimed', claimed_by: 'worker-1' }); // left to its lease, as a crash leaves it
    const progressAtCrash = await getBackfillProgress(db, plan.backfillId);
    expect(progressAtCrash).toMatchObject({ status: 'running', chunks: { total: 9, done: 4 }, candlesWritten: 8_000 });
    const requestsAtCrash = fake.requests('binance').length;

    // A fresh worker (another process, another governor) takes over once the lease runs out.
    const final = await runBackfillLocally(plan.backfillId, { db, access: fakeAccess(fake), sink, workerId: 'worker-2' }, { workers: 2 });
    expect(final).toMatchObject({ status: 'done', chunks: { total: 9, done: 9, failed: 0 }, candlesWritten: 17_520, etaSeconds: null });

    const after = fake.requests('binance').slice(requestsAtCrash).map((r) => Number(r.query.startTime));
    expect(after.length).toBeGreaterThan(0);
    for (const t of after) expect(doneAtCrash).not.toContain(chunkOf(chunks, t));
    // The half-fetched chunk is the only one fetched twice, and each other chunk's first page was asked once.
    const firstPages = fake.requests('binance').slice(planRequests).filter((r) => chunks.some((c) => c.start === Number(r.query.startTime))).map((r) => Number(r.query.startTime));
    const counts = new Map<number, number>();
    for (const t of firstPages) counts.set(t, (counts.get(t) ?? 0) + 1);
    expect([...counts.entries()].filter(([, n]) => n > 1).map(([t]) => chunkOf(chunks, t))).toEqual([5]);

    const stored = await storedCandles(db, series, from, to);
    expect(stored).toHaveLength(17_520);
    expect(new Set(stored.map((c) => c.openTime)).size).toBe(17_520);
    expect(stored).toEqual(asStored(fake.expected('binance', series.symbol, '1h', from, to - 1)));
  });
});

describe('planners running at the same time', () => {
  const series: SeriesKey = { exchange: 'binance', symbol: 'ETH/USDT', interval: '1h' };
  const [from, to] = [Date.UTC(2023, 0, 1), Date.UTC(2023, 6, 1)];

  it('take turns per series, so two requests for one range plan it once (no reserved concurrency needed)', async () => {
    await resetSeries(db, [series]);
    // The first planner's listing probe is held until the second planner has started and is waiting.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let probing!: () => void;
    const probeStarted = new Promise<void>((resolve) => (probing = resolve));
    const slow = fakeAccess(fake, {
      fetch: async (input, init) => {
        probing();
        await held;
        return fetch(input, init);
      },
    });
    const first = planBackfillInTurn({ ...series, from, to, requestId: `turn-a-${Date.now()}` }, { db, access: slow, chunkPages: 1 });
    await probeStarted;
    const second = planBackfillInTurn({ ...series, from, to, requestId: `turn-b-${Date.now()}` }, { db, access: fakeAccess(fake), chunkPages: 1 });
    // The second waits for the first's turn while the first is still probing.
    await pollUntil(
      async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0]!.n > 0,
      { description: 'the second planner waiting for its turn', timeoutMs: 20_000 },
    );
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toMatchObject({ status: 'planned', created: true });
    expect(a.chunks).toBeGreaterThan(0);
    expect(b).toMatchObject({ status: 'done', chunks: 0, created: true });
    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM backfill_chunks WHERE backfill_id = ANY($1::bigint[])',
      [[a.backfillId, b.backfillId]],
    );
    expect(rows[0]!.n).toBe(a.chunks);
  });

  it('without the turn, the same two requests would both plan the range', async () => {
    // The negative control: planBackfill alone (what the planner ran with reserved concurrency 1).
    await resetSeries(db, [series]);
    // Both read what is known before either records its plan, however the machine schedules them:
    // each planner's first exchange call (its listing probe, after that read) waits for the other's.
    let arrived = 0;
    let bothRead!: () => void;
    const both = new Promise<void>((resolve) => (bothRead = resolve));
    const meeting = (): typeof fetch => {
      let first = true;
      return async (input, init) => {
        if (first) {
          first = false;
          if (++arrived === 2) bothRead();
          await both;
        }
        return fetch(input, init);
      };
    };
    const [a, b] = await Promise.all([
      planBackfill({ ...series, from, to }, { db, access: fakeAccess(fake, { fetch: meeting() }), chunkPages: 1 }),
      planBackfill({ ...series, from, to }, { db, access: fakeAccess(fake, { fetch: meeting() }), chunkPages: 1 }),
    ]);
    expect(a.chunks).toBeGreaterThan(0);
    expect(b.chunks).toBe(a.chunks);
  });
});

describe('listing discovery', () => {
  const series: SeriesKey = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1h' };

  it('binary-searches where the market starts instead of walking years of empty pages, and records the empty years', async () => {
    await resetSeries(db, [series]);
    const from = Date.UTC(2020, 0, 1);
    const to = Date.UTC(2024, 5, 1);
    const plan = await planBackfill({ ...series, from, to }, { db, access: fakeAccess(fake) });
    const progress = await getBackfillProgress(db, plan.backfillId);
    const listedAt = Date.parse(progress!.listedAt!);
    // Within one page (300 hours) before the real listing, in a handful of probes (4.4 years is ~128 pages).
    expect(listedAt).toBeLessThanOrEqual(OKX_LISTED);
    expect(OKX_LISTED - listedAt).toBeLessThan(300 * HOUR);
    expect(plan.probes).toBeLessThanOrEqual(10);
    expect(plan.chunks).toBe(1); // ~2,000 hours from the listing: one chunk of 3,000

    const seriesId = (await findSeriesId(db, series))!;
    expect(await loadCoverage(db, seriesId, { start: from, end: to })).toEqual([{ start: from, end: listedAt, candles: 0 }]);

    const requestsBefore = fake.requests('okx').length;
    await runBackfillLocally(plan.backfillId, { db, access: fakeAccess(fake), sink: new DirectSink(db, new CandleStore()) });
    expect(fake.requests('okx').length - requestsBefore).toBeLessThanOrEqual(10);
    expect(await storedCandles(db, series, from, to)).toEqual(asStored(fake.expected('okx', series.symbol, '1h', from, to - 1)));

    // The years before the listing are confirmed empty, not missing.
    const gaps = await findGaps(db, series, { from, to, now: fake.now() });
    expect(gaps.holes).toEqual([{ start: from, end: OKX_LISTED, kind: 'empty', candles: (OKX_LISTED - from) / HOUR }]);

    // Asking again plans nothing: everything is in the ledger.
    const again = await planBackfill({ ...series, from, to }, { db, access: fakeAccess(fake) });
    expect(again).toMatchObject({ status: 'done', chunks: 0, message: 'nothing to fetch: every bucket is already fetched' });
  });
});

describe('an exchange with limited history', () => {
  const series: SeriesKey = { exchange: 'kraken', symbol: 'BTC/USD', interval: '1h' };

  it('backfills what Kraken serves and ends `unsupported`, naming the part it cannot serve', async () => {
    await resetSeries(db, [series]);
    const now = fake.now();
    const forming = Math.floor(now / HOUR) * HOUR;
    const from = forming - 60 * 24 * HOUR;
    const plan = await planBackfill({ ...series, from, to: forming }, { db, access: fakeAccess(fake) });
    expect(plan.message).toMatch(/^kraken serves only its newest 720 1h candles \(from .*\); .* cannot be backfilled from this exchange$/);
    const final = await runBackfillLocally(plan.backfillId, { db, access: fakeAccess(fake), sink: new DirectSink(db, new CandleStore()) });
    expect(final).toMatchObject({ status: 'unsupported', message: plan.message, chunks: { done: final.chunks.total } });
    const servable = forming - 719 * HOUR;
    const stored = await storedCandles(db, series, from, forming);
    expect(stored[0]?.openTime).toBe(servable);
    expect(stored).toHaveLength(719);
    // What Kraken cannot serve stays missing (not "confirmed empty"): a hole nobody could check.
    const gaps = await findGaps(db, series, { from, to: forming, now: fake.now() });
    expect(gaps.holes).toEqual([{ start: from, end: servable, kind: 'missing', candles: (servable - from) / HOUR }]);
  });

  it('says so at once for an interval the exchange does not offer', async () => {
    const plan = await planBackfill({ exchange: 'coinbase', symbol: 'BTC/USD', interval: '4h', from: Date.UTC(2024, 0, 1), to: Date.UTC(2024, 1, 1) }, { db, access: fakeAccess(fake) });
    expect(plan).toMatchObject({ status: 'unsupported', chunks: 0, problem: 'unsupported-interval', message: 'coinbase has no 4h candles (it offers 1m 5m 15m 1h 6h 1d)' });
  });
});
