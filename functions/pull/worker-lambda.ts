import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import middy from '@middy/core';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import type { SeriesKey } from '../candles/candle.ts';
import { INTERVAL_MS } from '../candles/intervals.ts';
import { flushBudget, type ExchangeAccess } from '../exchanges/access.ts';
import type { BackfillRequest } from '../ingest/backfill-request.ts';
import { QueueSink, type CandleSink } from '../ingest/candle-sink.ts';
import { DEFAULT_PULL_MAX_PAGES, pullSeries, type PullResult } from '../ingest/pull.ts';
import { pullShardSchema, shardStaleAt, type PullShard } from '../ingest/pull-shards.ts';
import { liveExchangeDeps, type ExchangeDeps } from '../lambda-kit/container.ts';
import { configReader, once, type Env } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { batchResponse, parseSqsEvent, readRecordBody } from '../lambda-kit/sqs-event.ts';
import { recordPulls } from '../store/markets.ts';
import { SeriesRegistry } from '../store/series.ts';

const configSchema = z
  .object({
    CANDLES_QUEUE_URL: z.url('CANDLES_QUEUE_URL must be the URL of the candles queue'),
    BACKFILL_BUS_NAME: z.string().min(1, 'BACKFILL_BUS_NAME must name the backfill event bus'),
    PULL_MAX_PAGES: z.coerce.number().int().positive().default(DEFAULT_PULL_MAX_PAGES),
    /** Stop starting series when less than this remains of the invocation; the next tick pulls the rest. */
    STOP_MARGIN_MS: z.coerce.number().int().min(0).default(10_000),
  })
  .transform((e) => ({ candlesQueueUrl: e.CANDLES_QUEUE_URL, backfillBusName: e.BACKFILL_BUS_NAME, maxPages: e.PULL_MAX_PAGES, stopMarginMs: e.STOP_MARGIN_MS }));
export const readPullWorkerConfig = configReader(configSchema, SERVICES.pullWorker);
export type PullWorkerConfig = ReturnType<typeof readPullWorkerConfig>;

export interface PullWorkerDeps extends ExchangeDeps {
  /** Most shards never hand a hole to the backfill path, so the client is made (and its SDK loaded) on first use. */
  events: () => Promise<EventBridgeClient>;
  sink?: CandleSink;
}

/** A Lambda container's: the pool on first use, exchange access from the environment, EventBridge loaded lazily. */
export function livePullWorkerDeps(env: Env): PullWorkerDeps {
  return { ...liveExchangeDeps(env), events: once(async () => new (await import('@aws-sdk/client-eventbridge')).EventBridgeClient({})) };
}

export interface ShardOutcome {
  exchange: string;
  series: number;
  candles: number;
  failed: number;
  backfills: number;
  /** Left for the next tick: the invocation neared its end, or the shard was superseded. */
  skipped: number;
  stale: boolean;
}

/**
 * A pull worker: each record of its batch is one shard (some due series of one exchange); it pulls
 * them `shard.concurrency` at a time through the shared exchange budget into the candles queue and
 * records how each ended. A failed series is not retried here: it is recorded (its last error shows
 * in /v1/markets), logged and counted, and the next tick fetches it from its watermark; freshness
 * and its alarm show a series that keeps failing. A shard no worker can read goes back to the queue
 * and, after its receive count, to the dead-letter queue.
 */
