import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs';
import { queueCounts } from './counts.ts';
import { DEAD_LETTER_ID_ATTRIBUTE, REASON_ATTRIBUTE, REJECTION_ATTRIBUTES } from './dead-letter.ts';
import { sendBatches, sqsModule, type SqsClient } from './send.ts';

/** What a message moved by SQS itself (after maxReceiveCount failed receives) shows as its reason. */
export const NO_REASON = '(no reason attribute: SQS moved it after maxReceiveCount receives, i.e. the writer kept failing on it)';

export interface RedriveOptions {
  queueUrl: string;
  dlqUrl: string;
  dryRun?: boolean;
  /** At most this many messages; default: as many as the DLQ held when the redrive started. */
  max?: number;
  log?: (msg: string) => void;
}

export interface RedriveReport {
  dryRun: boolean;
  from: string;
  to: string;
  /** Sent to the queue and deleted from the DLQ (with dryRun: would be). */
  moved: number;
  /** Could not be sent; they stay in the DLQ. */
  failed: number;
  reasons: { reason: string; count: number }[];
  errors: string[];
}

/**
 * Moves dead-lettered messages back to the candles queue: receive from the DLQ, send to the queue
 * (same body, the writer's rejection attributes dropped), and delete from the DLQ only what the
 * send accepted, so a failure at any point leaves a message in one queue or the other (at worst in
 * both, which the writer's idempotent upsert absorbs), never in neither.
 *
 * It stops at `max`, when the DLQ is empty, or after as many messages as the DLQ held at the start:
 * a message the writer rejects again while this runs comes back to the DLQ and must not be
 * redriven in a loop.
 */
export async function redrive(sqs: SqsClient, opts: RedriveOptions): Promise<RedriveReport> {
  const dryRun = opts.dryRun ?? false;
  const dlq = await queueCounts(sqs, opts.dlqUrl);
  const initial = dlq.visible + dlq.inFlight;
  const limit = Math.min(opts.max ?? Number.POSITIVE_INFINITY, initial);
  const report: RedriveReport = { dryRun, from: opts.dlqUrl, to: opts.queueUrl, moved: 0, failed: 0, reasons: [], errors: [] };
  const reasons = new Map<string, number>();
  const seen = new Set<string>();
  const held: Message[] = [];
  let emptyReceives = 0;
  const { DeleteMessageBatchCommand, ReceiveMessageCommand } = await sqsModule();

  while (report.moved + report.failed < limit && emptyReceives < 2) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: opts.dlqUrl,
        MaxNumberOfMessages: Math.min(10, limit - report.moved - report.failed),
        WaitTimeSeconds: 1,
        // Long enough to send and delete; a crash in between makes them visible again.
        VisibilityTimeout: 60,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const fresh = (out.Messages ?? []).filter((m) => m.MessageId && !seen.has(m.MessageId));
    if (fresh.length === 0) {
      emptyReceives += 1;
      continue;
    }
    emptyReceives = 0;
    for (const m of fresh) seen.add(m.MessageId!);
    const batch = fresh.slice(0, Math.max(0, limit - report.moved - report.failed));
    // Beyond the limit: hand back at once.
    held.push(...fresh.slice(batch.length));

    if (dryRun) {
      held.push(...batch);
      for (const m of batch) count(reasons, reasonOf(m));
      report.moved += batch.length;
      continue;
    }
    const sent = await sendBatches(
      sqs,
      opts.queueUrl,
      batch.map((m, i) => ({ id: String(i), body: m.Body ?? '', attributes: forwardedAttributes(m) })),
    );
    const failedIds = new Set(sent.failed.map((f) => f.message.id));
    for (const f of sent.failed) report.errors.push(`send of ${batch[Number(f.message.id)]?.MessageId}: ${f.reason}`);
    const ok = batch.filter((_, i) => !failedIds.has(String(i)));
    const notSent = batch.filter((_, i) => failedIds.has(String(i)));
    held.push(...notSent);
    report.failed += notSent.length;
    if (ok.length > 0) {
      const del = await sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: opts.dlqUrl, Entries: ok.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }),
      );
      // Sent but not deleted: it is now in both queues and reappears in the DLQ; the upsert is idempotent.
      for (const f of del.Failed ?? []) report.errors.push(`delete of ${ok[Number(f.Id)]?.MessageId} from the DLQ: ${f.Code ?? ''} ${f.Message ?? ''}`.trim());
    }
    for (const m of ok) count(reasons, reasonOf(m));
    report.moved += ok.length;
    opts.log?.(`redrive: ${report.moved} moved${report.failed ? `, ${report.failed} failed` : ''}`);
  }

  await releaseMessages(sqs, opts.dlqUrl, held);
  report.reasons = [...reasons].map(([reason, n]) => ({ reason, count: n })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  return report;
}

function reasonOf(m: Message): string {
  return m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue ?? NO_REASON;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function forwardedAttributes(m: Message): Record<string, MessageAttributeValue> {
  const entries = Object.entries(m.MessageAttributes ?? {}).filter(([name]) => !REJECTION_ATTRIBUTES.has(name));
  return { ...Object.fromEntries(entries), [DEAD_LETTER_ID_ATTRIBUTE]: { DataType: 'String', StringValue: m.MessageId ?? '' } };
}

/** Makes received messages visible again at once (a dry run's, or those a run held but did not move). */
export async function releaseMessages(sqs: SqsClient, queueUrl: string, messages: readonly Message[]): Promise<void> {
  const { ChangeMessageVisibilityBatchCommand } = await sqsModule();
  for (let i = 0; i < messages.length; i += 10) {
    const chunk = messages.slice(i, i + 10);
    await sqs
      .send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
        }),
      )
      // Not fatal: they become visible anyway when their visibility timeout ends.
      .catch(() => {});
  }
}
