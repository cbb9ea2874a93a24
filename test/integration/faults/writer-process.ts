/**
 * A writer "container" for the kill test: the real writer handler behind the local event source
 * runner, in a process of its own so the test can SIGKILL it mid-batch. It announces each batch on
 * stdout (BEGIN before the handler runs, END after it returned) so the test knows when to strike.
 *
 * Environment: QUEUE_URL, DEAD_LETTER_QUEUE_URL, DATABASE_URL, CANDLEKEEP_WS_PROXY, AWS_ENDPOINT_URL.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { startEventSourceRunner } from '../../../dev/event-source-runner.ts';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { handler as writer } from '../../../functions/writer/handler.ts';

// The process is the container: the entry reads its settings from this environment, as in AWS.
const handler = writer as unknown as (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
const queueUrl = process.env.QUEUE_URL;
const endpoint = process.env.AWS_ENDPOINT_URL;
if (!queueUrl || !endpoint) throw new Error('QUEUE_URL and AWS_ENDPOINT_URL must be set');

let batches = 0;
const runner = startEventSourceRunner({
  sqs: new SQSClient(awsClientConfig(endpoint)),
  queueUrl,
  handler: async (event, context) => {
    const n = ++batches;
    process.stdout.write(`BEGIN ${n} ${event.Records.length}\n`);
    const out = await handler(event, context);
    process.stdout.write(`END ${n}\n`);
    return out;
  },
  batchSize: 10,
  maxBatchingWindowMs: 200,
  concurrency: 1,
  waitTimeSeconds: 1,
  // A killed batch's messages come back this soon (the test queue's own timeout is longer).
  visibilityTimeoutSeconds: 4,
  functionName: 'writer',
  log: (m) => process.stderr.write(`${m}\n`),
});
process.once('SIGTERM', () => {
  void runner.stop().then(() => process.exit(0));
});
process.stdout.write('READY\n');
