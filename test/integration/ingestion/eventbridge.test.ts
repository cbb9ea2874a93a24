import {
  CreateEventBusCommand,
  DeleteEventBusCommand,
  EventBridgeClient,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
  DeleteRuleCommand,
} from '@aws-sdk/client-eventbridge';
import { CreateScheduleGroupCommand, DeleteScheduleCommand, DeleteScheduleGroupCommand, GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { CreateSecretCommand, DeleteSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventSourceRunner } from '../../../dev/event-source-runner.ts';
import { followMarkets } from '../../../functions/store/markets.ts';
import { scratchDatabase } from '../e2e/support.ts';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { createPlannerHandler, readPlannerConfig } from '../../../functions/backfill/planner-lambda.ts';
import { createWorkerHandler, readWorkerConfig } from '../../../functions/backfill/worker-lambda.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { putBackfillRequests, scheduleBackfill } from '../../../functions/ingest/backfill-events.ts';
import { getBackfillProgress } from '../../../functions/ingest/backfill-progress.ts';
import { BACKFILL_DETAIL_TYPE, BACKFILL_EVENT_SOURCE, backfillEventSchema, type BackfillRequest } from '../../../functions/ingest/backfill-request.ts';
import { liveExchangeAccess } from '../../../functions/exchanges/access.ts';
import { liveExchangeDeps } from '../../../functions/lambda-kit/container.ts';
import { createMetrics, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { createPullHandler, DATABASE_NOT_CONFIGURED_METRIC, readPullConfig } from '../../../functions/pull/pull-lambda.ts';
import type { Db } from '../../../functions/store/db.ts';
import { testPool, uniqueName } from '../../support/db.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { containerPool, testWriter, type SqsHandler } from '../../support/handlers.ts';
import { pollUntil } from '../../support/poll.ts';
import { runTick } from '../../support/pull.ts';
import { parseCandleBatch } from '../../../functions/candles/candle-batch.ts';
import { createQueues, drain, queueDepth, testSqs, type TestQueues } from '../../support/sqs.ts';
import { asStored, resetSeries, storedCandles } from './support.ts';


let events: EventBridgeClient;
let scheduler: SchedulerClient;
let sqs: SQSClient;
let db: Db;
let fake: FakeExchange;
let target: TestQueues;
let busName: string;
let busArn: string;
const ruleName = uniqueName('backfill-requested');

beforeAll(async () => {
  const endpoint = process.env.AWS_ENDPOINT_URL!;
  events = new EventBridgeClient(awsClientConfig(endpoint));
  scheduler = new SchedulerClient(awsClientConfig(endpoint));
  sqs = testSqs();
  db = testPool(3);
  fake = await startFakeExchange({ enforceLimits: false });

  // The stack's bus and rule, with an SQS queue standing in for the planner Lambda as the target
  // (Lambda cannot run inside LocalStack here); the pattern is the one the stack deploys.
  busName = uniqueName('candlekeep-backfills');
  busArn = (await events.send(new CreateEventBusCommand({ Name: busName }))).EventBusArn!;
  target = await createQueues(sqs);
  await events.send(
    new PutRuleCommand({
      Name: ruleName,
      EventBusName: busName,
      EventPattern: JSON.stringify({ source: [BACKFILL_EVENT_SOURCE], 'detail-type': [BACKFILL_DETAIL_TYPE] }),
    }),
  );
  await events.send(new PutTargetsCommand({ Rule: ruleName, EventBusName: busName, Targets: [{ Id: 'planner', Arn: target.queueArn }] }));
});

afterAll(async () => {
  await events?.send(new RemoveTargetsCommand({ Rule: ruleName, EventBusName: busName, Ids: ['planner'] })).catch(() => {});
  await events?.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: busName })).catch(() => {});
  await events?.send(new DeleteEventBusCommand({ Name: busName })).catch(() => {});
  await target?.delete();
  await fake?.close();
  await db?.end();
});

