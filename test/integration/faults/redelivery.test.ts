import { describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { bucketStart } from '../../../functions/candles/intervals.ts';
import { pullRange } from '../../../functions/ingest/pull.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { reconcile } from '../e2e/support.ts';
import { CaptureSink, HOUR, MIN, fakeAccess, seeded, shuffle, startWriter, writerHandler, faultEnvironment } from './support.ts';


let clock = Date.UTC(2025, 5, 1, 12, 0, 20);
const env = faultEnvironment({ database: 'ck_fault_redelivery', fake: { now: () => clock, enforceLimits: false }, queues: { maxReceiveCount: 5, visibilityTimeout: 10 } });

describe('fault: every message delivered twice, batches out of order', () => {
  it('ends with each candle once, closed candles as served, and the newest version of the forming one', async () => {
    const series: SeriesKey = { exchange: 'okx', symbol: 'BTC/USDT', interval: '1m' };
    const t1 = clock;
    const start = t1 - 2 * HOUR;
    const access = fakeAccess(env.fake, { now: () => clock });

    // Four pulls of the same series as the exchange's clock moves: the 12:00 candle is forming at
    // t1 and, with newer values, at t1 + 20 s; by t2 - 15 s it is closed and 12:03 is forming,
    // and at t2 12:03 is forming with newer values still.
    const t2 = t1 + 3 * MIN + 25_000;
    const snapshots: string[][] = [];
    for (const at of [t1, t1 + 20_000, t2 - 15_000, t2]) {
      clock = at;
      const sink = new CaptureSink(1024);
      await pullRange(series, { start, end: at + 1 }, { db: env.pool, access, sink });
      snapshots.push(sink.bodies);
    }
    const [older, newer, closingOlder, closing] = snapshots as [string[], string[], string[], string[]];

    // Newest first, then each older version, then every message once more in random order.
    const random = seeded(11);
    const firstPass = [...shuffle(closing, random), ...shuffle(closingOlder, random), ...shuffle(newer, random), ...shuffle(older, random)];
    const stream = [...firstPass, ...shuffle(firstPass, random)];
    await sendBodies(env.sqs, env.queues.queueUrl, stream);

    // Several small batches at once, so they also commit out of order.
    const runner = startWriter(env.sqs, env.queues, writerHandler({ sqs: env.sqs, dlqUrl: env.queues.dlqUrl, databaseUrl: env.db.url }), { batchSize: 5, windowMs: 100, concurrency: 4 });
    try {
      await pollUntil(async () => (await queueDepth(env.sqs, env.queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 300, description: 'the queue to drain' });
    } finally {
      await runner.stop();
    }
    expect(runner.stats.messagesDeleted).toBe(stream.length);

    const expected = env.fake.expected('okx', 'BTC/USDT', '1m', start, t2);
    expect(expected.at(-1)).toMatchObject({ openTime: bucketStart(t2, '1m'), closed: false });
    expect(expected.find((c) => c.openTime === bucketStart(t1, '1m'))?.closed).toBe(true);
    await reconcile({
      label: 'delivered twice, out of order',
      db: env.pool,
      series: [{ key: series, expected }],
      messages: stream,
      sqs: env.sqs,
      dlqUrl: env.queues.dlqUrl,
    });
  });
});
