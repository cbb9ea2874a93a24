import { SendMessageBatchCommand, type SendMessageBatchCommandOutput, type SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { encodeCandleBatches } from '../../../functions/candles/candle-batch.ts';
import type { Candle } from '../../../functions/candles/candle.ts';
import { sendToDeadLetter } from '../../../functions/queue/dead-letter.ts';
import { MAX_BATCH_BYTES, packBatches, QueueSendError, sendMessageBodies } from '../../../functions/queue/send.ts';
import { sendWorkTokens } from '../../../functions/queue/work-tokens.ts';

type Answer = (entries: { Id: string; MessageBody: string }[]) => Partial<SendMessageBatchCommandOutput> | Error;

/** An SQS client that records each SendMessageBatch call and answers from a script. */
function recordingSqs(answers: Answer[] = []) {
  const calls: { Id: string; MessageBody: string }[][] = [];
  const client = {
    async send(command: SendMessageBatchCommand) {
      const entries = (command.input.Entries ?? []) as { Id: string; MessageBody: string }[];
      calls.push(entries);
      const answer = answers.shift()?.(entries) ?? {};
      if (answer instanceof Error) throw answer;
      return { Successful: [], Failed: [], ...answer };
    },
  } as unknown as SQSClient;
  return { client, calls };
}
const noSleep = { sleep: async () => {}, random: () => 0 };

describe('packing SendMessageBatch calls', () => {
  it('keeps every call within 10 entries and 256 KiB, in order', () => {
    const sizes = [100_000, 100_000, 70_000, ...Array<number>(11).fill(1), 250_000];
    const calls = packBatches(sizes.map((bytes, i) => ({ bytes, i })));
    expect(calls.map((c) => c.map((e) => e.i))).toEqual([[0, 1], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [12, 13, 14]]);
    for (const c of calls) {
      expect(c.length).toBeLessThanOrEqual(10);
      expect(c.reduce((n, e) => n + e.bytes, 0)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    }
  });

  it('refuses a single message over the limit instead of sending it', () => {
    expect(() => packBatches([{ bytes: MAX_BATCH_BYTES + 1 }])).toThrow(QueueSendError);
  });

  it('packs real CandleBatch bodies of a day of 1m candles under both limits', async () => {
    const candles: Candle[] = Array.from({ length: 20_000 }, (_, i) => ({
      openTime: Date.UTC(2024, 0, 1) + i * 60_000, open: '61234.56000000', high: '61300.00000000', low: '61200.10000000',
      close: '61250.00000000', volume: '12.34567800', quoteVolume: '756123.45678900', trades: 1234, closed: true,
    }));
    const bodies = encodeCandleBatches({ exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' }, candles, Date.UTC(2024, 0, 2));
    const { client, calls } = recordingSqs();
    const out = await sendMessageBodies(client, 'https://sqs.example/q', bodies, noSleep);
    expect(out.messages).toBe(bodies.length);
    expect(calls.flat().map((e) => e.MessageBody)).toEqual(bodies);
    for (const c of calls) expect(c.reduce((n, e) => n + Buffer.byteLength(e.MessageBody), 0)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
  });
});

describe('sending with retries', () => {
  it('sends failed entries again, and only those', async () => {
    const { client, calls } = recordingSqs([
      (entries) => ({ Failed: [{ Id: entries[1]!.Id, Code: 'InternalError', SenderFault: false }] }),
      () => ({}),
    ]);
    const out = await sendMessageBodies(client, 'q', ['a', 'b', 'c'], noSleep);
    expect(calls.map((c) => c.map((e) => e.MessageBody))).toEqual([['a', 'b', 'c'], ['b']]);
    expect(out).toMatchObject({ messages: 3, calls: 2, retried: 1 });
  });

  it('retries a call that throws, with growing back-off', async () => {
    const sleeps: number[] = [];
    const { client, calls } = recordingSqs([() => new Error('socket hang up'), () => new Error('socket hang up'), () => ({})]);
    await sendMessageBodies(client, 'q', ['a'], { sleep: async (ms) => void sleeps.push(ms), random: () => 1 });
    expect(calls).toHaveLength(3);
    expect(sleeps).toEqual([100, 200]);
  });

  it('throws when entries are still failing after the last attempt, never dropping them silently', async () => {
    const failAll: Answer = (entries) => ({ Failed: entries.map((e) => ({ Id: e.Id, Code: 'ServiceUnavailable', SenderFault: false })) });
    const { client, calls } = recordingSqs(Array.from({ length: 10 }, () => failAll));
    await expect(sendMessageBodies(client, 'q', ['a', 'b'], { ...noSleep, maxAttempts: 3 })).rejects.toThrow(/2 of 2 message\(s\) still unsent .* after 3 attempts: ServiceUnavailable/);
    expect(calls).toHaveLength(3);
  });

  it("does not retry an entry SQS refuses as the sender's fault", async () => {
    const { client, calls } = recordingSqs([(entries) => ({ Failed: [{ Id: entries[0]!.Id, Code: 'InvalidMessageContents', SenderFault: true }] })]);
    await expect(sendMessageBodies(client, 'q', ['a'], noSleep)).rejects.toThrow(/InvalidMessageContents/);
    expect(calls).toHaveLength(1);
  });
});

describe('work tokens and dead letters over the same batches', () => {
  it('sends work tokens ten to a call with their delay capped at 15 minutes', async () => {
    const seen: { DelaySeconds?: number }[][] = [];
    const client = {
      async send(command: SendMessageBatchCommand) {
        seen.push((command.input.Entries ?? []) as { DelaySeconds?: number }[]);
        return { Successful: [], Failed: [] };
      },
    } as unknown as SQSClient;
    await sendWorkTokens(client, 'q', 12, { backfillId: 7 }, 3_600);
    expect(seen.map((c) => c.length)).toEqual([10, 2]);
    expect(new Set(seen.flat().map((e) => e.DelaySeconds))).toEqual(new Set([900]));
  });

  it('reports the messages the dead-letter queue did not take, and those of a call that threw', async () => {
    const { client } = recordingSqs([(entries) => ({ Failed: [{ Id: entries[1]!.Id, Code: 'InternalError', SenderFault: false }] }), () => new Error('socket hang up')]);
    const rejected = Array.from({ length: 12 }, (_, i) => ({ messageId: `m${i}`, body: `body ${i}`, reason: 'bad' }));
    expect(await sendToDeadLetter(client, 'dlq', rejected)).toEqual(['m1', 'm10', 'm11']);
  });
});
