import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventSourceRunner } from '../../../dev/event-source-runner.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import type { BackfillRequest } from '../../../functions/ingest/backfill-request.ts';
import { DirectSink, QueueSink } from '../../../functions/ingest/candle-sink.ts';
import { pullLatest, pullRange, type PullDeps } from '../../../functions/ingest/pull.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { loadCoverage } from '../../../functions/store/coverage.ts';
import type { Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { testPool } from '../../support/db.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { testWriter, type SqsHandler } from '../../support/handlers.ts';
import { pollUntil } from '../../support/poll.ts';
import { createQueues, queueDepth, testSqs, type TestQueues } from '../../support/sqs.ts';
import { asStored, fakeAccess, MIN, resetSeries, storedCandles } from './support.ts';

let db: Db;
let fake: FakeExchange;
let clock = Date.UTC(2025, 5, 2, 12, 0, 30);
let sqs: SQSClient;
let queues: TestQueues;
let writer: SqsHandler;
let closeWriter: () => Promise<void>;

beforeAll(async () => {
  db = testPool(4);
  // The candles' clock is the test's: a missed tick is a jump of the clock, not minutes of waiting.
  fake = await startFakeExchange({ now: () => clock, enforceLimits: false });
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: 3, visibilityTimeout: 5 });
  ({ handler: writer, close: closeWriter } = testWriter({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: process.env.DATABASE_URL! }));
});

afterAll(async () => {
  await closeWriter?.();
  await fake?.close();
  await queues?.delete();
  await db?.end();
});

/** Runs the writer Lambda on the queue (as its event source mapping would) until the queue is empty. */
async function drainThroughWriter(): Promise<void> {
  const runner = startEventSourceRunner({ sqs, queueUrl: queues.queueUrl, queueArn: queues.queueArn, handler: writer, batchSize: 10, maxBatchingWindowMs: 200, waitTimeSeconds: 1 });
  try {
    await pollUntil(async () => (await queueDepth(sqs, queues.queueUrl)) === 0, { timeoutMs: 30_000, description: 'the candles queue to drain' });
  } finally {
    await runner.stop();
  }
  expect(runner.stats.handlerErrors).toBe(0);
}

describe('scheduled pull through the candles queue and the writer Lambda', () => {
  const series: SeriesKey = { exchange: 'bybit', symbol: 'SOL/USDT', interval: '1m' };

  it('heals a missed tick with exactly the missing candles; the forming candle is stored open, then closed', async () => {
    await resetSeries(db, [series]);
    const access = fakeAccess(fake);
    const sink = new QueueSink(sqs, queues.queueUrl);
    const start = Date.UTC(2025, 5, 2, 11, 50);

    // Tick 1 at 12:00:30: from the market's start to now; 12:00 is still forming.
    clock = Date.UTC(2025, 5, 2, 12, 0, 30);
    const first = await pullLatest(series, { start }, { db, access, sink });
    expect(first).toMatchObject({ range: { start, end: Date.UTC(2025, 5, 2, 12, 1) }, candles: 11, closed: 10, open: 1 });
    await drainThroughWriter();
    let stored = await storedCandles(db, series, start, Date.UTC(2025, 5, 2, 13));
    expect(stored).toEqual(asStored(fake.expected('bybit', series.symbol, '1m', start, clock)));
    expect(stored.at(-1)).toMatchObject({ openTime: Date.UTC(2025, 5, 2, 12, 0), closed: false });

    // Ticks at 12:01 .. 12:05 never ran. Tick 2 at 12:05:20 starts from the watermark (11:59, the
    // newest closed candle), so it refetches the 12:00 bucket and the missed ones, nothing older.
    const before = fake.requests('bybit').length;
    clock = Date.UTC(2025, 5, 2, 12, 5, 20);
    const second = await pullLatest(series, { start }, { db, access, sink });
    expect(second).toMatchObject({ range: { start: Date.UTC(2025, 5, 2, 12, 0), end: Date.UTC(2025, 5, 2, 12, 6) }, candles: 6, closed: 5, open: 1 });
    const asked = fake.requests('bybit').slice(before);
    expect(asked.map((r) => Number(r.query.start))).toEqual([Date.UTC(2025, 5, 2, 12, 0)]);
    await drainThroughWriter();

    stored = await storedCandles(db, series, start, Date.UTC(2025, 5, 2, 13));
    expect(stored).toHaveLength(16); // 11:50 .. 12:05, each once
    expect(stored).toEqual(asStored(fake.expected('bybit', series.symbol, '1m', start, clock)));
    expect(stored.find((c) => c.openTime === Date.UTC(2025, 5, 2, 12, 0))?.closed).toBe(true);
    expect(stored.at(-1)).toMatchObject({ openTime: Date.UTC(2025, 5, 2, 12, 5), closed: false });

    // The ledger holds what was asked, as one growing row: closed buckets up to the forming one.
    const id = (await findSeriesId(db, series))!;
    expect(await loadCoverage(db, id, { start: 0, end: Date.UTC(2030, 0, 1) })).toEqual([
      { start, end: Date.UTC(2025, 5, 2, 12, 5), candles: 15 },
    ]);
  });
});

/** The CLI's wiring: candles go straight into PostgreSQL through the writer step, two pages per window. */
const directDeps = (more: Partial<PullDeps> = {}): PullDeps => ({
  db,
  access: fakeAccess(fake),
  sink: new DirectSink(db, new CandleStore()),
  maxPages: 2,
  ...more,
});

describe('pull writing directly to the database (the CLI path)', () => {
  const series: SeriesKey = { exchange: 'okx', symbol: 'SOL/USDT', interval: '5m' };

  it('fetches a range window by window through the writer step, forming candle open', async () => {
    await resetSeries(db, [series]);
    clock = Date.UTC(2025, 5, 3, 8, 2, 0);
    const from = Date.UTC(2025, 4, 20);
    const progress: number[] = [];
    const result = await pullRange(series, { start: from, end: Date.UTC(2025, 5, 4) }, directDeps({ onProgress: (p) => progress.push(p.through) }));
    const expected = fake.expected('okx', series.symbol, '5m', from, clock);
    expect(result).toMatchObject({ candles: expected.length, open: 1, written: expected.length });
    expect(progress.length).toBeGreaterThan(3); // 600 candles per window
    expect(await storedCandles(db, series, from, Date.UTC(2025, 5, 4))).toEqual(asStored(expected));
  });
});

describe('a hole longer than one pull', () => {
  const series: SeriesKey = { exchange: 'binance', symbol: 'ETH/USDT', interval: '5m' };

  it('fetches the newest part now and hands the rest to the backfill path', async () => {
    await resetSeries(db, [series]);
    const start = Date.UTC(2025, 0, 1);
    clock = Date.UTC(2025, 5, 10, 0, 0, 10); // five months after the market's start, nothing stored
    const requested: BackfillRequest[] = [];
    const result = await pullLatest(series, { start }, directDeps({ requestBackfill: async (req) => void requested.push(req) }));
    // Two pages of 1000 five-minute candles end at the forming bucket; everything older is a backfill.
    const inlineFrom = Date.UTC(2025, 5, 10) + 5 * MIN - 2000 * 5 * MIN;
    expect(requested).toEqual([{ ...series, from: start, to: inlineFrom, requestedBy: 'pull' }]);
    expect(result).toMatchObject({ range: { start: inlineFrom }, candles: 2000, pages: 2, backfill: { start, end: inlineFrom } });
    expect(await storedCandles(db, series, start, inlineFrom)).toEqual([]);
  });
});
