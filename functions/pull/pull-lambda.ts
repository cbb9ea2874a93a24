import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { setTimeout as sleep } from 'node:timers/promises';
import middy from '@middy/core';
import * as z from 'zod';
import { DatabaseNotConfiguredError } from '../errors.ts';
import type { SeriesKey } from '../candles/candle.ts';
import type { BackfillRequest } from '../ingest/backfill-request.ts';
import { QueueSink, type CandleSink } from '../ingest/candle-sink.ts';
import type { ExchangeAccess } from '../exchanges/access.ts';
import { DEFAULT_PULL_MAX_PAGES, pullSeries } from '../ingest/pull.ts';
import { followedSeries, recordPulls } from '../store/markets.ts';
import { SeriesRegistry } from '../store/series.ts';
import { DEFAULT_PULL_DELAY_MS, pullEventSchema } from '../ingest/pull-schedule.ts';
import { bucketStart } from '../candles/intervals.ts';
import { liveExchangeDeps, type ExchangeDeps } from '../lambda-kit/container.ts';
import { configReader, once, type Env } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';

const configSchema = z
  .object({
    CANDLES_QUEUE_URL: z.url('CANDLES_QUEUE_URL must be the URL of the candles queue'),
    BACKFILL_BUS_NAME: z.string().min(1, 'BACKFILL_BUS_NAME must name the backfill event bus'),
    PULL_MAX_PAGES: z.coerce.number().int().positive().default(DEFAULT_PULL_MAX_PAGES),
    PULL_DELAY_MS: z.coerce.number().int().min(0).max(30_000, 'PULL_DELAY_MS must be at most 30000').default(DEFAULT_PULL_DELAY_MS),
  })
  .transform((e) => ({ candlesQueueUrl: e.CANDLES_QUEUE_URL, backfillBusName: e.BACKFILL_BUS_NAME, maxPages: e.PULL_MAX_PAGES, delayMs: e.PULL_DELAY_MS }));
export const readPullConfig = configReader(configSchema, SERVICES.pull);
export type PullConfig = ReturnType<typeof readPullConfig>;

/** Published by a tick that found no database URL in the secret; the stack alarms on it. */
export const DATABASE_NOT_CONFIGURED_METRIC = 'DatabaseNotConfigured';

export interface PullDeps extends ExchangeDeps {
  /** Most ticks never hand a hole to the backfill path, so the client is made (and its SDK loaded) on first use. */
  events: () => Promise<EventBridgeClient>;
  sink?: CandleSink;
  /** How the tick waits for its boundary's delay to pass (tests run on a clock of their own). */
  sleep?: (ms: number) => Promise<void>;
}

/** A Lambda container's: the pool on first use, exchange access from the environment, EventBridge loaded lazily. */
export function livePullDeps(env: Env): PullDeps {
  return { ...liveExchangeDeps(env), events: once(async () => new (await import('@aws-sdk/client-eventbridge')).EventBridgeClient({})) };
}

/** The pull Lambda: one schedule tick → the newest candles of every followed series of its intervals, as the database lists them. */
export function createPullHandler(config: PullConfig, deps: PullDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.pull, deps);
  const sink = deps.sink ?? new QueueSink(deps.sqs, config.candlesQueueUrl);
  let access: ExchangeAccess | undefined;

  async function requestBackfill(req: BackfillRequest): Promise<void> {
    const [events, { putBackfillRequests }] = await Promise.all([deps.events(), import('../ingest/backfill-events.ts')]);
    await putBackfillRequests(events, config.backfillBusName, [req]);
    logger.info('hole handed to the backfill path', { ...req, from: new Date(req.from).toISOString(), to: new Date(req.to).toISOString() });
  }

  async function pull(event: unknown): Promise<{ series: number; candles: number; backfills: number; skipped?: string }> {
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
      return { series: 0, candles: 0, backfills: 0, skipped: 'database not configured' };
    }
    access ??= deps.access(db);
    // The schedule fires at the boundary; the exchange gets `delayMs` to close the candle.
    const boundary = bucketStart(access.now(), '1m');
    const wait = boundary + config.delayMs - access.now();
    if (wait > 0) await (deps.sleep ?? sleep)(wait);
    const now = access.now();
    const jobs = await followedSeries(db, parsed.data.intervals, (interval) => bucketStart(now, interval));
    const outcome = await pullSeries(jobs, { db, access, sink, maxPages: config.maxPages, requestBackfill });
    const ids = new Map(jobs.map((j) => [SeriesRegistry.key(j.series), j.seriesId]));
    const idOf = (s: SeriesKey) => ids.get(SeriesRegistry.key(s))!;
    await recordPulls(db, [
      ...outcome.results.map((r) => ({ seriesId: idOf(r.series) })),
      ...outcome.failures.map((f) => ({ seriesId: idOf(f.series), error: f.error.message.slice(0, 500) })),
    ]);
    const candles = outcome.results.reduce((n, r) => n + r.candles, 0);
    const backfills = outcome.results.filter((r) => r.backfill).length;
    metrics.addMetric('CandlesFetched', MetricUnit.Count, candles);
    metrics.addMetric('SeriesFailed', MetricUnit.Count, outcome.failures.length);
    metrics.addMetric('BackfillsRequested', MetricUnit.Count, backfills);
    for (const f of outcome.failures) logger.error('series pull failed', { ...f.series, error: f.error.message });
    logger.info('pull finished', { intervals: parsed.data.intervals, series: outcome.results.length, candles, backfills });
    // Failing the invocation makes the failure count in the function's Errors metric and alarms; the
    // next tick refetches from the watermark, so nothing is lost by not retrying this one.
    if (outcome.failures.length > 0) {
      throw new Error(`${outcome.failures.length} series failed: ${outcome.failures.map((f) => `${f.series.exchange} ${f.series.symbol} ${f.series.interval}: ${f.error.message}`).join('; ')}`);
    }
    return { series: outcome.results.length, candles, backfills };
  }

  return withPowertools(middy(pull), { logger, metrics });
}
