import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCandleBatches, parseCandleBatch } from '../../../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../../../functions/candles/candle.ts';
import { createDeadLetterScanHandler } from '../../../functions/dead-letters/scan-lambda.ts';
import { backfillRequestsForGaps, findGaps } from '../../../functions/ingest/gaps.ts';
import type { LedgerRefresh } from '../../../functions/ingest/dead-letter-ledger.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { queueCounts } from '../../../functions/queue/counts.ts';
import { sendToDeadLetter } from '../../../functions/queue/dead-letter.ts';
import { RECEIVE_COUNT_EXCEEDED } from '../../../functions/queue/dead-letter-scan.ts';
import { CandleStore, seriesExtents, storedGaps } from '../../../functions/store/candles.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { createQueues, testSqs, type TestQueues } from '../../support/sqs.ts';
import { scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';

const MIN = 60_000;
const T0 = Date.UTC(2024, 6, 1);
const series: SeriesKey = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1m' };
const candle = (openTime: number): Candle => ({ openTime, open: '3400.1', high: '3401', low: '3399.5', close: '3400.7', volume: '12.5', closed: true });
const minutes = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => candle(T0 + (from + i) * MIN));

// The ledger is one per database (one dead-letter queue per stack), so this file has a database of its own.
let db: ScratchDatabase;
let pool: Db;
let sqs: SQSClient;
let queues: TestQueues;
let scan: () => Promise<LedgerRefresh>;

beforeAll(async () => {
  db = await scratchDatabase('ck_dead_letters');
  pool = createPool(db.url, { max: 2 });
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: 5, visibilityTimeout: 5 });
  const handler = createDeadLetterScanHandler(
    { deadLetterQueueUrl: queues.dlqUrl, visibilitySeconds: 30 },
    { db: async () => pool, sqs, logger: createLogger(SERVICES.deadLetterScan, { logLevel: 'SILENT' }) },
  );
  scan = () => handler({}, {} as Context);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await queues?.delete();
});

async function store(candles: Candle[]): Promise<void> {
  const batches = encodeCandleBatches(series, candles, T0).map((b) => {
    const parsed = parseCandleBatch(b);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.batch;
  });
  await new CandleStore().upsert(pool, batches);
}

async function ledger(): Promise<{ message_id: string; series_id: number | null; candles: number; reason: string; first_seen: Date }[]> {
  const { rows } = await pool.query('SELECT message_id, series_id, candles, reason, first_seen FROM dead_letters ORDER BY message_id');
  return rows;
}

describe('the dead-letter scan', () => {
  it('records every dead-lettered message by series and range without consuming any, and gaps and markets point at a redrive', async () => {
    // Stored: minutes 0-9 and 40-49; minutes 10-39 wait in the dead-letter queue in two messages.
    await store([...minutes(0, 10), ...minutes(40, 50)]);
    const [movedBySqs] = encodeCandleBatches(series, minutes(10, 20), T0);
    const [rejected] = encodeCandleBatches(series, minutes(20, 40), T0);
    await sqs.send(new SendMessageCommand({ QueueUrl: queues.dlqUrl, MessageBody: movedBySqs! }));
    expect(await sendToDeadLetter(sqs, queues.dlqUrl, [
      { messageId: 'src-1', body: rejected!, reason: 'upsert failed: simulated' },
      { messageId: 'src-2', body: 'not json at all', reason: 'body is not JSON' },
    ])).toEqual([]);

    expect(await scan()).toEqual({ messages: 3, unplaced: 1, candles: 30, complete: true, forgotten: 0 });
    // Handed back at once: all three are visible again for a redrive.
    expect(await queueCounts(sqs, queues.dlqUrl)).toEqual({ visible: 3, inFlight: 0 });

    const rows = await ledger();
    const seriesId = await findSeriesId(pool, series);
    expect(rows.map((r) => [r.series_id, r.candles, r.reason]).sort()).toEqual(
      [[seriesId, 10, RECEIVE_COUNT_EXCEEDED], [seriesId, 20, 'upsert failed: simulated'], [null, 0, 'body is not JSON']].sort(),
    );

    const now = T0 + 50 * MIN + 1;
    const report = await findGaps(pool, series, { now });
    expect(report.holes).toEqual([{ start: T0 + 10 * MIN, end: T0 + 40 * MIN, kind: 'dead-lettered', candles: 30, messages: 2 }]);
    expect(report).toMatchObject({ missingCandles: 0, deadLetteredCandles: 30 });
    // A backfill is not the fix for a hole whose candles wait in the dead-letter queue.
    expect(backfillRequestsForGaps(report)).toEqual([]);

    const [market] = await seriesExtents(pool, series);
    expect(market).toMatchObject({ candles: 20, deadLetteredMessages: 2, deadLetteredCandles: 30 });
    const page = await storedGaps(pool, seriesId!, '1m', { limit: 10 });
    expect(page.gaps).toEqual([
      { start: T0 + 10 * MIN, end: T0 + 40 * MIN, missingCandles: 30, kind: 'dead-lettered', confirmedByExchange: false, deadLetteredMessages: 2 },
    ]);

    // A second scan finds the same three: nothing is added, nothing forgotten, first sightings kept.
    expect(await scan()).toMatchObject({ messages: 3, complete: true, forgotten: 0 });
    expect((await ledger()).map((r) => r.first_seen.getTime())).toEqual(rows.map((r) => r.first_seen.getTime()));
  });

  it('forgets a message only after a complete scan no longer finds it', async () => {
    const before = await ledger();
    expect(before).toHaveLength(3);
    // One message held by another reader (as a redrive in progress would): the scan cannot see it,
    // so it must not conclude the message left.
    const held = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queues.dlqUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 60, WaitTimeSeconds: 1 }));
    expect(held.Messages).toHaveLength(1);
    expect(await scan()).toMatchObject({ messages: 2, complete: false, forgotten: 0 });
    expect(await ledger()).toHaveLength(3);

    // It is then consumed for good (a redrive moved it): the next complete scan forgets it.
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queues.dlqUrl, ReceiptHandle: held.Messages![0]!.ReceiptHandle }));
    expect(await scan()).toMatchObject({ messages: 2, complete: true, forgotten: 1 });
    expect((await ledger()).map((r) => r.message_id)).not.toContain(held.Messages![0]!.MessageId);
  });
});