export function createPullWorkerHandler(config: PullWorkerConfig, deps: PullWorkerDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.pullWorker, deps);
  const sink = deps.sink ?? new QueueSink(deps.sqs, config.candlesQueueUrl);
  let access: ExchangeAccess | undefined;
  // Series ids never change: the shards' ids are kept for the container's life.
  const registry = new SeriesRegistry();

  async function requestBackfill(req: BackfillRequest): Promise<void> {
    const [events, { putBackfillRequests }] = await Promise.all([deps.events(), import('../ingest/backfill-events.ts')]);
    await putBackfillRequests(events, config.backfillBusName, [req]);
    logger.info('hole handed to the backfill path', { ...req, from: new Date(req.from).toISOString(), to: new Date(req.to).toISOString() });
  }

  async function pullShard(shard: PullShard, context: Context): Promise<ShardOutcome> {
    const db = await deps.db();
    access ??= deps.access(db);
    const outcome: ShardOutcome = { exchange: shard.exchange, series: 0, candles: 0, failed: 0, backfills: 0, skipped: 0, stale: false };
    if (access.now() >= shardStaleAt(shard)) {
      outcome.stale = true;
      outcome.skipped = shard.series.length;
      logger.warn('shard superseded by a newer tick, skipped', { exchange: shard.exchange, tick: new Date(shard.tick).toISOString(), series: shard.series.length });
      return outcome;
    }
    const jobs = shard.series.map((s) => {
      const series: SeriesKey = { exchange: shard.exchange, symbol: s.symbol, interval: s.interval };
      registry.remember(series, s.id);
      return { series, start: s.start ?? undefined };
    });
    const ids = new Map(shard.series.map((s) => [SeriesRegistry.key({ exchange: shard.exchange, symbol: s.symbol, interval: s.interval }), s.id]));
    const idOf = (s: SeriesKey) => ids.get(SeriesRegistry.key(s))!;
    const result = await pullSeries(
      jobs,
      { db, access, sink, registry, maxPages: config.maxPages, requestBackfill },
      { concurrency: shard.concurrency, shouldStop: () => context.getRemainingTimeInMillis() < config.stopMarginMs },
    );
    await recordPulls(db, [
      ...result.results.map((r) => ({ seriesId: idOf(r.series) })),
      ...result.failures.map((f) => ({ seriesId: idOf(f.series), error: f.error.message.slice(0, 500) })),
    ]);
    for (const f of result.failures) logger.error('series pull failed', { ...f.series, error: f.error.message });
    if (result.skipped.length > 0) logger.warn('invocation near its end: series left for the next tick', { exchange: shard.exchange, skipped: result.skipped.length });
    outcome.series = result.results.length;
    outcome.candles = result.results.reduce((n, r) => n + r.candles, 0);
    outcome.failed = result.failures.length;
    outcome.backfills = result.results.filter((r) => r.backfill).length;
    outcome.skipped = result.skipped.length;
    publishFreshness(result.results, shard);
    return outcome;
  }

  /** Candle close → handed to the candles queue, for the newest closed candle of each series of the tick's boundary. */
  function publishFreshness(results: readonly PullResult[], shard: PullShard): void {
    let worst = -1;
    for (const r of results) {
      if (r.closed === 0) continue;
      const step = INTERVAL_MS[r.series.interval];
      // The candle that closed at the tick's boundary (1m: always; 5m: at :00, :05, ...).
      if (shard.tick % step !== 0) continue;
      if (r.queuedAt !== undefined) worst = Math.max(worst, r.queuedAt - shard.tick);
    }
    if (worst >= 0) metrics.addMetric('PullFreshness', MetricUnit.Milliseconds, worst);
  }

  async function work(event: unknown, context: Context): Promise<SQSBatchResponse> {
    const batch = parseSqsEvent(event, 'pull worker', { nonEmpty: true });
    const failures: string[] = [];
    const totals = { series: 0, candles: 0, failed: 0, backfills: 0, skipped: 0, stale: 0 };
    try {
      for (const record of batch.Records) {
        const shard = readRecordBody(record, pullShardSchema, 'a pull shard');
        if (!shard.ok) {
          logger.error('a pull-work message that is not a shard: left for the dead-letter queue', { messageId: shard.messageId, reason: shard.reason });
          failures.push(shard.messageId);
          continue;
        }
        const outcome = await pullShard(shard.message, context);
        totals.series += outcome.series;
        totals.candles += outcome.candles;
        totals.failed += outcome.failed;
        totals.backfills += outcome.backfills;
        totals.skipped += outcome.skipped;
        totals.stale += outcome.stale ? 1 : 0;
        logger.info('shard pulled', { ...outcome, tick: new Date(shard.message.tick).toISOString() });
      }
    } finally {
      // The budget's settles go out before the container freezes.
      await flushBudget(access, (err) => logger.warn('budget settles not sent: kept for the next invocation', { error: String(err) }));
    }
    metrics.addMetric('CandlesFetched', MetricUnit.Count, totals.candles);
    metrics.addMetric('SeriesPulled', MetricUnit.Count, totals.series);
    metrics.addMetric('SeriesFailed', MetricUnit.Count, totals.failed);
    metrics.addMetric('SeriesSkipped', MetricUnit.Count, totals.skipped);
    metrics.addMetric('BackfillsRequested', MetricUnit.Count, totals.backfills);
    return batchResponse(failures);
  }

  return withPowertools(middy(work), { logger, metrics });
}
