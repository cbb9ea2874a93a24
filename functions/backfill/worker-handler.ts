import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import { runBackfillWorker } from '../ingest/backfill-worker.ts';
import { QueueSink } from '../ingest/candle-sink.ts';
import { liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { sendWorkTokens, workTokenSchema } from '../ingest/work-tokens.ts';
import { nextClaimableIn } from '../store/backfills.ts';
import { getPool } from '../store/db.ts';

const config = z
  .object({
    CANDLES_QUEUE_URL: z.url('CANDLES_QUEUE_URL must be the URL of the candles queue'),
    BACKFILL_WORK_QUEUE_URL: z.url('BACKFILL_WORK_QUEUE_URL must be the URL of the backfill work queue'),
    /** Stop claiming chunks when less than this remains of the invocation: a chunk must fit in it. */
    STOP_MARGIN_MS: z.coerce.number().int().positive().default(90_000),
    LEASE_MS: z.coerce.number().int().positive().default(120_000),
  })
  .parse(process.env);

const sqsEventSchema = z.object({
  Records: z.array(z.object({ messageId: z.string().min(1), body: z.string() })).min(1),
});

const logger = new Logger({ serviceName: 'candlekeep-backfill-worker' });
const metrics = new Metrics({ namespace: 'candlekeep', serviceName: 'candlekeep-backfill-worker' });
const sqs = new SQSClient({});
const sink = new QueueSink(sqs, config.CANDLES_QUEUE_URL);
let access: ExchangeAccess | undefined;

/**
 * Work-queue consumer: claims and fetches chunks until none is left or the invocation nears its
 * timeout, then passes the token on (at once when work remains, delayed until the next lease or
 * back-off ends when only held chunks remain). A crash loses nothing: the token reappears after
 * the visibility timeout and the dead claim's lease runs out.
 */
async function work(event: unknown, context: Context): Promise<SQSBatchResponse> {
  const parsed = sqsEventSchema.safeParse(event);
  if (!parsed.success) throw new Error(`backfill worker received an event that is not an SQS batch: ${parsed.error.issues[0]?.message}`);
  const tokens = parsed.data.Records.map((r) => {
    let json: unknown;
    try {
      json = JSON.parse(r.body);
    } catch {
      json = undefined;
    }
    const token = workTokenSchema.safeParse(json);
    if (!token.success) logger.warn('ignoring a malformed work token', { messageId: r.messageId });
    return token.success ? token.data : {};
  });
  // A token names its backfill: the worker (and the token it passes on) stays with that one, so one
  // backfill's retries and leases never hold up or re-wake another's. A token without one takes any.
  const token = tokens[0] ?? {};
  const db = await getPool();
  access ??= liveExchangeAccess(db);
  const result = await runBackfillWorker({
    db,
    access,
    sink,
    backfillId: token.backfillId,
    workerId: context.awsRequestId,
    leaseMs: config.LEASE_MS,
    shouldStop: () => context.getRemainingTimeInMillis() < config.STOP_MARGIN_MS,
    onChunk: (e) => {
      if (e.kind === 'done') return;
      logger.warn(`chunk ${e.kind}`, { backfillId: e.chunk.backfillId, chunkNo: e.chunk.chunkNo, error: e.error.message });
    },
  });
  metrics.addMetric('BackfillChunksDone', MetricUnit.Count, result.chunks);
  metrics.addMetric('BackfillCandles', MetricUnit.Count, result.candles);
  metrics.addMetric('BackfillChunkFailures', MetricUnit.Count, result.failures);
  const wait = result.stoppedBy === 'deadline' ? 0 : await nextClaimableIn(db, token.backfillId);
  if (wait !== undefined) await sendWorkTokens(sqs, config.BACKFILL_WORK_QUEUE_URL, 1, token, wait / 1000);
  logger.info('backfill worker finished', { ...result, nextTokenInMs: wait ?? null });
  return { batchItemFailures: [] };
}

export const handler = middy(work).use(injectLambdaContext(logger)).use(logMetrics(metrics));
