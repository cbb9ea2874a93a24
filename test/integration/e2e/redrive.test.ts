import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GetQueueAttributesCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_REASON, redrive, type RedriveReport } from '../../../functions/queue/redrive.ts';
import { DEAD_LETTER_ID_ATTRIBUTE, REASON_ATTRIBUTE, sendToDeadLetter } from '../../../functions/queue/dead-letter.ts';
import { createQueues, queueDepth, testSqs, type TestQueues } from '../../support/sqs.ts';
import { readAll } from './support.ts';

const execFileAsync = promisify(execFile);
const CLI = fileURLToPath(new URL('../../../bin/candlekeep.js', import.meta.url));

let sqs: SQSClient;
let queues: TestQueues;

beforeAll(async () => {
  sqs = testSqs();
  queues = await createQueues(sqs, { maxReceiveCount: 5, visibilityTimeout: 5 });
});

afterAll(async () => {
  await queues?.delete();
});

async function visible(queueUrl: string): Promise<number> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

/** Five messages the writer rejected (with its reasons) and two SQS moved after maxReceiveCount (no reason). */
async function fillDeadLetterQueue(): Promise<string[]> {
  const rejected = [
    { messageId: 'm1', body: 'not json 1', reason: 'body is not JSON: Unexpected token' },
    { messageId: 'm2', body: 'not json 2', reason: 'body is not JSON: Unexpected token' },
    { messageId: 'm3', body: 'not json 3', reason: 'body is not JSON: Unexpected token' },
    { messageId: 'm4', body: '{"v":2}', reason: 'invalid CandleBatch: v: unsupported CandleBatch version 2; this writer reads v1' },
    { messageId: 'm5', body: '{"v":3}', reason: 'invalid CandleBatch: v: unsupported CandleBatch version 3; this writer reads v1' },
  ];
  expect(await sendToDeadLetter(sqs, queues.dlqUrl, rejected)).toEqual([]);
  const bySqs = ['{"v":1,"timed":"out"}', '{"v":1,"db":"down"}'];
  await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queues.dlqUrl,
      Entries: bySqs.map((MessageBody, i) => ({ Id: String(i), MessageBody, MessageAttributes: { trace: { DataType: 'String', StringValue: `t${i}` } } })),
    }),
  );
  return [...rejected.map((r) => r.body), ...bySqs];
}

describe('candlekeep redrive on LocalStack', () => {
  it('reports without moving on --dry-run, honours --max, then moves the rest with their reasons grouped', async () => {
    const bodies = await fillDeadLetterQueue();

    const dry = await redrive(sqs, { queueUrl: queues.queueUrl, dlqUrl: queues.dlqUrl, dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, moved: 7, failed: 0 });
    expect(dry.reasons).toEqual([
      { reason: 'body is not JSON: Unexpected token', count: 3 },
      { reason: NO_REASON, count: 2 },
      { reason: 'invalid CandleBatch: v: unsupported CandleBatch version 2; this writer reads v1', count: 1 },
      { reason: 'invalid CandleBatch: v: unsupported CandleBatch version 3; this writer reads v1', count: 1 },
    ]);
    // A dry run moves nothing and hands every message back (visible) at once.
    expect(await queueDepth(sqs, queues.queueUrl)).toBe(0);
    expect(await visible(queues.dlqUrl)).toBe(7);

    const first = await redrive(sqs, { queueUrl: queues.queueUrl, dlqUrl: queues.dlqUrl, max: 2 });
    expect(first).toMatchObject({ dryRun: false, moved: 2, failed: 0, errors: [] });

    // The rest through the command line, as a user runs it, with the queues from the environment.
    const { stdout } = await execFileAsync(process.execPath, [CLI, 'redrive', '--json'], {
      env: { ...process.env, CANDLEKEEP_QUEUE_URL: queues.queueUrl, CANDLEKEEP_DLQ_URL: queues.dlqUrl },
    });
    const rest = JSON.parse(stdout) as RedriveReport;
    expect(rest).toMatchObject({ moved: 5, failed: 0 });
    expect(rest.reasons.reduce((n, r) => n + r.count, 0)).toBe(5);

    expect(await queueDepth(sqs, queues.dlqUrl)).toBe(0);
    const moved = await readAll(sqs, queues.queueUrl);
    expect(moved.map((m) => m.Body).sort()).toEqual([...bodies].sort());
    for (const m of moved) {
      // The writer's verdict stays behind; other attributes travel with the message, plus the id it
      // had in the dead-letter queue (the writer clears its dead-letter record by it).
      expect(m.MessageAttributes?.[REASON_ATTRIBUTE]).toBeUndefined();
      expect(m.MessageAttributes?.[DEAD_LETTER_ID_ATTRIBUTE]?.StringValue).toMatch(/\S/);
      if (m.Body?.includes('"timed"')) expect(m.MessageAttributes?.trace?.StringValue).toBe('t0');
    }
  });

  it('tells the user how to name the queues when none are given', async () => {
    const env = { ...process.env };
    delete env.CANDLEKEEP_QUEUE_URL;
    delete env.CANDLEKEEP_DLQ_URL;
    const out = await execFileAsync(process.execPath, [CLI, 'redrive'], { env }).catch((err: { code: number; stderr: string }) => err);
    expect(out).toMatchObject({ code: 2 });
    expect((out as { stderr: string }).stderr).toMatch(/--stack <name>.*CANDLEKEEP_QUEUE_URL and CANDLEKEEP_DLQ_URL/s);
  });
});
