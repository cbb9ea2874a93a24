import { parseArgs } from 'node:util';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { REASON_ATTRIBUTE } from '../../functions/queue/dead-letter.ts';
import type { Command } from '../command.ts';
import { progress, UsageError } from '../command.ts';

const USAGE = 'candlekeep redrive [--dry-run] [--max <n>] [--json] [--stack <name> | --queue-url <url> --dlq-url <url>]';

/** What a message moved by SQS itself (after maxReceiveCount failed receives) shows as its reason. */
export const NO_REASON = '(no reason attribute: SQS moved it after maxReceiveCount receives, i.e. the writer kept failing on it)';

/** Attributes the writer adds when it rejects a message; a redriven message starts without them. */
const REJECTION_ATTRIBUTES = new Set([REASON_ATTRIBUTE, 'candlekeep-source-message-id', 'candlekeep-rejected-at']);

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
export async function redrive(sqs: SQSClient, opts: RedriveOptions): Promise<RedriveReport> {
  const dryRun = opts.dryRun ?? false;
  const initial = await depth(sqs, opts.dlqUrl);
  const limit = Math.min(opts.max ?? Number.POSITIVE_INFINITY, initial);
  const report: RedriveReport = { dryRun, from: opts.dlqUrl, to: opts.queueUrl, moved: 0, failed: 0, reasons: [], errors: [] };
  const reasons = new Map<string, number>();
  const seen = new Set<string>();
  const held: Message[] = [];
  let emptyReceives = 0;

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
    const sent = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: opts.queueUrl,
        Entries: batch.map((m, i) => ({ Id: String(i), MessageBody: m.Body ?? '', MessageAttributes: forwardedAttributes(m) })),
      }),
    );
    const okIds = new Set((sent.Successful ?? []).map((s) => s.Id));
    for (const f of sent.Failed ?? []) report.errors.push(`send of ${batch[Number(f.Id)]?.MessageId}: ${f.Code ?? ''} ${f.Message ?? ''}`.trim());
    const ok = batch.filter((_, i) => okIds.has(String(i)));
    const notSent = batch.filter((_, i) => !okIds.has(String(i)));
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

  await release(sqs, opts.dlqUrl, held);
  report.reasons = [...reasons].map(([reason, n]) => ({ reason, count: n })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  return report;
}

function reasonOf(m: Message): string {
  return m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue ?? NO_REASON;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function forwardedAttributes(m: Message): Record<string, MessageAttributeValue> | undefined {
  const entries = Object.entries(m.MessageAttributes ?? {}).filter(([name]) => !REJECTION_ATTRIBUTES.has(name));
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

async function depth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

/** Makes messages this run holds but did not move visible again at once. */
async function release(sqs: SQSClient, queueUrl: string, messages: readonly Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 10) {
    const chunk = messages.slice(i, i + 10);
    await sqs
      .send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
        }),
      )
      // Not fatal: they become visible anyway when the 60 s visibility timeout ends.
      .catch(() => {});
  }
}

/** Queue URLs from flags, then CANDLEKEEP_QUEUE_URL / CANDLEKEEP_DLQ_URL, then the stack's outputs. */
export async function resolveQueues(values: { stack?: string | undefined; 'queue-url'?: string | undefined; 'dlq-url'?: string | undefined }): Promise<{ queueUrl: string; dlqUrl: string }> {
  let queueUrl = values['queue-url'] ?? process.env.CANDLEKEEP_QUEUE_URL;
  let dlqUrl = values['dlq-url'] ?? process.env.CANDLEKEEP_DLQ_URL;
  if (values.stack && (!queueUrl || !dlqUrl)) {
    const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
    let outputs: Record<string, string>;
    try {
      const out = await new CloudFormationClient({}).send(new DescribeStacksCommand({ StackName: values.stack }));
      outputs = Object.fromEntries((out.Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
    } catch (err) {
      throw new Error(`could not read stack ${values.stack}: ${(err as Error).message}`);
    }
    queueUrl ??= outputs.CandlesQueueUrl;
    dlqUrl ??= outputs.DeadLetterQueueUrl;
    if (!queueUrl || !dlqUrl) throw new Error(`stack ${values.stack} has no CandlesQueueUrl / DeadLetterQueueUrl outputs; is it a candlekeep stack?`);
  }
  if (!queueUrl || !dlqUrl) {
    throw new UsageError(
      'say which queues: --stack <name> (e.g. Candlekeep-dev, reads its outputs), or CANDLEKEEP_QUEUE_URL and CANDLEKEEP_DLQ_URL ' +
        '(stack outputs CandlesQueueUrl, DeadLetterQueueUrl), or --queue-url and --dlq-url',
    );
  }
  return { queueUrl, dlqUrl };
}

export const command: Command = {
  summary: 'move dead-lettered candle messages back to the candles queue (after fixing the cause) and report why they failed',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        'dry-run': { type: 'boolean', default: false },
        max: { type: 'string' },
        json: { type: 'boolean', default: false },
        stack: { type: 'string' },
        'queue-url': { type: 'string' },
        'dlq-url': { type: 'string' },
      },
    });
    const max = values.max === undefined ? undefined : Number(values.max);
    if (max !== undefined && (!Number.isInteger(max) || max < 1)) throw new UsageError('--max must be a positive integer');
    const { queueUrl, dlqUrl } = await resolveQueues(values);
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    const report = await redrive(new SQSClient({}), {
      queueUrl,
      dlqUrl,
      dryRun: values['dry-run'],
      ...(max !== undefined ? { max } : {}),
      ...(values.json ? {} : { log: progress }),
    });
    if (values.json) {
      console.log(JSON.stringify(report));
    } else {
      const verb = report.dryRun ? 'would move' : 'moved';
      console.log(`${verb} ${report.moved} message(s) from the dead-letter queue to the candles queue${report.dryRun ? ' (dry run: nothing moved)' : ''}`);
      if (report.failed) console.log(`${report.failed} message(s) could not be sent and stay in the dead-letter queue`);
      const shown = report.reasons.slice(0, 15);
      for (const r of shown) console.log(`  ${String(r.count).padStart(6)}  ${r.reason}`);
      if (report.reasons.length > shown.length) console.log(`  ... and ${report.reasons.length - shown.length} other reason(s); --json lists all`);
      for (const e of report.errors.slice(0, 10)) console.error(`  error: ${e}`);
    }
    return report.failed > 0 ? 1 : 0;
  },
};
