import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toRecord } from '../../../dev/event-source-runner.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { PostgresBudgetStore } from '../../../functions/exchanges/postgres-budget-store.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import { pullSeries } from '../../../functions/ingest/pull.ts';
import type { PullShard } from '../../../functions/ingest/pull-shards.ts';
import { createLogger, createMetrics, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { FRESHNESS_LAG_METRIC, SERIES_BEHIND_METRIC } from '../../../functions/pull/pull-lambda.ts';
import { createPullWorkerHandler, readPullWorkerConfig } from '../../../functions/pull/worker-lambda.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { followedSeries, followMarkets } from '../../../functions/store/markets.ts';
import { scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';
import { runTick } from '../../support/pull.ts';
import { testSqs } from '../../support/sqs.ts';
import { fakeAccess, MIN } from './support.ts';

let fake: FakeExchange;
let db: ScratchDatabase;
let pool: Db;
let sqs: SQSClient;
let clock = Date.UTC(2025, 5, 2, 12, 0, 5);

beforeAll(async () => {
  // The candles' clock is the test's: a series falls behind by moving it, not by waiting.
  fake = await startFakeExchange({ now: () => clock, enforceLimits: false });
  db = await scratchDatabase('ck_pullworker');
  pool = createPool(db.url, { max: 3 });
  sqs = testSqs();
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await fake?.close();
});

const context = { awsRequestId: 'w', functionName: 'pull-worker', getRemainingTimeInMillis: () => 50_000 } as unknown as Context;

function worker() {
  return createPullWorkerHandler(readPullWorkerConfig({ CANDLES_QUEUE_URL: 'https://sqs.example/unused', BACKFILL_BUS_NAME: 'unused' }), {
    db: async () => pool,
    sqs,
    access: () => fakeAccess(fake),
    events: async () => {
      throw new Error('no backfill expected');
    },
    sink: new DirectSink(pool, new CandleStore()),
    logger: createLogger(SERVICES.pullWorker, { logLevel: 'SILENT' }),
  });
}

const record = (id: string, body: string) => toRecord({ MessageId: id, ReceiptHandle: id, Body: body, Attributes: { ApproximateReceiveCount: '1' } }, 'arn:aws:sqs:us-east-1:000000000000:pull-work', 'us-east-1');

/** Runs `fn` with the metrics a Lambda would ship (JSON lines on stdout), returning them. */
async function emfOf<T>(fn: () => Promise<T>): Promise<{ result: T; emf: Record<string, unknown>[] }> {
  const printed: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    printed.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    const result = await fn();
    const lines = printed.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { result, emf: lines.filter((l) => l._aws !== undefined) };
  } finally {
    process.stdout.write = write;
  }
}

describe('the pull worker', () => {
  it('pulls a good shard and leaves one it cannot read for the dead-letter queue, saying nothing else failed', async () => {
    await followMarkets(pool, [{ exchange: 'bybit', symbol: 'ETH/USDT', intervals: ['1m'] }]);
    const [f] = await followedSeries(pool, ['1m']);
    const shard: PullShard = { v: 1, exchange: 'bybit', tick: Date.UTC(2025, 5, 2, 12, 0), sentAt: Date.UTC(2025, 5, 2, 12, 0, 2), concurrency: 1, series: [{ id: f!.seriesId, symbol: 'ETH/USDT', interval: '1m', start: null }] };
    const response = (await worker()(
      { Records: [record('bad-json', '{not json'), record('bad-version', JSON.stringify({ ...shard, v: 9 })), record('good', JSON.stringify(shard))] },
      context,
    )) as SQSBatchResponse;
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'bad-json' }, { itemIdentifier: 'bad-version' }]);
    const [after] = await followedSeries(pool, ['1m']);
    // The closed candle of 11:59 is stored; 12:00 still forms.
    expect(after!.closedThrough).toBe(Date.UTC(2025, 5, 2, 12, 0));
  });

  it("skips a shard a newer tick has superseded (redelivered after its worker died), calling no exchange", async () => {
    const [f] = await followedSeries(pool, ['1m']);
    const before = fake.stats('bybit').requests;
    const stale: PullShard = { v: 1, exchange: 'bybit', tick: clock - 3 * MIN, sentAt: clock - 3 * MIN + 2_000, concurrency: 1, series: [{ id: f!.seriesId, symbol: 'ETH/USDT', interval: '1m', start: null }] };
    expect(await worker()({ Records: [record('stale', JSON.stringify(stale))] }, context)).toEqual({ batchItemFailures: [] });
    expect(fake.stats('bybit').requests).toBe(before);
  });
});

