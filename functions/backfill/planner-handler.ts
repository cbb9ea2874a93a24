import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import * as z from 'zod';
import { describeIssues } from '../candles/candle-batch.ts';
import { planBackfill, type PlanResult } from '../ingest/backfill-planner.ts';
import { backfillEventSchema } from '../ingest/backfill-request.ts';
import { liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { sendWorkTokens } from '../ingest/work-tokens.ts';
import { getPool } from '../store/db.ts';

const config = z
  .object({
    BACKFILL_WORK_QUEUE_URL: z.url('BACKFILL_WORK_QUEUE_URL must be the URL of the backfill work queue'),
    /** Workers started per new backfill; the worker mapping's maximum concurrency caps them anyway. */
    BACKFILL_PARALLELISM: z.coerce.number().int().min(1).max(50).default(2),
  })
  .parse(process.env);

const logger = new Logger({ serviceName: 'candlekeep-backfill-planner' });
const metrics = new Metrics({ namespace: 'candlekeep', serviceName: 'candlekeep-backfill-planner' });
const sqs = new SQSClient({});
let access: ExchangeAccess | undefined;

/** EventBridge rule target: one "Backfill Requested" event → chunks in the ledger → work tokens for the workers. */
async function plan(event: unknown): Promise<PlanResult> {
  const parsed = backfillEventSchema.safeParse(event);
  if (!parsed.success) throw new Error(`not a backfill request event: ${describeIssues(parsed.error)}`);
  const db = await getPool();
  access ??= liveExchangeAccess(db);
  const result = await planBackfill({ ...parsed.data.detail, requestId: parsed.data.id }, { db, access });
  if (result.created && result.chunks > 0) {
    await sendWorkTokens(sqs, config.BACKFILL_WORK_QUEUE_URL, Math.min(result.chunks, config.BACKFILL_PARALLELISM), { backfillId: result.backfillId });
  }
  metrics.addMetric('BackfillChunksPlanned', MetricUnit.Count, result.created ? result.chunks : 0);
  logger.info('backfill planned', { eventId: parsed.data.id, ...result });
  return result;
}

export const handler = middy(plan).use(injectLambdaContext(logger)).use(logMetrics(metrics));
