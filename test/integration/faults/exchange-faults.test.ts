import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Exchange, SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill, type PlanResult } from '../../../functions/ingest/backfill-planner.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { startFakeExchange, type FakeExchange, type FaultKind } from '../../support/fake-exchange/index.ts';
import { pollUntil } from '../../support/poll.ts';
import { createQueues, queueDepth, testSqs, type TestQueues } from '../../support/sqs.ts';
import { RecordingSink, reconcile, scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';
import { HOUR, fakeAccess, seeded, sleep, startWriter, writerHandler } from './support.ts';

let fake: FakeExchange;
let db: ScratchDatabase;
let pool: Db;
let sqs: SQSClient;
let queues: TestQueues;

beforeAll(async () => {
  // The exchanges' published limits are enforced on top of the injected faults.
  fake = await startFakeExchange();
  db = await scratchDatabase('ck_fault_exchange');
  pool = createPool(db.url, { max: 6 });
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: 5, visibilityTimeout: 10 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await queues?.delete();
  await fake?.close();
});

const FAULTS: readonly FaultKind[] = ['429', '418', '500', 'html', 'truncated'];
/** Share of exchange requests that get a fault. */
const FAULT_RATE = 0.2;

describe('fault: the exchange answers 429, 418, 500, HTML and truncated JSON at random', () => {
  it('backfills every series completely and exactly, however the exchange misbehaves', { timeout: 150_000 }, async () => {
    const random = seeded(42);
    const injected: Record<FaultKind, number> = { '429': 0, '418': 0, '500': 0, html: 0, truncated: 0 };
    let total = 0;
    let chunkRetries = 0;
    // A fault is queued on the fake just before a request goes out, so that request (or a concurrent
    // one to the same exchange) gets it. Bans and back-offs last 1 s so the test stays short.
    const faultyFetch: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      const exchange = url.pathname.split('/')[1] as Exchange;
      if (random() < FAULT_RATE) {
        // Which requests fail is random; the kinds take turns, so every kind occurs.
        const kind = FAULTS[total++ % FAULTS.length]!;
        injected[kind] += 1;
        fake.inject(exchange, kind, { retryAfterSec: 1 });
      }
      return fetch(input, init);
    };
    const access = fakeAccess(fake, {
      fetch: faultyFetch,
      // Time scaled down with the faults' Retry-After: Bybit's ban answer carries no Retry-After and
      // would otherwise suspend it for its real 10 minutes.
      governor: { baseBackoffMs: 100, maxBackoffMs: 1_000, policies: { bybit: { defaultBanMs: 1_000 } } },
    });
    const sink = new RecordingSink(sqs, queues.queueUrl, { maxBytes: 32 * 1024 });

    const day = Date.UTC(2025, 1, 10);
    const DAY = 24 * HOUR;
    const requests: (SeriesKey & { from: number; to: number })[] = [
      { exchange: 'binance', symbol: 'ETH/USDT', interval: '1m', from: day, to: day + 10 * DAY },
      { exchange: 'okx', symbol: 'SOL/USDT', interval: '1m', from: day, to: day + 2 * DAY },
      { exchange: 'bybit', symbol: 'BTC/USDT', interval: '1m', from: day, to: day + 5 * DAY },
      { exchange: 'coinbase', symbol: 'ETH/USD', interval: '1h', from: day - 90 * DAY, to: day },
    ];

    const runner = startWriter(sqs, queues, await writerHandler({ dlqUrl: queues.dlqUrl, databaseUrl: db.url }), { batchSize: 10, concurrency: 2 });
    const plans: PlanResult[] = [];
    try {
      await Promise.all(
        requests.map(async (req, i) => {
          // Planning probes the exchange too; EventBridge retries a failed planner invocation with
          // the same event id, which makes a retry find the plan instead of making a second one.
          let plan: PlanResult | undefined;
          for (let attempt = 1; !plan; attempt++) {
            try {
              plan = await planBackfill({ ...req, requestId: `faults-${i}-${db.name}` }, { db: pool, access, chunkPages: 2 });
            } catch (err) {
              if (attempt >= 5) throw err;
              await sleep(500);
            }
          }
          plans.push(plan);
          const final = await runBackfillLocally(plan.backfillId, { db: pool, access, sink }, {
            workers: 2,
            onChunk: (e) => {
              if (e.kind !== 'done') chunkRetries += 1;
            },
          });
          expect(final.status, `${req.exchange} ${req.symbol}: ${final.message ?? ''}`).toBe('done');
        }),
      );
      await pollUntil(async () => (await queueDepth(sqs, queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 300, description: 'the queue to drain' });
    } finally {
      await runner.stop();
    }

    const served = Object.fromEntries(requests.map((r) => [r.exchange, fake.stats(r.exchange)]));
    process.stdout.write(`[exchange faults] injected ${JSON.stringify(injected)}; chunk retries ${chunkRetries}; served ${JSON.stringify(served)}\n`);
    for (const kind of FAULTS) expect(injected[kind], `${kind} faults injected`).toBeGreaterThan(0);

    await reconcile({
      label: 'exchange faults',
      db: pool,
      series: requests.map((r) => ({ key: r, expected: fake.expected(r.exchange, r.symbol, r.interval, r.from, r.to - 1) })),
      messages: sink.bodies,
      sqs,
      dlqUrl: queues.dlqUrl,
    });
  });
});
