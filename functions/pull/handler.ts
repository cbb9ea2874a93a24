import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import * as z from 'zod';
import { parseMarkets } from '../config/markets.ts';
import type { BackfillRequest } from '../ingest/backfill-request.ts';
import { QueueSink } from '../ingest/candle-sink.ts';
import { liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { DEFAULT_PULL_MAX_PAGES, pullMarkets } from '../ingest/pull.ts';
import { pullEventSchema } from '../ingest/pull-schedule.ts';
import { getPool } from '../store/db.ts';

/** Read once per container; a missing or malformed setting fails the cold start loudly. */
const config = z
  .object({
    CANDLES_QUEUE_URL: z.url('CANDLES_QUEUE_URL must be the URL of the candles queue'),
    BACKFILL_BUS_NAME: z.string().min(1, 'BACKFILL_BUS_NAME must name the backfill event bus'),
    MARKETS: z.string().min(1, 'MARKETS must hold the followed markets as JSON').transform((text) => parseMarkets(text)),
    PULL_MAX_PAGES: z.coerce.number().int().positive().default(DEFAULT_PULL_MAX_PAGES),
  })
  .parse(process.env);

const logger = new Logger({ serviceName: 'candlekeep-pull' });
const metrics = new Metrics({ namespace: 'candlekeep', serviceName: 'candlekeep-pull' });
const sqs = new SQSClient({});
const sink = new QueueSink(sqs, config.CANDLES_QUEUE_URL);
let access: ExchangeAccess | undefined;
let events: EventBridgeClient | undefined;

async function requestBackfill(req: BackfillRequest): Promise<void> {
  // Loaded on first use: most ticks never hand a hole to the backfill path.
  const [{ EventBridgeClient }, { putBackfillRequests }] = await Promise.all([
    import('@aws-sdk/client-eventbridge'),
    import('../ingest/backfill-events.ts'),
  ]);
  events ??= new EventBridgeClient({});
  await putBackfillRequests(events, config.BACKFILL_BUS_NAME, [req]);
  logger.info('hole handed to the backfill path', { ...req, from: new Date(req.from).toISOString(), to: new Date(req.to).toISOString() });
}

async function pull(event: unknown): Promise<{ series: number; candles: number; backfills: number }> {
  const parsed = pullEventSchema.safeParse(event);
  if (!parsed.success) throw new Error(`pull expects {"intervals": [...]} from its schedule: ${parsed.error.issues[0]?.message}`);
  const db = await getPool();
  access ??= liveExchangeAccess(db);
  const outcome = await pullMarkets(config.MARKETS, parsed.data.intervals, {
    db,
    access,
    sink,
    maxPages: config.PULL_MAX_PAGES,
    requestBackfill,
  });
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

export const handler = middy(pull).use(injectLambdaContext(logger)).use(logMetrics(metrics));
