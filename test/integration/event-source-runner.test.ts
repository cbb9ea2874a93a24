import { createHash, randomUUID } from 'node:crypto';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventSourceRunner, type BatchInfo, type EventSourceRunner } from '../../dev/event-source-runner.ts';
import { awsClientConfig, ensureLocalStack, type LocalStackHandle } from '../../dev/localstack/index.ts';
import { pollUntil } from '../support/poll.ts';

// Short visibility so redeliveries happen within a test; maxReceiveCount 2 so the DLQ is reached fast.
const VISIBILITY_TIMEOUT_S = 1;
const MAX_RECEIVE_COUNT = 2;
const RUN_ID = `esr-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;

let localstack: LocalStackHandle;
let sqs: SQSClient;
const queuesToDelete: string[] = [];
const runners: EventSourceRunner[] = [];
let queueCounter = 0;

interface Queues {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
}

/** A fresh queue + DLQ per test, so no test sees another's leftovers. */
async function createQueues(): Promise<Queues> {
  const name = `${RUN_ID}-${++queueCounter}`;
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  queuesToDelete.push(dlq.QueueUrl!);
  const dlqArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes!.QueueArn!;
  const q = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(VISIBILITY_TIMEOUT_S),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: MAX_RECEIVE_COUNT }),
      },
    }),
  );
  queuesToDelete.push(q.QueueUrl!);
  const queueArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: q.QueueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes!.QueueArn!;
  return { queueUrl: q.QueueUrl!, queueArn, dlqUrl: dlq.QueueUrl! };
}

async function sendBodies(queueUrl: string, bodies: readonly string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    const out = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })),
      }),
    );
    expect(out.Failed ?? []).toEqual([]);
  }
}

async function counts(queueUrl: string): Promise<{ visible: number; inFlight: number }> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

async function waitUntilEmpty(queueUrl: string, timeoutMs = 15_000): Promise<void> {
  await pollUntil(
    async () => {
      const c = await counts(queueUrl);
      return c.visible === 0 && c.inFlight === 0;
    },
    { timeoutMs, intervalMs: 100, description: `${queueUrl} to be empty` },
  );
}

type Opts = Parameters<typeof startEventSourceRunner>[0];
function run(opts: Omit<Opts, 'sqs' | 'log'> & { log?: Opts['log'] }): EventSourceRunner {
  // waitTimeSeconds 1 keeps stop() quick; the expected handler errors stay out of the output.
  const runner = startEventSourceRunner({ sqs, waitTimeSeconds: 1, log: () => {}, ...opts });
  runners.push(runner);
  return runner;
}

/**
 * A runner that records the size of each batch. Its visibility timeout is longer than the window,
 * or the first messages reappear and are received twice (AWS demands visibility timeout >= function
 * timeout for the same reason).
 */
function recordBatchSizes(
  queueUrl: string,
  window: { batchSize: number; maxBatchingWindowMs: number },
): { runner: EventSourceRunner; sizes: number[] } {
  const sizes: number[] = [];
  const runner = run({
    queueUrl,
    ...window,
    visibilityTimeoutSeconds: 30,
    onBatch: (info) => sizes.push(info.size),
    handler: async () => {},
  });
  return { runner, sizes };
}

beforeAll(async () => {
  localstack = await ensureLocalStack({ log: (m) => process.stderr.write(`${m}\n`) });
  sqs = new SQSClient(awsClientConfig(localstack.endpoint));
}, 600_000);

afterAll(async () => {
  // Runners first: a poller must not be long-polling a queue while it is deleted.
  await Promise.all(runners.map((r) => r.stop()));
  await Promise.all(
    queuesToDelete.map((QueueUrl) => sqs?.send(new DeleteQueueCommand({ QueueUrl })).catch(() => {})),
  );
  sqs?.destroy();
  await localstack?.stop();
}, 120_000);

describe('event source runner against LocalStack SQS', () => {
  it('deletes every message of a successful batch and delivers Lambda-shaped records', async () => {
    const q = await createQueues();
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: q.queueUrl,
        MessageBody: '{"n":0}',
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: 'candle' },
          blob: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]) },
        },
      }),
    );
    await sendBodies(q.queueUrl, ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);

    const seen: SQSRecord[] = [];
    const runner = run({
      queueUrl: q.queueUrl,
      handler: async (event) => {
        seen.push(...event.Records);
      },
    });
    await pollUntil(() => seen.length >= 5, { timeoutMs: 15_000, description: '5 records' });
    await waitUntilEmpty(q.queueUrl);
    await runner.stop();

    expect(seen.map((r) => r.body).sort()).toEqual(['{"n":0}', '{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);
    expect(runner.stats).toMatchObject({ messagesReceived: 5, messagesDeleted: 5, messagesFailed: 0, handlerErrors: 0 });

    const first = seen.find((r) => r.body === '{"n":0}')!;
    expect(first).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: q.queueArn,
      awsRegion: process.env.AWS_REGION ?? 'us-east-1',
      md5OfBody: createHash('md5').update('{"n":0}').digest('hex'),
      attributes: { ApproximateReceiveCount: '1', SenderId: expect.any(String) },
      messageAttributes: {
        kind: { stringValue: 'candle', dataType: 'String', stringListValues: [], binaryListValues: [] },
        blob: { binaryValue: Buffer.from([1, 2, 3]).toString('base64'), dataType: 'Binary' },
      },
    });
    expect(first.messageId).toMatch(/\S/);
    expect(first.receiptHandle).toMatch(/\S/);
    expect(Number(first.attributes.SentTimestamp)).toBeGreaterThan(0);
    expect(Number(first.attributes.ApproximateFirstReceiveTimestamp)).toBeGreaterThan(0);
  });

  it('redelivers only reported failures and lets SQS move them to the DLQ after maxReceiveCount', async () => {
    const q = await createQueues();
    await sendBodies(q.queueUrl, ['ok-1', 'poison', 'ok-2']);

    const handled: { body: string; receiveCount: string }[] = [];
    const runner = run({
      queueUrl: q.queueUrl,
      handler: async (event): Promise<SQSBatchResponse> => {
        for (const r of event.Records) handled.push({ body: r.body, receiveCount: r.attributes.ApproximateReceiveCount });
        return {
          batchItemFailures: event.Records.filter((r) => r.body === 'poison').map((r) => ({ itemIdentifier: r.messageId })),
        };
      },
    });

    // SQS itself redrives on the receive after the last allowed one; the runner only keeps polling.
    await pollUntil(async () => (await counts(q.dlqUrl)).visible === 1, {
      timeoutMs: 20_000,
      description: 'the poison message in the DLQ',
    });
    await waitUntilEmpty(q.queueUrl);
    await runner.stop();

    expect(handled.filter((h) => h.body === 'ok-1')).toHaveLength(1);
    expect(handled.filter((h) => h.body === 'ok-2')).toHaveLength(1);
    expect(handled.filter((h) => h.body === 'poison').map((h) => h.receiveCount)).toEqual(['1', '2']);
    expect(runner.stats).toMatchObject({ messagesDeleted: 2, messagesFailed: MAX_RECEIVE_COUNT, handlerErrors: 0 });

    const dead = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q.dlqUrl, WaitTimeSeconds: 1 }));
    expect(dead.Messages?.map((m) => m.Body)).toEqual(['poison']);
  });

  it('retries the whole batch when the handler throws, then succeeds', async () => {
    const q = await createQueues();
    await sendBodies(q.queueUrl, ['a', 'b']);

    const attempts: string[][] = [];
    const batches: BatchInfo[] = [];
    const runner = run({
      queueUrl: q.queueUrl,
      batchSize: 10,
      maxBatchingWindowMs: 500, // both messages land in one batch
      onBatch: (info) => batches.push(info),
      handler: async (event: SQSEvent) => {
        attempts.push(event.Records.map((r) => `${r.body}@${r.attributes.ApproximateReceiveCount}`).sort());
        if (event.Records.some((r) => r.attributes.ApproximateReceiveCount === '1')) {
          throw new Error('database unavailable');
        }
      },
    });
    await pollUntil(() => runner.stats.messagesDeleted >= 2, { timeoutMs: 15_000, description: 'the retry to succeed' });
    await waitUntilEmpty(q.queueUrl);
    await runner.stop();

    expect(attempts).toEqual([
      ['a@1', 'b@1'],
      ['a@2', 'b@2'],
    ]);
    expect(batches[0]).toMatchObject({ size: 2, deleted: 0, error: expect.any(Error) });
    expect(batches[1]).toMatchObject({ size: 2, deleted: 2, failedMessageIds: [] });
    expect(runner.stats).toMatchObject({ batches: 2, handlerErrors: 1, messagesDeleted: 2, messagesFailed: 2 });
    expect((await counts(q.dlqUrl)).visible).toBe(0);
  });

  it('treats a malformed batch response as a failed invocation', async () => {
    const q = await createQueues();
    await sendBodies(q.queueUrl, ['x']);

    let calls = 0;
    const runner = run({
      queueUrl: q.queueUrl,
      // An itemIdentifier that is not a messageId of the batch: Lambda fails the whole batch.
      handler: async () => (++calls === 1 ? { batchItemFailures: [{ itemIdentifier: 'not-a-message-id' }] } : undefined),
    });
    await pollUntil(() => runner.stats.messagesDeleted === 1, { timeoutMs: 15_000, description: 'the retry' });
    await runner.stop();
    expect(runner.stats).toMatchObject({ batches: 2, handlerErrors: 1, messagesFailed: 1 });
  });

  it('accumulates several receives into one batch during the batching window, up to batchSize', async () => {
    // Across time: messages arriving while the window is open join the batch already started.
    const q1 = await createQueues();
    const { runner: r1, sizes: sizes1 } = recordBatchSizes(q1.queueUrl, { batchSize: 10, maxBatchingWindowMs: 2_000 });
    await sendBodies(q1.queueUrl, ['1', '2', '3']);
    // The runner holds the first three (in flight) with its window still open: send three more.
    await pollUntil(async () => (await counts(q1.queueUrl)).inFlight === 3, { timeoutMs: 5_000, description: 'receive' });
    await sendBodies(q1.queueUrl, ['4', '5', '6']);
    await pollUntil(() => sizes1.length >= 1, { timeoutMs: 10_000, description: 'the first batch' });
    await waitUntilEmpty(q1.queueUrl);
    await r1.stop();
    expect(sizes1).toEqual([6]);

    // Beyond ReceiveMessage's 10: three receives make one batch of 25; the rest starts the next one.
    const q2 = await createQueues();
    await sendBodies(q2.queueUrl, Array.from({ length: 30 }, (_, i) => `m${i}`));
    const { runner: r2, sizes: sizes2 } = recordBatchSizes(q2.queueUrl, { batchSize: 25, maxBatchingWindowMs: 1_000 });
    await pollUntil(() => r2.stats.messagesDeleted === 30, { timeoutMs: 15_000, description: 'all 30 deleted' });
    await r2.stop();
    expect(sizes2).toEqual([25, 5]);
  });

  it('warns about a visibility timeout shorter than the window and keeps one record per message', async () => {
    const q = await createQueues();
    await sendBodies(q.queueUrl, ['once']);
    const logs: string[] = [];
    const batches: BatchInfo[] = [];
    const runner = run({
      queueUrl: q.queueUrl,
      maxBatchingWindowMs: 1_800, // queue visibility is 1 s: the message reappears inside the window
      log: (m) => logs.push(m),
      onBatch: (info) => batches.push(info),
      handler: async () => {},
    });
    await pollUntil(() => batches.length === 1, { timeoutMs: 10_000, description: 'one batch' });
    await runner.stop();
    expect(batches[0]).toMatchObject({ size: 1, deleted: 1 });
    expect(logs.some((m) => m.includes('not longer than the batching window'))).toBe(true);
    await waitUntilEmpty(q.queueUrl);
    expect((await counts(q.dlqUrl)).visible).toBe(0);
  });

  it('stop() waits for the in-flight batch, which still gets deleted, and then stops polling', async () => {
    const q = await createQueues();
    await sendBodies(q.queueUrl, ['slow']);

    let entered = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const runner = run({
      queueUrl: q.queueUrl,
      visibilityTimeoutSeconds: 30, // longer than the handler is held, so no redelivery meanwhile
      handler: async () => {
        entered = true;
        await gate;
      },
    });
    await pollUntil(() => entered, { timeoutMs: 10_000, description: 'the handler to start' });

    let stopped = false;
    const stopping = runner.stop().then(() => {
      stopped = true;
    });
    // A negative check needs some time to pass; the handler is blocked, so stop() cannot finish.
    await new Promise((r) => setTimeout(r, 300));
    expect(stopped).toBe(false);

    release();
    await stopping;
    expect(runner.stats).toMatchObject({ batches: 1, messagesDeleted: 1 });
    await waitUntilEmpty(q.queueUrl);

    // Nothing polls any more: a new message stays visible.
    await sendBodies(q.queueUrl, ['after-stop']);
    await pollUntil(async () => (await counts(q.queueUrl)).visible === 1, { timeoutMs: 5_000, description: 'visible' });
    expect(runner.stats.messagesReceived).toBe(1);
  });
});
