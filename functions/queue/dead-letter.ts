import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { sendBatches, type SqsClient } from './send.ts';

export interface Rejected {
  messageId: string;
  body: string;
  reason: string;
  receiveCount?: string | undefined;
}

/** Attribute that carries why a message was rejected; `candlekeep redrive` and people read it. */
export const REASON_ATTRIBUTE = 'candlekeep-reason';
const SOURCE_MESSAGE_ATTRIBUTE = 'candlekeep-source-message-id';
const REJECTED_AT_ATTRIBUTE = 'candlekeep-rejected-at';
/**
 * Set by a redrive: the id the message had in the dead-letter queue, so the writer that stores it
 * can drop its dead-letter record at once instead of at the next scan.
 */
export const DEAD_LETTER_ID_ATTRIBUTE = 'candlekeep-dead-letter-id';
/** Attributes added when a message is rejected; a redriven message starts without them. */
export const REJECTION_ATTRIBUTES: ReadonlySet<string> = new Set([REASON_ATTRIBUTE, SOURCE_MESSAGE_ATTRIBUTE, REJECTED_AT_ATTRIBUTE]);
const MAX_REASON = 1000;

/** A rejected message now in the dead-letter queue, under the id the queue gave it. */
export interface DeadLettered {
  rejected: Rejected;
  deadLetterId: string;
}

/**
 * Sends rejected messages to the dead-letter queue with their reason as a message attribute.
 * `failed` are the ids that could not be sent: the caller must report those as batch item failures,
 * so SQS keeps them (and its redrive policy still gets them to the DLQ) — nothing is dropped.
 */
export async function sendRejections(
  sqs: SqsClient,
  queueUrl: string,
  rejected: readonly Rejected[],
): Promise<{ failed: string[]; sent: DeadLettered[] }> {
  const attributes = (r: Rejected): Record<string, MessageAttributeValue> => ({
    [REASON_ATTRIBUTE]: { DataType: 'String', StringValue: r.reason.slice(0, MAX_REASON) },
    [SOURCE_MESSAGE_ATTRIBUTE]: { DataType: 'String', StringValue: r.messageId },
    [REJECTED_AT_ATTRIBUTE]: { DataType: 'String', StringValue: new Date().toISOString() },
  });
  const { failed, sent } = await sendBatches(
    sqs,
    queueUrl,
    rejected.map((r, i) => ({ id: String(i), body: r.body, attributes: attributes(r) })),
  );
  return {
    failed: failed.flatMap((f) => rejected[Number(f.message.id)]?.messageId ?? []),
    sent: sent.flatMap((s) => {
      const r = rejected[Number(s.message.id)];
      return r ? [{ rejected: r, deadLetterId: s.messageId }] : [];
    }),
  };
}

/** As sendRejections, returning only the ids that could not be sent. */
export async function sendToDeadLetter(sqs: SqsClient, queueUrl: string, rejected: readonly Rejected[]): Promise<string[]> {
  return (await sendRejections(sqs, queueUrl, rejected)).failed;
}
