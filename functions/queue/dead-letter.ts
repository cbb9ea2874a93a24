import { SendMessageBatchCommand, type MessageAttributeValue, type SQSClient } from '@aws-sdk/client-sqs';

export interface Rejected {
  messageId: string;
  body: string;
  reason: string;
  receiveCount?: string | undefined;
}

/** Attribute that carries why a message was rejected; `candlekeep redrive` and people read it. */
export const REASON_ATTRIBUTE = 'candlekeep-reason';
const MAX_REASON = 1000;

/**
 * Sends rejected messages to the dead-letter queue with their reason as a message attribute.
 * Returns the ids that could not be sent: the caller must report those as batch item failures, so
 * SQS keeps them (and its redrive policy still gets them to the DLQ) — nothing is dropped.
 */
export async function sendToDeadLetter(sqs: SQSClient, queueUrl: string, rejected: readonly Rejected[]): Promise<string[]> {
  const failed: string[] = [];
  for (let i = 0; i < rejected.length; i += 10) {
    const chunk = rejected.slice(i, i + 10);
    const attrs = (r: Rejected): Record<string, MessageAttributeValue> => ({
      [REASON_ATTRIBUTE]: { DataType: 'String', StringValue: r.reason.slice(0, MAX_REASON) },
      'candlekeep-source-message-id': { DataType: 'String', StringValue: r.messageId },
      'candlekeep-rejected-at': { DataType: 'String', StringValue: new Date().toISOString() },
    });
    try {
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((r, j) => ({ Id: String(j), MessageBody: r.body, MessageAttributes: attrs(r) })),
        }),
      );
      for (const f of out.Failed ?? []) {
        const r = chunk[Number(f.Id)];
        if (r) failed.push(r.messageId);
      }
    } catch {
      failed.push(...chunk.map((r) => r.messageId));
    }
  }
  return failed;
}
