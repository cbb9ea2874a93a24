import { describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { reconcile } from '../e2e/support.ts';
import { messagesOf, seeded, shuffle, startWriter, writerHandler, faultEnvironment } from './support.ts';


const env = faultEnvironment({ database: 'ck_fault_poison', queues: { maxReceiveCount: 5, visibilityTimeout: 10 } });

const T = Date.UTC(2025, 2, 1);
const row = (t: number, o = '100.5', h = '101', l = '99', c = '100') => [t, o, h, l, c, '1.5', '150', 3, 1];
const base = (n: number) => ({ v: 1, exchange: 'bybit', symbol: 'SOL/USDT', interval: '1m', fetchedAt: T + n });

/** Ten kinds of bad message, each unique, with what the writer must say about it. */
const POISON: [string, RegExp][] = [
  ['{"v":1,"exchange":', /body is not JSON/],
  ['hello, writer', /body is not JSON/],
  [JSON.stringify({ ...base(1), v: 2, rows: [row(T)] }), /unsupported CandleBatch version 2/],
  [JSON.stringify({ ...base(2), rows: [row(T, '99.5', '99', '100', '99.5')] }), /high 99 is below low 100/],
  [JSON.stringify({ ...base(3), rows: [row(T + 1000)] }), /not aligned to 1m/],
  [JSON.stringify({ ...base(4), rows: [row(T / 1000)] }), /seconds or microseconds/],
  [JSON.stringify({ ...base(5), exchange: 'ftx', rows: [row(T)] }), /unknown exchange "ftx"/],
  [JSON.stringify({ ...base(6), interval: '2m', rows: [row(T)] }), /unknown interval "2m"/],
  [JSON.stringify({ ...base(7), rows: [row(T, '1e5')] }), /non-negative decimal string in plain notation/],
  [JSON.stringify({ ...base(8), rows: [] }), /at least one candle/],
];

describe('fault: 1% poison messages mixed into the stream', () => {
  it('stores every valid candle once and parks each poison message in the DLQ with its reason, without failing a batch', async () => {
    const series: SeriesKey = { exchange: 'bybit', symbol: 'SOL/USDT', interval: '1m' };
    const from = Date.UTC(2025, 3, 1);
    const expected = env.fake.expected('bybit', 'SOL/USDT', '1m', from, from + 2970 * 60_000 - 1);
    const valid = messagesOf(series, expected, 3, from + 5 * 86_400_000);
    expect(valid).toHaveLength(990);
    const stream = shuffle([...valid, ...POISON.map(([body]) => body)], seeded(5));
    expect(POISON.length / stream.length).toBe(0.01);
    await sendBodies(env.sqs, env.queues.queueUrl, stream);

    const runner = startWriter(env.sqs, env.queues, writerHandler({ sqs: env.sqs, dlqUrl: env.queues.dlqUrl, databaseUrl: env.db.url }), { batchSize: 10, concurrency: 2 });
    try {
      await pollUntil(async () => (await queueDepth(env.sqs, env.queues.queueUrl)) === 0, { timeoutMs: 90_000, intervalMs: 500, description: 'the queue to drain' });
    } finally {
      await runner.stop();
    }
    // Poison never fails its batch: the writer parks it itself, with a reason, on the first receive.
    expect(runner.stats.handlerErrors).toBe(0);
    expect(runner.stats.messagesFailed).toBe(0);

    await reconcile({
      label: 'poison 1%',
      db: env.pool,
      series: [{ key: series, expected }],
      messages: valid,
      poison: new Map(POISON),
      sqs: env.sqs,
      dlqUrl: env.queues.dlqUrl,
    });
  });
});