describe('backfill requests through EventBridge', () => {
  it('PutEvents on the bus reaches the rule target as the request the planner reads, and nothing else does', async () => {
    const req: BackfillRequest = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m', from: Date.UTC(2024, 0, 1), to: Date.UTC(2024, 0, 2), requestedBy: 'test' };
    const [eventId] = await putBackfillRequests(events, busName, [req]);
    await events.send(new PutEventsCommand({ Entries: [{ EventBusName: busName, Source: 'someone-else', DetailType: BACKFILL_DETAIL_TYPE, Detail: '{}' }] }));
    const delivered = await drain(sqs, target.queueUrl, 2, 3_000);
    expect(delivered).toHaveLength(1);
    const event = backfillEventSchema.parse(JSON.parse(delivered[0]!.Body!));
    expect(event).toMatchObject({ id: eventId, source: 'candlekeep', 'detail-type': 'Backfill Requested', detail: req });
  });

  it('creates a one-time schedule that will put the same request on the bus', async () => {
    const groupName = uniqueName('candlekeep-backfill-schedules');
    await scheduler.send(new CreateScheduleGroupCommand({ Name: groupName }));
    try {
      const req: BackfillRequest = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1h', from: Date.UTC(2023, 0, 1), to: Date.UTC(2024, 0, 1) };
      const at = new Date(Date.now() + 3_600_000);
      const roleArn = 'arn:aws:iam::000000000000:role/candlekeep-backfill-scheduler';
      const created = await scheduleBackfill(scheduler, { groupName, busArn, roleArn }, req, at);
      const got = await scheduler.send(new GetScheduleCommand({ Name: created.name, GroupName: groupName }));
      expect(got).toMatchObject({
        Name: created.name,
        GroupName: groupName,
        ScheduleExpression: `at(${at.toISOString().slice(0, 19)})`,
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: {
          Arn: busArn,
          RoleArn: roleArn,
          EventBridgeParameters: { Source: 'candlekeep', DetailType: 'Backfill Requested' },
        },
      });
      // What the schedule sends is exactly what the planner parses as an event's detail.
      const detail = JSON.parse(got.Target!.Input!);
      expect(backfillEventSchema.parse({ id: 'scheduled', source: 'candlekeep', 'detail-type': 'Backfill Requested', detail }).detail).toEqual(req);
      await scheduler.send(new DeleteScheduleCommand({ Name: created.name, GroupName: groupName }));
    } finally {
      await scheduler.send(new DeleteScheduleGroupCommand({ Name: groupName })).catch(() => {});
    }
  });
});

