import { setTimeout as defaultSleep } from 'node:timers/promises';
import type { MessageAttributeValue, SQSClient } from '@aws-sdk/client-sqs';
import { SQS_MAX_BYTES } from '../candles/candle-batch.ts';

/** SendMessageBatch takes at most 10 entries and 256 KiB of message bodies per call. */
export const MAX_BATCH_ENTRIES = 10;
export const MAX_BATCH_BYTES = SQS_MAX_BYTES;

/**
 * The part of an SQS client the functions use. A Lambda container's is made by lazySqsClient
 * (lambda-kit/container.ts), which loads the SDK module only when something is first sent.
 */
export type SqsClient = Pick<SQSClient, 'send'>;

/**
 * The SQS module, loaded when first needed rather than at import: it costs about 80 ms of cold
 * start, and the writer, for one, sends only to dead-letter a bad message.
 */
export const sqsModule = () => import('@aws-sdk/client-sqs');

export class QueueSendError extends Error {
  override name = 'QueueSendError';
}

export interface OutgoingMessage {
  /** Unique among the messages of one send; failures name it. */
  id: string;
  body: string;
  delaySeconds?: number;
  attributes?: Record<string, MessageAttributeValue> | undefined;
}

export interface FailedMessage {
  message: OutgoingMessage;
  /** SQS's code and message, or the error of a call that threw. */
  reason: string;
  /** SQS blames the message itself: sending it again fails the same way. */
  senderFault: boolean;
}

export interface BatchesResult {
  /** SendMessageBatch calls made. */
  calls: number;
  failed: FailedMessage[];
  /** Accepted messages with the id SQS gave each. */
  sent: { message: OutgoingMessage; messageId: string }[];
}

/** Groups entries into calls of at most 10 entries and 256 KiB, keeping their order. */
export function packBatches<T extends { bytes: number }>(entries: readonly T[], maxEntries = MAX_BATCH_ENTRIES, maxBytes = MAX_BATCH_BYTES): T[][] {
  const calls: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const e of entries) {
    if (e.bytes > maxBytes) throw new QueueSendError(`a message of ${e.bytes} bytes exceeds SQS's ${maxBytes}-byte limit`);
    if (current.length > 0 && (current.length >= maxEntries || size + e.bytes > maxBytes)) {
      calls.push(current);
      current = [];
      size = 0;
    }
    current.push(e);
    size += e.bytes;
  }
  if (current.length > 0) calls.push(current);
  return calls;
}

/**
 * Sends messages once, in SendMessageBatch calls packed under both limits, and reports which were
 * not accepted. A call that throws fails all of its messages; the caller decides whether to retry,
 * dead-letter, keep them in their queue, or give up.
 */
export async function sendBatches(sqs: SqsClient, queueUrl: string, messages: readonly OutgoingMessage[]): Promise<BatchesResult> {
  const failed: FailedMessage[] = [];
  const sent: BatchesResult['sent'] = [];
  const groups = packBatches(messages.map((message) => ({ message, bytes: Buffer.byteLength(message.body) })));
  const { SendMessageBatchCommand } = await sqsModule();
  for (const group of groups) {
    try {
      const out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: group.map(({ message: m }) => ({
            Id: m.id,
            MessageBody: m.body,
            ...(m.delaySeconds !== undefined ? { DelaySeconds: m.delaySeconds } : {}),
            ...(m.attributes ? { MessageAttributes: m.attributes } : {}),
          })),
        }),
      );
      for (const ok of out.Successful ?? []) {
        const entry = group.find((e) => e.message.id === ok.Id);
        if (entry && ok.MessageId) sent.push({ message: entry.message, messageId: ok.MessageId });
      }
      for (const f of out.Failed ?? []) {
        const entry = group.find((e) => e.message.id === f.Id);
        if (entry) failed.push({ message: entry.message, reason: `${f.Code ?? 'failed'}: ${f.Message ?? ''}`.trim(), senderFault: f.SenderFault ?? false });
      }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      failed.push(...group.map(({ message }) => ({ message, reason, senderFault: false })));
    }
  }
  return { calls: groups.length, failed, sent };
}

export interface SendOptions {
  /** Calls per entry, the first included, before giving up. */
  maxAttempts?: number;
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface SendResult {
  messages: number;
  /** SendMessageBatch calls made, retries included. */
  calls: number;
  retried: number;
}


/**
 * Sends message bodies with SendMessageBatch, packed under both batch limits. Entries SQS reports
 * as failed (and whole calls that throw) are sent again with jittered backoff; anything still
 * unsent after `maxAttempts` throws, so a caller never believes candles were queued when they were not.
 */
export async function sendMessageBodies(sqs: SqsClient, queueUrl: string, bodies: readonly string[], options: SendOptions = {}): Promise<SendResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  let pending: OutgoingMessage[] = bodies.map((body, i) => ({ id: String(i), body }));
  let calls = 0;
  let retried = 0;
  let lastProblem = '';
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > 1) {
      if (attempt > maxAttempts) {
        throw new QueueSendError(`${pending.length} of ${bodies.length} message(s) still unsent to ${queueUrl} after ${maxAttempts} attempts: ${lastProblem}`);
      }
      retried += pending.length;
      const ceiling = baseDelayMs * 2 ** (attempt - 2);
      await sleep(ceiling / 2 + random() * (ceiling / 2));
    }
    const out = await sendBatches(sqs, queueUrl, pending);
    calls += out.calls;
    const refused = out.failed.find((f) => f.senderFault);
    if (refused) throw new QueueSendError(`SQS refused message ${refused.message.id}: ${refused.reason}`);
    if (out.failed.length > 0) lastProblem = out.failed.at(-1)!.reason;
    pending = out.failed.map((f) => f.message);
  }
  return { messages: bodies.length, calls, retried };
}
