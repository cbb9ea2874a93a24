import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { setTimeout as sleep } from 'node:timers/promises';
import middy from '@middy/core';
import * as z from 'zod';
import { DatabaseNotConfiguredError } from '../errors.ts';
import { bucketStart, INTERVAL_MS } from '../candles/intervals.ts';
import type { ExchangeAccess } from '../exchanges/access.ts';
import { planShards, type PullShard } from '../ingest/pull-shards.ts';
import { DEFAULT_PULL_DELAY_MS, DEFAULT_PULL_WORKERS, pullEventSchema } from '../ingest/pull-schedule.ts';
import { liveExchangeDeps, type ExchangeDeps } from '../lambda-kit/container.ts';
import { configReader, type Env } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { sendMessageBodies, type SqsClient } from '../queue/send.ts';
import { freshnessLag } from '../store/candles.ts';
import { followedSeries, type FollowedSeries } from '../store/markets.ts';

const configSchema = z
  .object({
    PULL_WORK_QUEUE_URL: z.url('PULL_WORK_QUEUE_URL must be the URL of the pull-work queue'),
    /** The pull workers' maximum concurrency: shards are planned so every exchange gets its share of them. */
    PULL_WORKERS: z.coerce.number().int().min(1).max(1000).default(DEFAULT_PULL_WORKERS),
    PULL_DELAY_MS: z.coerce.number().int().min(0).max(30_000, 'PULL_DELAY_MS must be at most 30000').default(DEFAULT_PULL_DELAY_MS),
  })
  .transform((e) => ({ workQueueUrl: e.PULL_WORK_QUEUE_URL, workers: e.PULL_WORKERS, delayMs: e.PULL_DELAY_MS }));
export const readPullConfig = configReader(configSchema, SERVICES.pull);
export type PullConfig = ReturnType<typeof readPullConfig>;

/** Published by a tick that found no database URL in the secret; the stack alarms on it. */
export const DATABASE_NOT_CONFIGURED_METRIC = 'DatabaseNotConfigured';
/** Published by every tick: followed series of its intervals whose newest closed candle is more than one interval late. */
export const SERIES_BEHIND_METRIC = 'SeriesBehind';
/** Published by every tick: the largest freshness lag among its series (ms), as /v1/markets reports it. */
export const FRESHNESS_LAG_METRIC = 'FreshnessLagMax';

export interface PullDeps extends ExchangeDeps {
  /** How the tick waits for its boundary's delay to pass (tests run on a clock of their own). */
  sleep?: (ms: number) => Promise<void>;
}

/** A Lambda container's: the pool on first use, exchange access (for its clock and budget rules) from the environment. */
export function livePullDeps(env: Env): PullDeps {
  return liveExchangeDeps(env);
}

export interface TickResult {
  /** Followed series of the tick's intervals. */
  series: number;
  /** Those whose boundary passed without their closed candle stored: sent to the workers. */
  due: number;
  shards: number;
  /** Series more than one interval behind. */
  behind: number;
  /** The largest freshness lag among the series (ms). */
  lagMaxMs: number;
  skipped?: string;
}

/**
 * How late each series is, as /v1/markets says it (`freshnessLag`); a series never stored yet is
 * measured from when it was followed, as if its newest closed candle were the one before that.
 */
export function seriesLag(f: FollowedSeries, now: number): number {
  const step = INTERVAL_MS[f.series.interval];
  const newestClosed = f.closedThrough !== null ? f.closedThrough - step : bucketStart(f.followedAt, f.series.interval) - step;
  return freshnessLag(newestClosed, step, now);
}

/**
 * The pull tick: one schedule firing → the due series of its intervals (read from the database, so
 * a market followed at runtime is pulled on the next tick), cut into shards per exchange sized to
 * its budget and sent to the pull-work queue, where pull workers (bounded by the event source's
 * maximum concurrency) fetch them. It also publishes how fresh every series of its intervals is.
 */
export function createPullHandler(config: PullConfig, deps: PullDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.pull, deps);
  let access: ExchangeAccess | undefined;

  async function tick(event: unknown): Promise<TickResult> {
    const parsed = pullEventSchema.safeParse(event);
    if (!parsed.success) throw new Error(`pull expects {"intervals": [...]} from its schedule: ${parsed.error.issues[0]?.message}`);
    let db;
    try {
      db = await deps.db();
    } catch (err) {
      if (!(err instanceof DatabaseNotConfiguredError)) throw err;
      // A fresh stack before anyone stored the URL: nothing to pull into. One line and a metric
      // (its alarm says "database not configured"), not an error on every tick.
      logger.error(`database not configured, pull skipped: ${err.message}`);
      metrics.addMetric(DATABASE_NOT_CONFIGURED_METRIC, MetricUnit.Count, 1);
      return { series: 0, due: 0, shards: 0, behind: 0, lagMaxMs: 0, skipped: 'database not configured' };
    }
    access ??= deps.access(db);
    // The schedule fires at the boundary; the exchange gets `delayMs` to close the candle.
    const boundary = bucketStart(access.now(), '1m');
    const wait = boundary + config.delayMs - access.now();
    if (wait > 0) await (deps.sleep ?? sleep)(wait);
    const now = access.now();

    const followed = await followedSeries(db, parsed.data.intervals);
    // Due: the boundary passed and the closed candle it ended is not in the coverage ledger yet.
    const due = followed.filter((f) => f.closedThrough === null || f.closedThrough < bucketStart(now, f.series.interval));
    const shards = planShards(due, { rules: access.governor.rules, tick: boundary, sentAt: now, workers: config.workers });
    if (shards.length > 0) await sendShards(deps.sqs, config.workQueueUrl, shards);

    const lags = followed.map((f) => ({ f, lag: seriesLag(f, now) }));
    const behind = lags.filter(({ f, lag }) => lag > INTERVAL_MS[f.series.interval]);
    const lagMaxMs = Math.max(0, ...lags.map((l) => l.lag));
    metrics.addMetric('SeriesDue', MetricUnit.Count, due.length);
    metrics.addMetric('PullShards', MetricUnit.Count, shards.length);
    metrics.addMetric(SERIES_BEHIND_METRIC, MetricUnit.Count, behind.length);
    metrics.addMetric(FRESHNESS_LAG_METRIC, MetricUnit.Milliseconds, lagMaxMs);
    if (behind.length > 0) {
      logger.warn('series behind', {
        behind: behind.length,
        worst: behind.sort((a, b) => b.lag - a.lag).slice(0, 10).map(({ f, lag }) => ({ ...f.series, lagMs: lag })),
      });
    }
    logger.info('tick dispatched', { intervals: parsed.data.intervals, series: followed.length, due: due.length, shards: shards.length, behind: behind.length, lagMaxMs });
    return { series: followed.length, due: due.length, shards: shards.length, behind: behind.length, lagMaxMs };
  }

  return withPowertools(middy(tick), { logger, metrics });
}

/** Every shard, or an error naming how many were not queued (the next tick plans them again). */
async function sendShards(sqs: SqsClient, queueUrl: string, shards: readonly PullShard[]): Promise<void> {
  await sendMessageBodies(sqs, queueUrl, shards.map((s) => JSON.stringify(s)));
}