describe('the backfill path end to end on LocalStack', () => {
  const series: SeriesKey = { exchange: 'okx', symbol: 'BTC/USDT', interval: '1m' };
  const from = Date.UTC(2024, 0, 1);
  const to = Date.UTC(2024, 0, 8);

  it('event → planner Lambda → work queue → worker Lambdas → candles queue → writer Lambda → PostgreSQL', async () => {
    await resetSeries(db, [series]);
    const work = await createQueues(sqs, { visibilityTimeout: 30 });
    const candles = await createQueues(sqs, { visibilityTimeout: 30 });
    // The functions' own pool and exchange access, as their containers would have them.
    const pool = containerPool(process.env.DATABASE_URL!);
    const access = (handlerDb: Db) => liveExchangeAccess(handlerDb, { CANDLEKEEP_OKX_URL: fake.baseUrls.okx });
    const planner = createPlannerHandler(readPlannerConfig({ BACKFILL_WORK_QUEUE_URL: work.queueUrl }), { db: pool.db, sqs, access });
    const worker = createWorkerHandler(readWorkerConfig({ BACKFILL_WORK_QUEUE_URL: work.queueUrl, CANDLES_QUEUE_URL: candles.queueUrl }), {
      db: pool.db,
      sqs,
      access,
    }) as unknown as SqsHandler;
    const writer = testWriter({ sqs, dlqUrl: candles.dlqUrl, databaseUrl: process.env.DATABASE_URL! });

    const [eventId] = await putBackfillRequests(events, busName, [{ ...series, from, to, requestedBy: 'e2e' }]);
    const delivered = (await drain(sqs, target.queueUrl, 5, 5_000)).map((m) => JSON.parse(m.Body!) as { id: string });
    const event = delivered.find((e) => e.id === eventId);
    expect(event).toBeDefined();

    const context = { awsRequestId: 'planner-1', functionName: 'planner', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
    const plan = await planner(event, context);
    expect(plan).toMatchObject({ status: 'planned', chunks: 4, created: true }); // 10,080 minutes in chunks of 3,000
    // EventBridge delivers at least once: the same event again plans nothing.
    expect(await planner(event, context)).toMatchObject({ backfillId: plan.backfillId, created: false });

    const runners = [
      startEventSourceRunner({ sqs, queueUrl: work.queueUrl, queueArn: work.queueArn, handler: worker, batchSize: 1, concurrency: 2, waitTimeSeconds: 1, functionTimeoutMs: 300_000 }),
      startEventSourceRunner({ sqs, queueUrl: candles.queueUrl, queueArn: candles.queueArn, handler: writer.handler, batchSize: 10, maxBatchingWindowMs: 500, waitTimeSeconds: 1 }),
    ];
    try {
      await pollUntil(async () => (await getBackfillProgress(db, plan.backfillId))?.status === 'done', { timeoutMs: 60_000, description: 'the backfill to finish' });
      await pollUntil(async () => (await queueDepth(sqs, candles.queueUrl)) === 0, { timeoutMs: 30_000, description: 'the candles queue to drain' });
    } finally {
      await Promise.all(runners.map((r) => r.stop()));
      await Promise.all([pool.close(), writer.close()]);
      await work.delete();
      await candles.delete();
    }
    expect(runners[0]!.stats.handlerErrors).toBe(0);
    expect(runners[1]!.stats.handlerErrors).toBe(0);
    expect(await getBackfillProgress(db, plan.backfillId)).toMatchObject({ chunks: { total: 4, done: 4 }, candlesWritten: 10_080 });
    expect(await storedCandles(db, series, from, to)).toEqual(asStored(fake.expected('okx', series.symbol, '1m', from, to - 1)));
  });
});

describe('the pull Lambda', () => {
  const series: SeriesKey = { exchange: 'coinbase', symbol: 'BTC/USD', interval: '5m' };

  it('sends the newest part of a long hole to the candles queue and asks the bus for a backfill of the rest', async () => {
    await resetSeries(db, [series]);
    const candles = await createQueues(sqs);
    const start = Date.now() - 30 * 86_400_000;
    // The tick reads the followed markets from its database: one of its own, following only this market.
    const scratch = await scratchDatabase('ck_pull');
    const pool = containerPool(scratch.url);
    try {
      await followMarkets(await pool.db(), [{ exchange: 'coinbase', symbol: 'BTC/USD', intervals: ['5m'], start }]);
      const access = (handlerDb: Db) => liveExchangeAccess(handlerDb, { CANDLEKEEP_COINBASE_URL: fake.baseUrls.coinbase });
      const pull = createPullHandler(readPullConfig({ PULL_WORK_QUEUE_URL: candles.queueUrl }), { db: pool.db, sqs, access });
      const context = { awsRequestId: 'pull-1', functionName: 'pull', getRemainingTimeInMillis: () => 50_000 } as unknown as Context;
      await expect(pull({ bad: true }, context)).rejects.toThrow(/pull expects \{"intervals": \[...\]\}/);

      const run = await runTick(['5m'], { db: pool.db, sqs, access, candlesQueueUrl: candles.queueUrl, backfillBusName: busName, events: async () => events });
      expect(run.tick).toMatchObject({ series: 1, due: 1, shards: 1 });
      expect(run.responses).toEqual([{ batchItemFailures: [] }]);
      // Five pages of 300 buckets inline (the forming one included), the rest handed over.
      const queued = await drain(sqs, candles.queueUrl, 5, 5_000);
      const rows = queued.map((m) => parseCandleBatch(m.Body!)).flatMap((p) => (p.ok ? p.batch.rows : []));
      expect(rows).toHaveLength(1500);
      const requests = (await drain(sqs, target.queueUrl, 10, 3_000)).map((m) => backfillEventSchema.safeParse(JSON.parse(m.Body!)));
      const ours = requests.flatMap((r) => (r.success && r.data.detail.exchange === 'coinbase' ? [r.data.detail] : []));
      expect(ours).toEqual([{ ...series, from: Math.ceil(start / 300_000) * 300_000, to: expect.any(Number), requestedBy: 'pull' }]);
      expect(ours[0]!.to - ours[0]!.from).toBeGreaterThan(20 * 86_400_000);
    } finally {
      await pool.close();
      await scratch.drop();
      await candles.delete();
    }
  });

  it('skips its tick with one log line and a DatabaseNotConfigured metric while the secret holds no URL, sending nothing', async () => {
    const secrets = new SecretsManagerClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
    // What a fresh stack's secret holds: generated text, not a URL.
    const secret = await secrets.send(new CreateSecretCommand({ Name: uniqueName('ck-unconfigured'), SecretString: 'q8#Zgenerated-placeholder-text' }));
    const candles = await createQueues(sqs);
    // Logs and metrics as Lambda would ship them: JSON lines on stdout and stderr.
    const printed: string[] = [];
    const streams = [process.stdout, process.stderr] as const;
    const writes = streams.map((s) => s.write.bind(s));
    const restore = () => streams.forEach((s, i) => (s.write = writes[i]!));
    try {
      const config = readPullConfig({ PULL_WORK_QUEUE_URL: candles.queueUrl });
      // The container's own dependencies, reading the secret as in AWS.
      const deps = liveExchangeDeps({ DATABASE_SECRET_ARN: secret.ARN, CANDLEKEEP_WS_PROXY: process.env.CANDLEKEEP_WS_PROXY });
      // The test run turns metrics off (POWERTOOLS_METRICS_DISABLED); this one publishes, as in AWS.
      const disabled = process.env.POWERTOOLS_METRICS_DISABLED;
      process.env.POWERTOOLS_METRICS_DISABLED = 'false';
      const metrics = createMetrics(SERVICES.pull);
      process.env.POWERTOOLS_METRICS_DISABLED = disabled;
      const pull = createPullHandler(config, { ...deps, sqs, metrics });
      const context = { awsRequestId: 'pull-unconfigured', functionName: 'pull', getRemainingTimeInMillis: () => 50_000 } as unknown as Context;
      streams.forEach((s, i) => {
        s.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
          printed.push(String(chunk));
          return (writes[i] as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
        }) as typeof s.write;
      });
      const result = await pull({ intervals: ['5m'] }, context);
      restore();
      expect(result).toEqual({ series: 0, due: 0, shards: 0, behind: 0, lagMaxMs: 0, skipped: 'database not configured' });
      const lines = printed.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const logged = lines.filter((l) => String(l.message ?? '').startsWith('database not configured'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ level: 'ERROR', service: 'candlekeep-pull' });
      expect(String(logged[0]!.message)).toContain('holds no postgres:// URL');
      const emf = lines.find((l) => l._aws !== undefined && DATABASE_NOT_CONFIGURED_METRIC in l);
      expect(emf).toMatchObject({ [DATABASE_NOT_CONFIGURED_METRIC]: 1, service: 'candlekeep-pull' });
      expect(await queueDepth(sqs, candles.queueUrl)).toBe(0);
    } finally {
      restore();
      await candles.delete();
      await secrets.send(new DeleteSecretCommand({ SecretId: secret.ARN, ForceDeleteWithoutRecovery: true }));
      secrets.destroy();
    }
  });
});
