import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill } from '../../../functions/ingest/backfill-planner.ts';
import { getBackfillProgress } from '../../../functions/ingest/backfill-progress.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { describe, expect, it } from 'vitest';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth } from '../../support/sqs.ts';
import { RecordingSink, reconcile } from '../e2e/support.ts';
import { HOUR, fakeAccess, faultEnvironment, sleep, startWriter, writerHandler } from './support.ts';

/**
 * PostgreSQL unreachable for 30 s (faultEnvironment's outages): new connections are refused and
 * open ones are cut, exactly what the writer and the backfill workers see when the database goes away.
 */
const OUTAGE_MS = 30_000;

// The stack's ratio, compressed: the visibility timeout times maxReceiveCount (10 s x 6) outlasts
// the outage, as 365 s x 5 does in AWS, so no valid message is dead-lettered while it lasts.
const env = faultEnvironment({ database: 'ck_fault_outage', poolSize: 4, queues: { maxReceiveCount: 6, visibilityTimeout: 10 }, outages: true });

describe('fault: PostgreSQL unreachable for 30 s in the middle of a backfill', () => {
  it('resumes the backfill and writes every candle exactly once after the database returns', { timeout: 150_000 }, async () => {
    const { fake, db, pool, sqs, queues } = env;
    const series: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
    const from = Date.UTC(2025, 2, 1);
    const to = from + 20 * 24 * HOUR;
    // Two requests a second, so the backfill is still running when the database goes away.
    const access = fakeAccess(fake, { governor: { rules: { binance: { limit: 4, windowMs: 1_000 } } } });
    const sink = new RecordingSink(sqs, queues.queueUrl, { maxBytes: 32 * 1024 });
    const plan = await planBackfill({ ...series, from, to }, { db: pool, access, chunkPages: 1 });
    expect(plan.chunks).toBeGreaterThanOrEqual(25);

    const runner = startWriter(sqs, queues, writerHandler({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: db.url }), {
      batchSize: 10,
      concurrency: 2,
    });
    // Like a worker Lambda whose invocation failed: its token comes back and a new one picks up
    // the chunks (a dead claim's lease runs out after 3 s here).
    let workerFailures = 0;
    let finished = false;
    const workers = (async () => {
      while (!finished) {
        try {
          const p = await runBackfillLocally(plan.backfillId, { db: pool, access, sink, leaseMs: 3_000 }, { workers: 2 });
          finished = p.status === 'done';
          if (!finished) throw new Error(`backfill ended ${p.status}: ${p.message ?? ''}`);
        } catch (err) {
          if ((err as Error).message.startsWith('backfill ended')) throw err;
          workerFailures += 1;
          await sleep(1_000);
        }
      }
    })();

    let cutAt = 0;
    let restoredAt = 0;
    try {
      await pollUntil(async () => ((await getBackfillProgress(pool, plan.backfillId))?.chunks.done ?? 0) >= 6, {
        timeoutMs: 30_000,
        intervalMs: 200,
        description: 'the backfill to be under way',
      });
      const errorsBefore = runner.stats.handlerErrors;
      await env.cutDatabase();
      cutAt = Date.now();
      await sleep(OUTAGE_MS);
      await env.restoreDatabase();
      restoredAt = Date.now();
      // The outage was felt on both sides.
      expect(runner.stats.handlerErrors).toBeGreaterThan(errorsBefore);
      expect(workerFailures).toBeGreaterThan(0);

      await workers;
      await pollUntil(async () => (await queueDepth(sqs, queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 500, description: 'the queue to drain' });
    } finally {
      finished = true;
      await workers.catch(() => {});
      await runner.stop();
    }
    process.stdout.write(
      `[db outage] database unreachable ${((restoredAt - cutAt) / 1000).toFixed(1)} s; writer batches failed ${runner.stats.handlerErrors}, ` +
        `backfill worker restarts ${workerFailures}; recovered in ${((Date.now() - restoredAt) / 1000).toFixed(1)} s\n`,
    );
    expect((await getBackfillProgress(pool, plan.backfillId))?.status).toBe('done');

    await reconcile({
      label: 'PostgreSQL unreachable 30 s mid-backfill',
      db: pool,
      series: [{ key: series, expected: fake.expected('binance', 'BTC/USDT', '1m', from, to - 1) }],
      messages: sink.bodies,
      sqs,
      dlqUrl: queues.dlqUrl,
    });
  });
});
