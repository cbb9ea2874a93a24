import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import { encodeCandleBatches } from '../../../functions/candles/candle-batch.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { splitRange } from '../../../functions/ingest/ranges.ts';
import { createDeadLetterScanHandler } from '../../../functions/dead-letters/scan-lambda.ts';
import type { LedgerRefresh } from '../../../functions/ingest/dead-letter-ledger.ts';
import { findGaps } from '../../../functions/ingest/gaps.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import type { RedriveReport } from '../../../functions/queue/redrive.ts';
import { seriesExtents } from '../../../functions/store/candles.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { reconcile } from '../e2e/support.ts';
import { faultEnvironment, HOUR, startWriter, writerHandler } from './support.ts';

const run = promisify(execFile);

/**
 * A database outage longer than the redelivery budget: the stack's 365 s x 5 receives compressed to
 * 2 s x 2, so valid batches sent while PostgreSQL is away end in the dead-letter queue.
 */
const MAX_RECEIVE_COUNT = 2;
const VISIBILITY_SECONDS = 2;

const FROM = Date.UTC(2025, 3, 1);
const MIN = 60_000;
/**
 * Minutes the exchange had no trades, at the edges of two dead-lettered messages: only the range a
 * message declares, not its rows, says those buckets belong to it.
 */
const QUIET = new Set([FROM + 79 * MIN, FROM + 100 * MIN]);

const env = faultEnvironment({
  database: 'ck_fault_dead_lettered',
  fake: { enforceLimits: false, holes: (t) => QUIET.has(t) },
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
    // Coinbase omits buckets without trades, as the quiet minutes are.
    const series: SeriesKey = { exchange: 'coinbase', symbol: 'BTC/USD', interval: '1m' };
    const from = FROM;
    const to = from + 3 * HOUR;
    const expected = fake.expected('coinbase', 'BTC/USD', '1m', from, to - 1);
    expect(expected).toHaveLength(180 - QUIET.size);
    // As the pull and the backfill workers send them: each message declares the 20 minutes it
    // accounts for, quiet minutes included.
    const bodies = splitRange({ start: from, end: to }, 20 * MIN).flatMap((r) =>
      encodeCandleBatches(series, expected.filter((c) => c.openTime >= r.start && c.openTime < r.end), to + MIN, r),
    );
    expect(bodies).toHaveLength(9);
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

      expect(await scan()).toMatchObject({ messages: 3, unplaced: 0, candles: 58, complete: true });
      const dead = await findGaps(pool, series, { now });
      expect(dead.holes).toEqual([{ start: from + HOUR, end: from + 2 * HOUR, kind: 'dead-lettered', candles: 60, messages: 3 }]);
      expect(await seriesExtents(pool, series)).toMatchObject([{ candles: 120, deadLetteredMessages: 3, deadLetteredCandles: 58 }]);
      const gapsArgs = ['gaps', '--exchange', 'coinbase', '--symbol', 'BTC/USD', '--interval', '1m', '--from', String(from), '--to', String(to)];
      const beforeRedrive = await candlekeep(gapsArgs);
      expect(beforeRedrive).toMatch(/60 in ranges waiting in the dead-letter queue/);
      expect(beforeRedrive).toMatch(/dead-lettered \(3 message\(s\) in the DLQ: run candlekeep redrive, not a backfill\)/);

      const redriven = JSON.parse(await candlekeep(['redrive', '--json'])) as RedriveReport;
      expect(redriven).toMatchObject({ moved: 3, failed: 0 });
      await drained(queues.queueUrl, 'the redriven hour to be written');
      expect(await queueDepth(sqs, queues.dlqUrl)).toBe(0);

      // The hole is closed (the quiet minutes now confirmed empty by the ledger the writer filled as
      // it stored them), and the writer dropped the redriven messages' records: the counts do not
      // wait for the next scan, which then finds nothing left to forget.
      expect((await findGaps(pool, series, { now })).holes).toEqual(
        [...QUIET].map((t) => ({ start: t, end: t + MIN, kind: 'empty', candles: 1 })),
      );
      expect(await seriesExtents(pool, series)).toMatchObject([{ candles: 178, deadLetteredMessages: 0, deadLetteredCandles: 0 }]);
      expect(await scan()).toMatchObject({ messages: 0, complete: true, forgotten: 0 });
      const afterRedrive = await candlekeep(gapsArgs);
      expect(afterRedrive).toMatch(/178 stored, 0 missing, 2 confirmed empty by the exchange\n/);
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
