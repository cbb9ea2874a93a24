/**
 * One pull tick as the stack runs it, for tests: the tick Lambda sends its shards to a LocalStack
 * pull-work queue; the pull worker Lambda is invoked with them as the event source mapping would
 * (one shard per invocation) and writes wherever its sink says.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { toRecord } from '../../dev/event-source-runner.ts';
import type { ExchangeAccess } from '../../functions/exchanges/access.ts';
import type { CandleSink } from '../../functions/ingest/candle-sink.ts';
import { pullShardSchema, type PullShard } from '../../functions/ingest/pull-shards.ts';
import type { Observability } from '../../functions/lambda-kit/powertools.ts';
import { createPullHandler, readPullConfig, type TickResult } from '../../functions/pull/pull-lambda.ts';
import { createPullWorkerHandler, readPullWorkerConfig } from '../../functions/pull/worker-lambda.ts';
import type { Db } from '../../functions/store/db.ts';
import { createQueues, drain } from './sqs.ts';

export interface TickOptions extends Observability {
  db: () => Promise<Db>;
  sqs: SQSClient;
  access: (db: Db) => ExchangeAccess;
  /** Where the workers' candles go (default: a candles queue at `candlesQueueUrl`). */
  sink?: CandleSink;
  candlesQueueUrl?: string;
  backfillBusName?: string;
  events?: () => Promise<EventBridgeClient>;
  delayMs?: number;
}

export interface TickRun {
  tick: TickResult;
  shards: PullShard[];
  responses: SQSBatchResponse[];
}

const context = (name: string) => ({ awsRequestId: name, functionName: name, getRemainingTimeInMillis: () => 50_000 }) as unknown as Context;

export async function runTick(intervals: string[], opts: TickOptions): Promise<TickRun> {
  const work = await createQueues(opts.sqs, { visibilityTimeout: 30 });
  try {
    const tick = createPullHandler(readPullConfig({ PULL_WORK_QUEUE_URL: work.queueUrl, PULL_DELAY_MS: String(opts.delayMs ?? 0) }), {
      db: opts.db,
      sqs: opts.sqs,
      access: opts.access,
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    });
    const worker = createPullWorkerHandler(
      readPullWorkerConfig({ CANDLES_QUEUE_URL: opts.candlesQueueUrl ?? 'https://sqs.example/unused', BACKFILL_BUS_NAME: opts.backfillBusName ?? 'unused' }),
      {
        db: opts.db,
        sqs: opts.sqs,
        access: opts.access,
        events: opts.events ?? (async () => {
          throw new Error('this tick was not expected to request a backfill');
        }),
        ...(opts.sink ? { sink: opts.sink } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      },
    );
    const result = (await tick({ intervals }, context('pull'))) as TickResult;
    const messages = result.shards > 0 ? await drain(opts.sqs, work.queueUrl, result.shards, 10_000) : [];
    const responses: SQSBatchResponse[] = [];
    for (const m of messages) {
      responses.push((await worker({ Records: [toRecord(m, work.queueArn, 'us-east-1')] }, context('pull-worker'))) as SQSBatchResponse);
    }
    return { tick: result, shards: messages.map((m) => pullShardSchema.parse(JSON.parse(m.Body!))), responses };
  } finally {
    await work.delete();
  }
}
