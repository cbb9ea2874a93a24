import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { SQS_MAX_BYTES } from '../candles/candle-batch.ts';

/** SendMessageBatch takes at most 10 entries and 256 KiB of message bodies per call. */
export const MAX_BATCH_ENTRIES = 10;
export const MAX_BATCH_BYTES = SQS_MAX_BYTES;

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

export class QueueSendError extends Error {
  override name = 'QueueSendError';
}

interface Entry {
  id: string;
  body: string;
  bytes: number;
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

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Sends message bodies with SendMessageBatch, packed under both batch limits. Entries SQS reports
 * as failed (and whole calls that throw) are sent again with jittered backoff; anything still
 * unsent after `maxAttempts` throws, so a caller never believes candles were queued when they were not.
 */
export async function sendMessageBodies(sqs: SQSClient, queueUrl: string, bodies: readonly string[], options: SendOptions = {}): Promise<SendResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  let pending: Entry[] = bodies.map((body, i) => ({ id: String(i), body, bytes: Buffer.byteLength(body) }));
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
    const failed: Entry[] = [];
    for (const group of packBatches(pending)) {
      calls += 1;
      try {
        const out = await sqs.send(
          new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: group.map((e) => ({ Id: e.id, MessageBody: e.body })) }),
        );
        for (const f of out.Failed ?? []) {
          const entry = group.find((e) => e.id === f.Id);
          if (!entry) continue;
          // A sender fault (the message itself is invalid) fails the same way every time.
          if (f.SenderFault) throw new QueueSendError(`SQS refused message ${f.Id}: ${f.Code ?? ''} ${f.Message ?? ''}`.trim());
          lastProblem = `${f.Code ?? 'failed'}: ${f.Message ?? ''}`;
          failed.push(entry);
        }
      } catch (err) {
        if (err instanceof QueueSendError) throw err;
        lastProblem = err instanceof Error ? err.message : String(err);
        failed.push(...group);
      }
    }
    pending = failed;
  }
  return { messages: bodies.length, calls, retried };
}
