import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostPort } from '../../../dev/postgres.ts';
import { startRelay, type Relay } from '../../../dev/ws-relay.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { createDeadLetterScanHandler } from '../../../functions/dead-letters/scan-lambda.ts';
import type { LedgerRefresh } from '../../../functions/ingest/dead-letter-ledger.ts';
import { findGaps } from '../../../functions/ingest/gaps.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import type { RedriveReport } from '../../../functions/queue/redrive.ts';
import { seriesExtents } from '../../../functions/store/candles.ts';
import { configureLocalRelay, createPool, type Db } from '../../../functions/store/db.ts';
import { pollUntil } from '../../support/poll.ts';
import { createQueues, queueDepth, sendBodies, testSqs, type TestQueues } from '../../support/sqs.ts';
import { reconcile, scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';
import { HOUR, messagesOf, startWriter, writerHandler } from './support.ts';

const run = promisify(execFile);

/**
 * A database outage longer than the redelivery budget: the stack's 365 s x 5 receives compressed to
 * 2 s x 2, so valid batches sent while PostgreSQL is away end in the dead-letter queue. As in
 * db-outage.test.ts, the outage is this file's own relay closed and reopened on the same port.
 */
const MAX_RECEIVE_COUNT = 2;
const VISIBILITY_SECONDS = 2;

let fake: FakeExchange;
let db: ScratchDatabase;
let relay: Relay;
let pool: Db;
let sqs: SQSClient;
let queues: TestQueues;

beforeAll(async () => {
  fake = await startFakeExchange({ enforceLimits: false });
  db = await scratchDatabase('ck_fault_dead_lettered');
  relay = await startRelay({ allow: [hostPort(db.url)] });
  configureLocalRelay(relay.address);
  pool = createPool(db.url, { max: 2 });
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: MAX_RECEIVE_COUNT, visibilityTimeout: VISIBILITY_SECONDS });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await relay?.close();
  await queues?.delete();
  await fake?.close();
});

/** `candlekeep <args>` as a user runs it, on this file's database and queues. */
async function candlekeep(args: string[]): Promise<string> {
  const out = await run(process.execPath, [projectPath('bin/candlekeep.js'), ...args], {
    cwd: projectPath(''),
    env: { ...process.env, DATABASE_URL: db.url, CANDLEKEEP_QUEUE_URL: queues.queueUrl, CANDLEKEEP_DLQ_URL: queues.dlqUrl },
    timeout: 60_000,
  });
  return out.stdout;
}

describe('fault: PostgreSQL away longer than the redelivery budget', () => {
  it('shows the dead-lettered batches as such in gaps and markets, and a redrive stores each candle once and clears the record', { timeout: 120_000 }, async () => {
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

      const port = relay.port;
      await relay.close();
      await sendBodies(sqs, queues.queueUrl, during);
      await pollUntil(async () => (await queueDepth(sqs, queues.dlqUrl)) === during.length, {
        timeoutMs: 45_000,
        intervalMs: 300,
        description: 'the second hour to be dead-lettered',
      });
      expect(runner.stats.handlerErrors).toBeGreaterThanOrEqual(MAX_RECEIVE_COUNT);
      relay = await startRelay({ port, allow: [hostPort(db.url)] });

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
