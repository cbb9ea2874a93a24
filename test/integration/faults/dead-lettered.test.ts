import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { createDeadLetterScanHandler } from '../../../functions/dead-letters/scan-lambda.ts';
import type { LedgerRefresh } from '../../../functions/ingest/dead-letter-ledger.ts';
import { findGaps } from '../../../functions/ingest/gaps.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import type { RedriveReport } from '../../../functions/queue/redrive.ts';
import { seriesExtents } from '../../../functions/store/candles.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { reconcile } from '../e2e/support.ts';
import { faultEnvironment, HOUR, messagesOf, startWriter, writerHandler } from './support.ts';

const run = promisify(execFile);

/**
 * A database outage longer than the redelivery budget: the stack's 365 s x 5 receives compressed to
 * 2 s x 2, so valid batches sent while PostgreSQL is away end in the dead-letter queue.
 */
const MAX_RECEIVE_COUNT = 2;
const VISIBILITY_SECONDS = 2;

const env = faultEnvironment({
  database: 'ck_fault_dead_lettered',
  queues: { maxReceiveCount: MAX_RECEIVE_COUNT, visibilityTimeout: VISIBILITY_SECONDS },
  outages: true,
});

/** `candlekeep <args>` as a user runs it, on this file's database and queues. */
async function candlekeep(args: string[]): Promise<string> {
  const out = await run(process.execPath, [projectPath('bin/candlekeep.js'), ...args], {
    cwd: projectPath(''),
    env: { ...process.env, DATABASE_URL: env.db.url, CANDLEKEEP_QUEUE_URL: env.queues.queueUrl, CANDLEKEEP_DLQ_URL: env.queues.dlqUrl },
    timeout: 60_000,
  });
  return out.stdout;
}

describe('fault: PostgreSQL away longer than the redelivery budget', () => {
  it('shows the dead-lettered batches as such in gaps and markets, and a redrive stores each candle once and clears the record', { timeout: 120_000 }, async () => {
    const { fake, db, pool, sqs, queues } = env;
    const series: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
    const from = Date.UTC(2025, 3, 1);
    const to = from + 3 * HOUR;
    const expected = fake.expected('binance', 'BTC/USDT', '1m', from, to - 1);
    expect(expected).toHaveLength(180);
    const bodies = messagesOf(series, expected, 20, to + 60_000);
    const [before, during, after] = [bodies.slice(0, 3), bodies.slice(3, 6), bodies.slice(6)];
    const scanHandler = createDeadLetterScanHandler(
      { deadLetterQueueUrl: queues.dlqUrl, visibilitySeconds: 30 },
      { db: async () => pool, sqs, logger: createLogger(SERVICES.deadLetterScan, { logLevel: 'SILENT' }) },
    );
    const scan = () => scanHandler({}, {} as Context) as Promise<LedgerRefresh>;
    const drained = (url: string, what: string) =>
      pollUntil(async () => (await queueDepth(sqs, url)) === 0, { timeoutMs: 45_000, intervalMs: 300, description: what });

    const runner = startWriter(sqs, queues, writerHandler({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: db.url }), { batchSize: 10, concurrency: 2 });
    try {
      await sendBodies(sqs, queues.queueUrl, before);
      await drained(queues.queueUrl, 'the first hour to be written');

      await env.cutDatabase();
      await sendBodies(sqs, queues.queueUrl, during);
      await pollUntil(async () => (await queueDepth(sqs, queues.dlqUrl)) === during.length, {
        timeoutMs: 45_000,
        intervalMs: 300,
        description: 'the second hour to be dead-lettered',
      });
      expect(runner.stats.handlerErrors).toBeGreaterThanOrEqual(MAX_RECEIVE_COUNT);
      await env.restoreDatabase();

      await sendBodies(sqs, queues.queueUrl, after);
      await drained(queues.queueUrl, 'the third hour to be written');

      // Before the scan: an ordinary hole a backfill would be asked to fill.
      const now = to + 30_000;
      expect((await findGaps(pool, series, { now })).holes).toEqual([{ start: from + HOUR, end: from + 2 * HOUR, kind: 'missing', candles: 60 }]);

      expect(await scan()).toMatchObject({ messages: 3, unplaced: 0, candles: 60, complete: true });
      const dead = await findGaps(pool, series, { now });
      expect(dead.holes).toEqual([{ start: from + HOUR, end: from + 2 * HOUR, kind: 'dead-lettered', candles: 60, messages: 3 }]);
      expect(await seriesExtents(pool, series)).toMatchObject([{ candles: 120, deadLetteredMessages: 3, deadLetteredCandles: 60 }]);
      const gapsArgs = ['gaps', '--exchange', 'binance', '--symbol', 'BTC/USDT', '--interval', '1m', '--from', String(from), '--to', String(to)];
      const beforeRedrive = await candlekeep(gapsArgs);
      expect(beforeRedrive).toMatch(/60 waiting in the dead-letter queue/);
      expect(beforeRedrive).toMatch(/dead-lettered \(3 message\(s\) in the DLQ: run candlekeep redrive, not a backfill\)/);

      const redriven = JSON.parse(await candlekeep(['redrive', '--json'])) as RedriveReport;
      expect(redriven).toMatchObject({ moved: 3, failed: 0 });
      await drained(queues.queueUrl, 'the redriven hour to be written');
      expect(await queueDepth(sqs, queues.dlqUrl)).toBe(0);

      // The hole is closed, and the writer that stored the redriven messages dropped their records:
      // the counts do not wait for the next scan, which then finds nothing left to forget.
      expect((await findGaps(pool, series, { now })).holes).toEqual([]);
      expect(await seriesExtents(pool, series)).toMatchObject([{ candles: 180, deadLetteredMessages: 0, deadLetteredCandles: 0 }]);
      expect(await scan()).toMatchObject({ messages: 0, complete: true, forgotten: 0 });
      const afterRedrive = await candlekeep(gapsArgs);
      expect(afterRedrive).toMatch(/180 stored, 0 missing/);
      expect(afterRedrive).toMatch(/no holes/);
      process.stdout.write(`[dead-lettered] gaps before the redrive:\n${beforeRedrive}[dead-lettered] gaps after:\n${afterRedrive}`);
    } finally {
      await runner.stop();
    }

    await reconcile({
      label: 'dead-lettered by an outage, then redriven',
      db: pool,
      series: [{ key: series, expected }],
      messages: bodies,
      sqs,
      dlqUrl: queues.dlqUrl,
    });
  });
});
