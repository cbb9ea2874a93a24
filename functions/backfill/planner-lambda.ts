import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import * as z from 'zod';
import { describeIssues } from '../candles/candle-batch.ts';
import { planBackfillInTurn, type PlanResult } from '../ingest/backfill-planner.ts';
import { backfillEventSchema } from '../ingest/backfill-request.ts';
import { flushBudget, type ExchangeAccess } from '../exchanges/access.ts';
import type { ExchangeDeps } from '../lambda-kit/container.ts';
import { configReader } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { sendWorkTokens } from '../queue/work-tokens.ts';

const configSchema = z
  .object({
    BACKFILL_WORK_QUEUE_URL: z.url('BACKFILL_WORK_QUEUE_URL must be the URL of the backfill work queue'),
    /** Workers started per new backfill; the worker mapping's maximum concurrency caps them anyway. */
    BACKFILL_PARALLELISM: z.coerce.number().int().min(1).max(50).default(2),
  })
  .transform((e) => ({ workQueueUrl: e.BACKFILL_WORK_QUEUE_URL, parallelism: e.BACKFILL_PARALLELISM }));
export const readPlannerConfig = configReader(configSchema, SERVICES.planner);
export type PlannerConfig = ReturnType<typeof readPlannerConfig>;

export type PlannerDeps = ExchangeDeps;

/** EventBridge rule target: one "Backfill Requested" event → chunks in the ledger → work tokens for the workers. */
export function createPlannerHandler(config: PlannerConfig, deps: PlannerDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.planner, deps);
  let access: ExchangeAccess | undefined;

  async function plan(event: unknown): Promise<PlanResult> {
    const parsed = backfillEventSchema.safeParse(event);
    if (!parsed.success) throw new Error(`not a backfill request event: ${describeIssues(parsed.error)}`);
    const db = await deps.db();
    access ??= deps.access(db);
    const result = await planBackfillInTurn({ ...parsed.data.detail, requestId: parsed.data.id }, { db, access }).finally(() =>
      flushBudget(access, (err) => logger.warn('budget settles not sent: kept for the next invocation', { error: String(err) })),
    );
    if (result.created && result.chunks > 0) {
      await sendWorkTokens(deps.sqs, config.workQueueUrl, Math.min(result.chunks, config.parallelism), { backfillId: result.backfillId });
    }
    metrics.addMetric('BackfillChunksPlanned', MetricUnit.Count, result.created ? result.chunks : 0);
    logger.info('backfill planned', { eventId: parsed.data.id, ...result });
    return result;
  }

  return withPowertools(middy(plan), { logger, metrics });
}