describe("the pull worker's share of the budget", () => {
  /** Weight the shared budget holds for Bybit, in flight and answered. */
  async function bybitBudget(): Promise<{ flight: number; answered: number }> {
    const { rows } = await pool.query<{ flight: number; answered: number }>(
      `SELECT coalesce(sum((SELECT sum(x) FROM unnest(flight_weights) x)), 0)::int AS flight,
              coalesce(sum((SELECT sum(x) FROM unnest(weights) x)), 0)::int AS answered
       FROM rate_budgets WHERE key LIKE 'bybit%'`,
    );
    return rows[0]!;
  }

  it('sends the settles of its grants before it returns, so no grant it made stays in flight', async () => {
    await pool.query("DELETE FROM rate_budgets WHERE key LIKE 'bybit%'");
    await followMarkets(pool, [{ exchange: 'bybit', symbol: 'ETH/USDT', intervals: ['1m'] }]);
    const [f] = await followedSeries(pool, ['1m']);
    const series = { exchange: 'bybit' as const, symbol: 'ETH/USDT', interval: '1m' as const };
    const shard: PullShard = { v: 1, exchange: 'bybit', tick: Date.UTC(2025, 5, 2, 12, 0), sentAt: clock - 3_000, concurrency: 1, series: [{ id: f!.seriesId, symbol: series.symbol, interval: '1m', start: null }] };
    // No idle send within the test: only the worker's flush can settle the last grant.
    const store = new PostgresBudgetStore(pool, { settleDelayMs: 600_000 });
    const before = fake.stats('bybit').requests;
    const handler = createPullWorkerHandler(readPullWorkerConfig({ CANDLES_QUEUE_URL: 'https://sqs.example/unused', BACKFILL_BUS_NAME: 'unused' }), {
      db: async () => pool,
      sqs,
      access: () => fakeAccess(fake, { store }),
      events: async () => {
        throw new Error('no backfill expected');
      },
      sink: new DirectSink(pool, new CandleStore()),
      logger: createLogger(SERVICES.pullWorker, { logLevel: 'SILENT' }),
    });
    expect(await handler({ Records: [record('budget', JSON.stringify(shard))] }, context)).toEqual({ batchItemFailures: [] });
    expect(fake.stats('bybit').requests).toBeGreaterThan(before);
    expect(store.pendingSettles).toBe(0);
    const held = await bybitBudget();
    expect(held.flight).toBe(0);
    expect(held.answered).toBeGreaterThan(0);

    // The same pull without the worker around it leaves its last settle queued (what the worker's flush sends).
    const bare = new PostgresBudgetStore(pool, { settleDelayMs: 600_000 });
    await pullSeries([{ series }], { db: pool, access: fakeAccess(fake, { store: bare }), sink: new DirectSink(pool, new CandleStore()) });
    expect(bare.pendingSettles).toBeGreaterThan(0);
    expect((await bybitBudget()).flight).toBeGreaterThan(0);
    await bare.flush();
    expect((await bybitBudget()).flight).toBe(0);
  });
});

describe('freshness published by the tick', () => {
  it('reports no series behind while each one is current, then the series that missed a boundary, with its lag', async () => {
    const disabled = process.env.POWERTOOLS_METRICS_DISABLED;
    process.env.POWERTOOLS_METRICS_DISABLED = 'false';
    const metrics = createMetrics(SERVICES.pull);
    process.env.POWERTOOLS_METRICS_DISABLED = disabled;
    const tick = () =>
      runTick(['1m'], { db: async () => pool, sqs, access: () => fakeAccess(fake), sink: new DirectSink(pool, new CandleStore()), metrics, logger: createLogger(SERVICES.pull, { logLevel: 'SILENT' }) });

    // 12:01:02: the 12:00 candle closed a minute ago and is due; the newest stored one (11:59) is not late yet.
    clock = Date.UTC(2025, 5, 2, 12, 1, 2);
    const current = await emfOf(tick);
    expect(current.result.tick).toMatchObject({ series: 1, due: 1, behind: 0, lagMaxMs: 2_000 });
    expect(current.emf.find((l) => SERIES_BEHIND_METRIC in l)).toMatchObject({ [SERIES_BEHIND_METRIC]: 0, [FRESHNESS_LAG_METRIC]: 2_000, service: 'candlekeep-pull' });

    // The market is paused over three boundaries, so nothing pulls it; followed again at 12:04:02 it is 3 minutes late.
    await pool.query("UPDATE markets SET paused = true WHERE exchange = 'bybit' AND symbol = 'ETH/USDT'");
    clock = Date.UTC(2025, 5, 2, 12, 4, 2);
    expect((await tick()).tick).toMatchObject({ series: 0, behind: 0 });
    await pool.query("UPDATE markets SET paused = false WHERE exchange = 'bybit' AND symbol = 'ETH/USDT'");
    const late = await emfOf(tick);
    // Newest closed stored: 12:00 (pulled at 12:01); 12:01 closed at 12:02, so it is 2 min 2 s late.
    expect(late.result.tick).toMatchObject({ series: 1, due: 1, behind: 1, lagMaxMs: 122_000 });
    expect(late.emf.find((l) => SERIES_BEHIND_METRIC in l)).toMatchObject({ [SERIES_BEHIND_METRIC]: 1, [FRESHNESS_LAG_METRIC]: 122_000 });
    // That tick pulled it back: the next one finds it current.
    clock = Date.UTC(2025, 5, 2, 12, 5, 2);
    expect((await tick()).tick).toMatchObject({ behind: 0, lagMaxMs: 2_000 });
  });
});
