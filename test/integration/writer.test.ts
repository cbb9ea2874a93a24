import type { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventSourceRunner } from '../../dev/event-source-runner.ts';
import { startRelay, type Relay } from '../../dev/ws-relay.ts';
import { hostPort } from '../../dev/postgres.ts';
import { REASON_ATTRIBUTE } from '../../functions/queue/dead-letter.ts';
import { configureLocalRelay, type Db } from '../../functions/store/db.ts';
import { batch, row, T0 } from '../support/candles.ts';
import { testPool, uniqueSymbol } from '../support/db.ts';
import { testWriter, type SqsHandler } from '../support/handlers.ts';
import { pollUntil } from '../support/poll.ts';
import { createQueues, drain, queueDepth, sendBodies, testSqs, type TestQueues } from '../support/sqs.ts';

let sqs: SQSClient;
let queues: TestQueues;
let relay: Relay;
let db: Db;
let handler: SqsHandler;
let closeWriter: () => Promise<void>;

beforeAll(async () => {
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: 5, visibilityTimeout: 2 });
  // The writer reaches PostgreSQL through a relay this file owns, so a test can cut the database off.
  relay = await startRelay({ allow: [hostPort(process.env.DATABASE_URL!)] });
  db = testPool();
  configureLocalRelay(relay.address);
  ({ handler, close: closeWriter } = testWriter({ sqs, dlqUrl: queues.dlqUrl, databaseUrl: process.env.DATABASE_URL! }));
});

afterAll(async () => {
  await closeWriter?.();
  await db?.end();
  await relay?.close();
  await queues?.delete();
});

async function storedCount(symbol: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1',
    [symbol],
  );
  return rows[0]!.n;
}

describe('writer Lambda on a real SQS queue', () => {
  it('writes valid messages and sends each poison message to the dead-letter queue with its reason', async () => {
    const good = [uniqueSymbol(), uniqueSymbol(), uniqueSymbol()];
    const poison: Record<string, RegExp> = {
      '{"v":1,"exchange":': /body is not JSON/,
      [JSON.stringify({ ...batch(uniqueSymbol(), [row(0)]), v: 2 })]: /unsupported CandleBatch version 2/,
      [JSON.stringify(batch(uniqueSymbol(), [row(0, { high: '99', low: '100', open: '99.5', close: '99.5' })]))]: /high 99 is below low 100/,
      [JSON.stringify(batch(uniqueSymbol(), [[T0 + 1_000, ...row(0).slice(1)] as never]))]: /not aligned to 1m/,
      [JSON.stringify(batch(uniqueSymbol(), [[T0 / 1000, ...row(0).slice(1)] as never]))]: /seconds or microseconds/,
    };
    const valid = good.map((s) => JSON.stringify(batch(s, [row(0), row(1), row(2)])));
    await sendBodies(sqs, queues.queueUrl, [valid[0]!, ...Object.keys(poison).slice(0, 3), valid[1]!, ...Object.keys(poison).slice(3), valid[2]!]);

    const runner = startEventSourceRunner({ sqs, queueUrl: queues.queueUrl, queueArn: queues.queueArn, handler, batchSize: 10, maxBatchingWindowMs: 1000, waitTimeSeconds: 1 });
    try {
      await pollUntil(async () => (await queueDepth(sqs, queues.queueUrl)) === 0, { timeoutMs: 30_000 });
    } finally {
      await runner.stop();
    }

    for (const s of good) expect(await storedCount(s)).toBe(3);
    const dead = await drain(sqs, queues.dlqUrl, 5);
    expect(dead).toHaveLength(5);
    for (const m of dead) {
      const reason = m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue ?? '';
      expect(reason, `reason for ${m.Body?.slice(0, 60)}`).toMatch(poison[m.Body!]!);
    }
    // Poison messages were dead-lettered at once, not after maxReceiveCount retries.
    expect(runner.stats.handlerErrors).toBe(0);

    // And recorded in the dead-letter ledger under their dead-letter queue ids, without waiting for
    // a scan; the ones whose body names a series are placed in it.
    const { rows } = await db.query<{ message_id: string; reason: string; symbol: string | null }>(
      `SELECT d.message_id, d.reason, s.symbol FROM dead_letters d LEFT JOIN series s ON s.id = d.series_id WHERE d.message_id = ANY($1)`,
      [dead.map((m) => m.MessageId!)],
    );
    expect(rows).toHaveLength(5);
    for (const m of dead) {
      const r = rows.find((x) => x.message_id === m.MessageId)!;
      expect(r.reason).toBe(m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue);
      expect(r.symbol === null, `placed ${m.Body?.slice(0, 60)}`).toBe(m.Body === '{"v":1,"exchange":');
    }
  });

  it('keeps the batch when the database is unreachable and lands every candle exactly once after it returns', async () => {
    const symbols = [uniqueSymbol(), uniqueSymbol()];
    const bodies = symbols.flatMap((s) => [
      JSON.stringify(batch(s, Array.from({ length: 50 }, (_, i) => row(i)))),
      JSON.stringify(batch(s, Array.from({ length: 50 }, (_, i) => row(i + 25)))), // overlaps the first
    ]);
    const port = relay.port;
    await relay.close(); // database unreachable from the writer
    await sendBodies(sqs, queues.queueUrl, bodies);

    const runner = startEventSourceRunner({ sqs, queueUrl: queues.queueUrl, queueArn: queues.queueArn, handler, batchSize: 10, maxBatchingWindowMs: 500, waitTimeSeconds: 1 });
    try {
      await pollUntil(() => runner.stats.handlerErrors >= 2, { timeoutMs: 30_000 });
      expect(await queueDepth(sqs, queues.queueUrl)).toBe(bodies.length); // nothing was deleted

      relay = await startRelay({ port, allow: [hostPort(process.env.DATABASE_URL!)] });
      await pollUntil(async () => (await queueDepth(sqs, queues.queueUrl)) === 0, { timeoutMs: 30_000 });
    } finally {
      await runner.stop();
    }

    for (const s of symbols) expect(await storedCount(s)).toBe(75);
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (SELECT series_id, open_time FROM candles c JOIN series s ON s.id = c.series_id
       WHERE s.symbol = ANY($1) GROUP BY 1, 2 HAVING count(*) > 1) d`,
      [symbols],
    );
    expect(rows[0]!.n).toBe(0);
    const dead = await drain(sqs, queues.dlqUrl, 1, 2_000);
    expect(dead.filter((m) => symbols.some((s) => m.Body?.includes(s)))).toEqual([]);
  });
});
