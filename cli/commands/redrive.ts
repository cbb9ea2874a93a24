import { redrive, type RedriveReport } from '../../functions/queue/redrive.ts';
import { defineCommand, progress, UsageError, type OptionValues } from '../command.ts';
import { DRY_RUN_OPTION, JSON_OPTION } from '../options.ts';

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

const OPTIONS = {
  'dry-run': { ...DRY_RUN_OPTION, description: 'count and group what would move, move nothing' },
  max: { type: 'string', value: '<n>', description: 'move at most this many messages' },
  json: JSON_OPTION,
  stack: { type: 'string', value: '<name>', description: 'read the queue URLs from this stack\'s outputs, e.g. Candlekeep-dev' },
  'queue-url': { type: 'string', value: '<url>', description: 'the candles queue (default: CANDLEKEEP_QUEUE_URL)' },
  'dlq-url': { type: 'string', value: '<url>', description: 'its dead-letter queue (default: CANDLEKEEP_DLQ_URL)' },
} as const;

/** The command line over functions/queue/redrive.ts: which queues, and a report people or scripts read. */
async function run({ values }: { values: OptionValues<typeof OPTIONS> }): Promise<number> {
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
  if (values.json) console.log(JSON.stringify(report));
  else printReport(report);
  return report.failed > 0 ? 1 : 0;
}

function printReport(report: RedriveReport): void {
  const verb = report.dryRun ? 'would move' : 'moved';
  console.log(`${verb} ${report.moved} message(s) from the dead-letter queue to the candles queue${report.dryRun ? ' (dry run: nothing moved)' : ''}`);
  if (report.failed) console.log(`${report.failed} message(s) could not be sent and stay in the dead-letter queue`);
  const shown = report.reasons.slice(0, 15);
  for (const r of shown) console.log(`  ${String(r.count).padStart(6)}  ${r.reason}`);
  if (report.reasons.length > shown.length) console.log(`  ... and ${report.reasons.length - shown.length} other reason(s); --json lists all`);
  for (const e of report.errors.slice(0, 10)) console.error(`  error: ${e}`);
}

export const command = defineCommand({
  summary: 'move dead-lettered candle messages back to the candles queue (after fixing the cause) and report why they failed',
  options: OPTIONS,
  run,
});
