/**
 * Fan-out under the shared budget: about 120 series on the five exchanges, cut into shards and
 * pulled by ten pull workers at once. Each worker is built like its own Lambda container (its own
 * pool, governor and PostgresBudgetStore, as liveExchangeAccess makes them), so PostgreSQL is the
 * only thing they share. The fake exchange answers over HTTP, enforces every published limit and
 * holds each answer for a while, as a real exchange's round trip would. Not one 429 or 418.
 */
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toRecord } from '../../../dev/event-source-runner.ts';
import { fakeListings } from '../../../dev/fake-exchange/series.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { EXCHANGES, type Exchange } from '../../../functions/candles/candle.ts';
import { bucketStart, type Interval } from '../../../functions/candles/intervals.ts';
import { liveExchangeAccess } from '../../../functions/exchanges/access.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import { planShards, type PullShard } from '../../../functions/ingest/pull-shards.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { createPullWorkerHandler, readPullWorkerConfig } from '../../../functions/pull/worker-lambda.ts';
import type { SqsClient } from '../../../functions/queue/send.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { followedSeries, followMarkets } from '../../../functions/store/markets.ts';
import { scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';
import { HOUR } from './support.ts';

const WORKERS = 10;
const INTERVALS: Interval[] = ['1m', '5m', '1h'];
/** Markets per exchange, each followed at three intervals: 120 series, weighted like bench:live but with enough on the tight budgets to fill them. */
const MARKETS: Record<Exchange, number> = { binance: 11, bybit: 11, okx: 8, coinbase: 6, kraken: 4 };

let fake: FakeExchange;
let db: ScratchDatabase;
let admin: Db;
/** One pool per worker, as each Lambda container has its own. */
let pools: Db[] = [];

beforeAll(async () => {
  // A database of its own: its budgets and bans are this test's alone, and so are its followed markets.
  db = await scratchDatabase('ck_fanout');
  admin = createPool(db.url, { max: 2 });
  pools = Array.from({ length: WORKERS }, () => createPool(db.url, { max: 2 }));
  fake = await startFakeExchange({ latencyMs: [20, 80] });
});

afterAll(async () => {
  await Promise.all([admin, ...pools].filter(Boolean).map((p) => p.end()));
  await db?.drop();
  await fake?.close();
});

const noQueue: SqsClient = {
  send: (async () => {
    throw new Error('the workers write straight to the database here');
  }) as SqsClient['send'],
};

/** A pull worker as one Lambda container runs it: the deployed exchange access (PostgreSQL budget) over its own pool, aimed at the fake. */
function workerContainer(pool: Db) {
  const env = Object.fromEntries(EXCHANGES.map((e) => [`CANDLEKEEP_${e.toUpperCase()}_URL`, fake.baseUrls[e]]));
  return createPullWorkerHandler(readPullWorkerConfig({ CANDLES_QUEUE_URL: 'https://sqs.example/unused', BACKFILL_BUS_NAME: 'unused' }), {
    db: async () => pool,
    sqs: noQueue,
    access: (d) => liveExchangeAccess(d, env),
    events: async () => {
      throw new Error('no backfill expected: every start is within what each exchange serves');
    },
    sink: new DirectSink(pool, new CandleStore()),
    logger: createLogger(SERVICES.pullWorker, { logLevel: 'SILENT' }),
  });
}

const context = { awsRequestId: 'fan-out', functionName: 'pull-worker', getRemainingTimeInMillis: () => 120_000 } as unknown as Context;

describe('pull fan-out over the shared PostgreSQL budget', () => {
  it('pulls 120 series with ten workers at once and gets zero 429 and zero 418 answers', { timeout: 180_000 }, async () => {
    // Ten hours back: a 1m series is two to three pages on OKX and Coinbase (300 rows a page) and
    // one on Kraken (720), so the tight budgets are spent several times over.
    const start = bucketStart(Date.now(), '1h') - 10 * HOUR;
    await followMarkets(
      admin,
      EXCHANGES.flatMap((exchange) =>
        fakeListings(exchange)
          .filter((l) => l.trading)
          .slice(0, MARKETS[exchange])
          .map((l) => ({ exchange, symbol: l.market.unified, intervals: INTERVALS, start })),
      ),
    );
    const due = await followedSeries(admin, INTERVALS);
    expect(due).toHaveLength(120);

    // Small shards (what each budget grants in 0.2 s, up to 50 of them) so that several workers
    // draw on the same exchange's budget at once, Kraken's one request a second included.
    const tickAt = Date.now();
    const shards = planShards(due, { rules: liveExchangeAccess(admin).governor.rules, tick: bucketStart(tickAt, '1m'), sentAt: tickAt, workers: 50, targetMs: 200 });
    expect(new Set(shards.map((s) => s.exchange)).size).toBe(EXCHANGES.length);
    expect(shards.filter((s) => s.exchange === 'kraken').length).toBeGreaterThan(1);

    // The event source: at most WORKERS invocations at once, each taking the next shard off the queue.
    let next = 0;
    const responses: SQSBatchResponse[] = [];
    const started = Date.now();
    await Promise.all(
      pools.map(async (pool, w) => {
        const worker = workerContainer(pool);
        for (let shard: PullShard | undefined = shards[next++]; shard; shard = shards[next++]) {
          const id = `shard-${w}-${next}`;
          const record = toRecord({ MessageId: id, ReceiptHandle: id, Body: JSON.stringify(shard), Attributes: { ApproximateReceiveCount: '1' } }, 'arn:aws:sqs:us-east-1:000000000000:pull-work', 'us-east-1');
          responses.push((await worker({ Records: [record] }, context)) as SQSBatchResponse);
        }
      }),
    );
    const elapsed = Date.now() - started;

    const stats = Object.fromEntries(EXCHANGES.map((e) => [e, fake.stats(e)]));
    const refused = EXCHANGES.filter((e) => stats[e]!.rateLimited + stats[e]!.banned > 0);
    expect(refused, `refused by the exchange: ${JSON.stringify(stats)}`).toEqual([]);
    for (const e of EXCHANGES) expect(stats[e], e).toMatchObject({ rateLimited: 0, banned: 0, errors: 0, faults: 0, ok: stats[e]!.requests });
    expect(responses.flatMap((r) => r.batchItemFailures)).toEqual([]);

    // The budgets were really spent: more than one window's worth on OKX and Coinbase, and Kraken's
    // requests (one a second) paced the run.
    expect(stats.okx!.requests).toBeGreaterThan(36);
    expect(stats.coinbase!.requests).toBeGreaterThan(15);
    expect(stats.kraken!.requests).toBeGreaterThanOrEqual(12);
    expect(elapsed).toBeGreaterThanOrEqual((stats.kraken!.requests - 1) * 1_000);

    // Every series pulled to the candle forming when the tick was sent, none left failing.
    const after = await followedSeries(admin, INTERVALS);
    const behind = after.filter((f) => f.closedThrough === null || f.closedThrough < bucketStart(tickAt, f.series.interval));
    expect(behind.map((f) => `${f.series.exchange} ${f.series.symbol} ${f.series.interval}`)).toEqual([]);
    const { rows: failing } = await admin.query<{ exchange: string; symbol: string; last_error: string | null }>(
      'SELECT exchange, symbol, last_error FROM market_series WHERE last_error IS NOT NULL OR pulled_at IS NULL',
    );
    expect(failing).toEqual([]);
  });
});
