import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import * as z from 'zod';
import { DatabaseNotConfiguredError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { configReader } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools, type Observability } from '../lambda-kit/powertools.ts';
import { applyRetention, DEFAULT_RETENTION_BATCH, DEFAULT_RETENTION_BUDGET_MS, type RetentionReport } from '../store/retention.ts';

/**
 * Only the job's own bounds come from the environment: which series keep how many days is read
 * from the markets tables on every run (a function environment could not hold hundreds of markets,
 * and a change made through the API must apply without a redeploy).
 */
const configSchema = z
  .object({
    RETENTION_BATCH_SIZE: z.coerce.number().int().min(1).max(1_000_000, 'RETENTION_BATCH_SIZE must be at most 1000000').default(DEFAULT_RETENTION_BATCH),
    RETENTION_BUDGET_MS: z.coerce.number().int().min(1_000).max(840_000, 'RETENTION_BUDGET_MS must be at most 840000 (14 minutes)').default(DEFAULT_RETENTION_BUDGET_MS),
  })
  .transform((e) => ({ batchSize: e.RETENTION_BATCH_SIZE, budgetMs: e.RETENTION_BUDGET_MS }));
export const readRetentionConfig = configReader(configSchema, SERVICES.retention);
export type RetentionConfig = ReturnType<typeof readRetentionConfig>;

export interface RetentionDeps extends Observability {
  db: () => Promise<Db>;
  /** The clock retention and the budget are measured by (tests run on their own). */
  now?: () => number;
}

/** The schedule passes `{}`; anything else means it was wired to the wrong target. */
const scheduleEventSchema = z.looseObject({});

/**
 * Scheduled daily: deletes the candles each followed series keeps no longer, in bounded batches
 * within the run's budget (what is left goes at the next run), and logs what went, per series.
 */
export function createRetentionHandler(config: RetentionConfig, deps: RetentionDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.retention, deps);
  const now = deps.now ?? Date.now;

  async function run(event: unknown): Promise<RetentionReport | { skipped: string }> {
    if (!scheduleEventSchema.safeParse(event).success) throw new Error("the retention job expects its schedule's JSON object as the event");
    let db;
    try {
      db = await deps.db();
    } catch (err) {
      if (!(err instanceof DatabaseNotConfiguredError)) throw err;
      logger.error(`database not configured, retention skipped: ${err.message}`);
      return { skipped: 'database not configured' };
    }
    const report = await applyRetention(db, { now: now(), batchSize: config.batchSize, budgetMs: config.budgetMs, clock: now });
    for (const s of report.series) {
      logger.info('series expired', {
        exchange: s.exchange,
        symbol: s.symbol,
        interval: s.interval,
        retentionDays: s.retentionDays,
        expiredBefore: new Date(s.horizon).toISOString(),
        deleted: s.deleted,
        pending: s.pending,
      });
    }
    metrics.addMetric('CandlesExpired', MetricUnit.Count, report.deleted);
    metrics.addMetric('SeriesPendingExpiry', MetricUnit.Count, report.series.filter((s) => s.pending).length);
    logger.info('retention finished', { deleted: report.deleted, batches: report.batches, series: report.series.length, complete: report.complete });
    return report;
  }

  return withPowertools(middy(run), { logger, metrics });
}
