import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import { awsClientConfig } from '../../dev/localstack/index.ts';
import { queueCounts } from '../../functions/queue/counts.ts';
import { sendMessageBodies } from '../../functions/queue/send.ts';
import { uniqueName } from './db.ts';

export function testSqs(): SQSClient {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) throw new Error('AWS_ENDPOINT_URL is not set: run integration tests through vitest (global setup)');
  return new SQSClient(awsClientConfig(endpoint));
}

export interface TestQueues {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  delete(): Promise<void>;
}

/** A uniquely named queue with a dead-letter queue, as the stack defines them (redrive after maxReceiveCount). */
export async function createQueues(sqs: SQSClient, opts: { maxReceiveCount?: number; visibilityTimeout?: number } = {}): Promise<TestQueues> {
  const name = uniqueName('candles');
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const dlqAttrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }));
  const q = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(opts.visibilityTimeout ?? 2),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqAttrs.Attributes!.QueueArn, maxReceiveCount: opts.maxReceiveCount ?? 3 }),
      },
    }),
  );
  const qAttrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: q.QueueUrl, AttributeNames: ['QueueArn'] }));
  return {
    queueUrl: q.QueueUrl!,
    queueArn: qAttrs.Attributes!.QueueArn!,
    dlqUrl: dlq.QueueUrl!,
    async delete() {
      await sqs.send(new DeleteQueueCommand({ QueueUrl: q.QueueUrl }));
      await sqs.send(new DeleteQueueCommand({ QueueUrl: dlq.QueueUrl }));
    },
  };
}

export async function sendBodies(sqs: SQSClient, queueUrl: string, bodies: readonly string[]): Promise<void> {
  await sendMessageBodies(sqs, queueUrl, bodies);
}

/** Visible + in-flight messages: zero means everything was processed and deleted. */
export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { visible, inFlight } = await queueCounts(sqs, queueUrl);
  return visible + inFlight;
}

/** Receives (without deleting) every message currently visible, with attributes. */
export async function drain(sqs: SQSClient, queueUrl: string, expected: number, timeoutMs = 20_000): Promise<Message[]> {
  const seen = new Map<string, Message>();
  const deadline = Date.now() + timeoutMs;
  while (seen.size < expected && Date.now() < deadline) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: 30,
        MessageAttributeNames: ['All'],
      }),
    );
    for (const m of out.Messages ?? []) seen.set(m.MessageId!, m);
  }
  return [...seen.values()];
}
