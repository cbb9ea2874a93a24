import { PurgeQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { table } from '../../../cli/commands/gaps.ts';
import { hostPort } from '../../../dev/postgres.ts';
import { startRelay, type Relay } from '../../../dev/ws-relay.ts';
import { parseCandleBatch } from '../../../functions/candles/candle-batch.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { planBackfill } from '../../../functions/ingest/backfill-planner.ts';
import { runBackfillLocally } from '../../../functions/ingest/backfill-runner.ts';
import { findGaps, type GapReport } from '../../../functions/ingest/gaps.ts';
import { queueCounts } from '../../../functions/queue/counts.ts';
import { configureLocalRelay, createPool, type Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { coverageHoldings } from '../../support/coverage.ts';
import { pollUntil } from '../../support/poll.ts';
import { createQueues, queueDepth, testSqs, type TestQueues } from '../../support/sqs.ts';
import { startTcpGate, type TcpGate } from '../../support/tcp-gate.ts';
import { RecordingSink, reconcile, scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';
import { HOUR, fakeAccess, startWriter, writerHandler } from './support.ts';

/**
 * Valid batches that never reach the database: dead-lettered because the writer could not reach
 * it for longer than the redelivery budget, or purged from the queue. The workers that sent them
 * finished their chunks, so only the ledger can tell those ranges were never stored: they must
 * read as missing (not "confirmed empty") and a backfill request must fetch them again.
 *
 * The outage is the writer's alone: its database URL goes through a TCP gate that the test closes,
 * while the backfill workers reach PostgreSQL directly and finish their chunks.
 */
let fake: FakeExchange;
let db: ScratchDatabase;
let relay: Relay;
let gate: TcpGate;
let pool: Db;
let sqs: SQSClient;
let queues: TestQueues;
let writerUrl: string;
const DAY = 24 * HOUR;
const FROM = Date.UTC(2025, 2, 1);
const MID = FROM + 2 * DAY;
const TO = FROM + 4 * DAY;

beforeAll(async () => {
  fake = await startFakeExchange({ enforceLimits: false });
  db = await scratchDatabase('ck_fault_lost');
  const server = new URL(db.url);
  gate = await startTcpGate({ host: server.hostname, port: Number(server.port || 5432) });
  const gated = new URL(db.url);
  gated.hostname = '127.0.0.1';
  gated.port = String(gate.port);
  writerUrl = gated.toString();
  relay = await startRelay({ allow: [hostPort(db.url), hostPort(writerUrl)] });
  configureLocalRelay(relay.address);
  pool = createPool(db.url, { max: 3 });
  sqs = testSqs();
  // A redelivery budget of 2 receives x 2 s: an outage of a few seconds outlasts it.
  queues = await createQueues(sqs, { maxReceiveCount: 2, visibilityTimeout: 2 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
  await relay?.close();
  await gate?.close();
  await queues?.delete();
  await fake?.close();
});

const access = () => fakeAccess(fake);

async function backfill(series: SeriesKey, from: number, to: number, sink: RecordingSink): Promise<number> {
  const plan = await planBackfill({ ...series, from, to }, { db: pool, access: access(), chunkPages: 1 });
  const progress = await runBackfillLocally(plan.backfillId, { db: pool, access: access(), sink }, { workers: 2 });
  expect(progress.status).toBe('done');
  return plan.chunks;
}

const drained = (url: string, description: string) =>
  pollUntil(async () => (await queueDepth(sqs, url)) === 0, { timeoutMs: 60_000, intervalMs: 300, description });

const holesOf = (report: GapReport) => report.holes.map((h) => ({ start: h.start, end: h.end, kind: h.kind }));

async function expectLedgerHoldsWhatItClaims(series: SeriesKey): Promise<void> {
  const id = await findSeriesId(pool, series);
  const rows = await coverageHoldings(pool, id);
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.filter((r) => r.stored !== r.candles)).toEqual([]);
}

describe('fault: batches that are sent but never stored', () => {
  it('dead-lettered by a database outage longer than the redelivery budget: their range reads missing, and a backfill repairs it exactly', { timeout: 150_000 }, async () => {
    // Prepare: the first half stored normally.
    const series: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
    const sink = new RecordingSink(sqs, queues.queueUrl, { maxBytes: 32 * 1024 });
    const runner = startWriter(sqs, queues, writerHandler({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: writerUrl }), { batchSize: 5 });
    try {
      await backfill(series, FROM, MID, sink);
      await drained(queues.queueUrl, 'the first half to be written');

      // Act: the writer loses the database while the second half is fetched and sent.
      await gate.close();
      const sentBefore = sink.bodies.length;
      expect(await backfill(series, MID, TO, sink)).toBeGreaterThan(0);
      const lost = sink.bodies.length - sentBefore;
      await pollUntil(async () => (await queueCounts(sqs, queues.dlqUrl)).visible === lost, {
        timeoutMs: 60_000,
        intervalMs: 500,
        description: `all ${lost} messages of the second half to be dead-lettered`,
      });
      await drained(queues.queueUrl, 'the candles queue to be empty');
      await gate.open();

      // Assess: the dead-lettered range is missing, though its chunks are done.
      const now = fake.now();
      const before = await findGaps(pool, series, { from: FROM, to: TO, now });
      process.stdout.write(`[lost batches] gaps after ${lost} batches were dead-lettered:\n${table(before)}\n`);
      expect(holesOf(before)).toEqual([{ start: MID, end: TO, kind: 'missing' }]);
      await expectLedgerHoldsWhatItClaims(series);

      // A backfill request of the whole range fetches exactly the missing half again.
      const repairFrom = sink.bodies.length;
      await backfill(series, FROM, TO, sink);
      await drained(queues.queueUrl, 'the repair to be written');
      const after = await findGaps(pool, series, { from: FROM, to: TO, now });
      process.stdout.write(`[lost batches] gaps after the backfill request:\n${table(after)}\n`);
      expect(holesOf(after)).toEqual([]);
      const refetched = sink.bodies.slice(repairFrom).flatMap((b) => {
        const parsed = parseCandleBatch(b);
        return parsed.ok ? [parsed.batch.range] : [];
      });
      expect(refetched.length).toBeGreaterThan(0);
      expect(refetched.every((r) => r !== undefined && r[0] >= MID && r[1] <= TO)).toBe(true);
      await expectLedgerHoldsWhatItClaims(series);
    } finally {
      await gate.open().catch(() => {});
      await runner.stop();
    }

    // The dead letters are stale now that the backfill stored their candles: a user would purge them.
    await sqs.send(new PurgeQueueCommand({ QueueUrl: queues.dlqUrl }));
    await drained(queues.dlqUrl, 'the dead-letter queue to be purged');
    await reconcile({
      label: 'batches dead-lettered by a database outage, repaired by a backfill',
      db: pool,
      series: [{ key: series, expected: fake.expected('binance', 'BTC/USDT', '1m', FROM, TO - 1) }],
      messages: sink.bodies,
      sqs,
      dlqUrl: queues.dlqUrl,
    });
  });

  it('purged from the queue between send and write: the range reads missing', { timeout: 120_000 }, async () => {
    const series: SeriesKey = { exchange: 'binance', symbol: 'ETH/USDT', interval: '1m' };
    const sink = new RecordingSink(sqs, queues.queueUrl, { maxBytes: 32 * 1024 });
    const writer = writerHandler({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: writerUrl });
    const first = startWriter(sqs, queues, writer);
    try {
      await backfill(series, FROM, MID, sink);
      await drained(queues.queueUrl, 'the first half to be written');
    } finally {
      await first.stop();
    }

    // Act: the second half is sent with no writer running, and the queue is purged.
    await backfill(series, MID, TO, sink);
    expect((await queueCounts(sqs, queues.queueUrl)).visible).toBeGreaterThan(0);
    await sqs.send(new PurgeQueueCommand({ QueueUrl: queues.queueUrl }));
    await drained(queues.queueUrl, 'the queue to be purged');

    // Assess
    const report = await findGaps(pool, series, { from: FROM, to: TO, now: fake.now() });
    expect(holesOf(report)).toEqual([{ start: MID, end: TO, kind: 'missing' }]);
    await expectLedgerHoldsWhatItClaims(series);
  });
});
