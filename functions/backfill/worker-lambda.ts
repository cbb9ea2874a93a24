import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import { nextClaimableIn } from '../store/backfills.ts';
import { runBackfillWorker } from '../ingest/backfill-worker.ts';
import { QueueSink, type CandleSink } from '../ingest/candle-sink.ts';
import { flushBudget, type ExchangeAccess } from '../exchanges/access.ts';
import type { ExchangeDeps } from '../lambda-kit/container.ts';
import { configReader } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { parseSqsEvent, readRecordBody } from '../lambda-kit/sqs-event.ts';
import { sendWorkTokens, workTokenSchema } from '../queue/work-tokens.ts';

const configSchema = z
  .object({
    CANDLES_QUEUE_URL: z.url('CANDLES_QUEUE_URL must be the URL of the candles queue'),
    BACKFILL_WORK_QUEUE_URL: z.url('BACKFILL_WORK_QUEUE_URL must be the URL of the backfill work queue'),
    /** Stop claiming chunks when less than this remains of the invocation: a chunk must fit in it. */
    STOP_MARGIN_MS: z.coerce.number().int().positive().default(90_000),
    LEASE_MS: z.coerce.number().int().positive().default(120_000),
  })
  .transform((e) => ({ candlesQueueUrl: e.CANDLES_QUEUE_URL, workQueueUrl: e.BACKFILL_WORK_QUEUE_URL, stopMarginMs: e.STOP_MARGIN_MS, leaseMs: e.LEASE_MS }));
export const readWorkerConfig = configReader(configSchema, SERVICES.worker);
export type WorkerConfig = ReturnType<typeof readWorkerConfig>;

export type WorkerDeps = ExchangeDeps & { sink?: CandleSink };

/**
 * Work-queue consumer: claims and fetches chunks until none is left or the invocation nears its
 * timeout, then passes the token on (at once when work remains, delayed until the next lease or
 * back-off ends when only held chunks remain). A crash loses nothing: the token reappears after
 * the visibility timeout and the dead claim's lease runs out.
 */
export function createWorkerHandler(config: WorkerConfig, deps: WorkerDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.worker, deps);
  const sink = deps.sink ?? new QueueSink(deps.sqs, config.candlesQueueUrl);
  let access: ExchangeAccess | undefined;

  async function work(event: unknown, context: Context): Promise<SQSBatchResponse> {
    const batch = parseSqsEvent(event, 'backfill worker', { nonEmpty: true });
    const tokens = batch.Records.map((r) => {
      const token = readRecordBody(r, workTokenSchema, 'a backfill work token');
      // A token only wakes a worker: a malformed one still does, for any backfill.
      if (!token.ok) logger.warn('ignoring a malformed work token', { messageId: token.messageId, reason: token.reason });
      return token.ok ? token.message : {};
    });
    // A token names its backfill: the worker (and the token it passes on) stays with that one, so one
    // backfill's retries and leases never hold up or re-wake another's. A token without one takes any.
    const token = tokens[0] ?? {};
    const db = await deps.db();
    access ??= deps.access(db);
    const result = await runBackfillWorker({
      db,
      access,
      sink,
      backfillId: token.backfillId,
      workerId: context.awsRequestId,
      leaseMs: config.leaseMs,
      shouldStop: () => context.getRemainingTimeInMillis() < config.stopMarginMs,
      onChunk: (e) => {
        if (e.kind === 'done') return;
        logger.warn(`chunk ${e.kind}`, { backfillId: e.chunk.backfillId, chunkNo: e.chunk.chunkNo, error: e.error.message });
      },
    }).finally(() =>
      // The budget's settles go out before the container freezes.
      flushBudget(access, (err) => logger.warn('budget settles not sent: kept for the next invocation', { error: String(err) })),
    );
    metrics.addMetric('BackfillChunksDone', MetricUnit.Count, result.chunks);
    metrics.addMetric('BackfillCandles', MetricUnit.Count, result.candles);
    metrics.addMetric('BackfillChunkFailures', MetricUnit.Count, result.failures);
    const wait = result.stoppedBy === 'deadline' ? 0 : await nextClaimableIn(db, token.backfillId);
    if (wait !== undefined) await sendWorkTokens(deps.sqs, config.workQueueUrl, 1, token, wait / 1000);
    logger.info('backfill worker finished', { ...result, nextTokenInMs: wait ?? null });
    return { batchItemFailures: [] };
  }

  return withPowertools(middy(work), { logger, metrics });
}
