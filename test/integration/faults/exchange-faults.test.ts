import { describe, expect, it } from 'vitest';
import type { Exchange, SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill, type PlanResult } from '../../../functions/ingest/backfill-planner.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { type FaultKind } from '../../../dev/fake-exchange/server.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth } from '../../support/sqs.ts';
import { RecordingSink, reconcile } from '../e2e/support.ts';
import { HOUR, fakeAccess, seeded, sleep, startWriter, writerHandler, faultEnvironment } from './support.ts';


// The exchanges' published limits are enforced on top of the injected faults.
const env = faultEnvironment({ database: 'ck_fault_exchange', fake: {}, poolSize: 6, queues: { maxReceiveCount: 5, visibilityTimeout: 10 } });

const FAULTS = ['429', '418', '500', 'html', 'truncated'] as const satisfies readonly FaultKind[];
/** Share of exchange requests that get a fault. */
const FAULT_RATE = 0.2;

describe('fault: the exchange answers 429, 418, 500, HTML and truncated JSON at random', () => {
  it('backfills every series completely and exactly, however the exchange misbehaves', { timeout: 150_000 }, async () => {
    const random = seeded(42);
    const injected: Record<(typeof FAULTS)[number], number> = { '429': 0, '418': 0, '500': 0, html: 0, truncated: 0 };
    let total = 0;
    let chunkRetries = 0;
    // A fault is queued on the env.fake just before a request goes out, so that request (or a concurrent
    // one to the same exchange) gets it. Bans and back-offs last 1 s so the test stays short.
    const faultyFetch: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      const exchange = url.pathname.split('/')[1] as Exchange;
      if (random() < FAULT_RATE) {
        // Which requests fail is random; the kinds take turns, so every kind occurs.
        const kind = FAULTS[total++ % FAULTS.length]!;
        injected[kind] += 1;
        env.fake.inject(exchange, kind, { retryAfterSec: 1 });
      }
      return fetch(input, init);
    };
    const access = fakeAccess(env.fake, {
      fetch: faultyFetch,
      // Time scaled down with the faults' Retry-After: Bybit's ban answer carries no Retry-After and
      // would otherwise suspend it for its real 10 minutes.
      governor: { baseBackoffMs: 100, maxBackoffMs: 1_000, policies: { bybit: { defaultBanMs: 1_000 } } },
    });
    const sink = new RecordingSink(env.sqs, env.queues.queueUrl, { maxBytes: 32 * 1024 });

    const day = Date.UTC(2025, 1, 10);
    const DAY = 24 * HOUR;
    const requests: (SeriesKey & { from: number; to: number })[] = [
      { exchange: 'binance', symbol: 'ETH/USDT', interval: '1m', from: day, to: day + 10 * DAY },
      { exchange: 'okx', symbol: 'SOL/USDT', interval: '1m', from: day, to: day + 2 * DAY },
      { exchange: 'bybit', symbol: 'BTC/USDT', interval: '1m', from: day, to: day + 5 * DAY },
      { exchange: 'coinbase', symbol: 'ETH/USD', interval: '1h', from: day - 90 * DAY, to: day },
    ];

    const runner = startWriter(env.sqs, env.queues, writerHandler({ sqs: env.sqs, dlqUrl: env.queues.dlqUrl, databaseUrl: env.db.url }), { batchSize: 10, concurrency: 2 });
    const plans: PlanResult[] = [];
    try {
      await Promise.all(
        requests.map(async (req, i) => {
          // Planning probes the exchange too; EventBridge retries a failed planner invocation with
          // the same event id, which makes a retry find the plan instead of making a second one.
          let plan: PlanResult | undefined;
          for (let attempt = 1; !plan; attempt++) {
            try {
              plan = await planBackfill({ ...req, requestId: `faults-${i}-${env.db.name}` }, { db: env.pool, access, chunkPages: 2 });
            } catch (err) {
              if (attempt >= 5) throw err;
              await sleep(500);
            }
          }
          plans.push(plan);
          const final = await runBackfillLocally(plan.backfillId, { db: env.pool, access, sink }, {
            workers: 2,
            onChunk: (e) => {
              if (e.kind !== 'done') chunkRetries += 1;
            },
          });
          expect(final.status, `${req.exchange} ${req.symbol}: ${final.message ?? ''}`).toBe('done');
        }),
      );
      await pollUntil(async () => (await queueDepth(env.sqs, env.queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 300, description: 'the queue to drain' });
    } finally {
      await runner.stop();
    }

    const served = Object.fromEntries(requests.map((r) => [r.exchange, env.fake.stats(r.exchange)]));
    process.stdout.write(`[exchange faults] injected ${JSON.stringify(injected)}; chunk retries ${chunkRetries}; served ${JSON.stringify(served)}\n`);
    for (const kind of FAULTS) expect(injected[kind], `${kind} faults injected`).toBeGreaterThan(0);

    await reconcile({
      label: 'exchange faults',
      db: env.pool,
      series: requests.map((r) => ({ key: r, expected: env.fake.expected(r.exchange, r.symbol, r.interval, r.from, r.to - 1) })),
      messages: sink.bodies,
      sqs: env.sqs,
      dlqUrl: env.queues.dlqUrl,
    });
  });
});
