import { CreateScheduleGroupCommand, DeleteScheduleGroupCommand, GetScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { runCli } from '../../support/cli.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { backfillEventSchema, BACKFILL_DETAIL_TYPE } from '../../../functions/ingest/backfill-request.ts';
import type { Db } from '../../../functions/store/db.ts';
import { testPool, uniqueName } from '../../support/db.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { watchedBus, type WatchedBus } from '../../support/bus.ts';
import { asStored, resetSeries, storedCandles } from './support.ts';

let fake: FakeExchange;
let db: Db;

beforeAll(async () => {
  fake = await startFakeExchange({ enforceLimits: false });
  db = testPool(2);
});
afterAll(async () => {
  await fake?.close();
  await db?.end();
});

/** `npx candlekeep ...` as a user runs it, against this run's database and the fake exchange. */
const candlekeep = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { CANDLEKEEP_BYBIT_URL: fake.baseUrls.bybit, CANDLEKEEP_BACKFILL_BUS: '', ...env });
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

describe('candlekeep pull / backfill / gaps', () => {
  const series: SeriesKey = { exchange: 'bybit', symbol: 'ETH/USDT', interval: '1h' };
  const args = ['--exchange', 'bybit', '--symbol', 'ETH/USDT', '--interval', '1h'];

  it('pulls a range straight into the database and prints JSON for scripts, progress on stderr', async () => {
    await resetSeries(db, [series]);
    const out = await candlekeep(['pull', ...args, '--from', '2024-01-01', '--to', '2024-01-03', '--json']);
    expect(out.code).toBe(0);
    expect(lastJson(out.stdout)).toMatchObject({ mode: 'direct', candles: 48, closed: 48, open: 0, written: 48, from: '2024-01-01T00:00:00.000Z' });
    expect(out.stderr).toMatch(/bybit ETH\/USDT 1h \[#+\] 100\.0% 48 candles/);
    const from = Date.UTC(2024, 0, 1);
    expect(await storedCandles(db, series, from, Date.UTC(2024, 0, 3))).toEqual(asStored(fake.expected('bybit', 'ETH/USDT', '1h', from, Date.UTC(2024, 0, 3) - 1)));
  });

  it('backfills locally with progress, then reports status and gaps', async () => {
    const out = await candlekeep(['backfill', ...args, '--from', '2024-01-01', '--to', '2024-03-01', '--local', '--json']);
    expect(out.code).toBe(0);
    const result = lastJson(out.stdout);
    // The first two days were pulled above (the ledger has them): only the rest is planned.
    expect(result).toMatchObject({ mode: 'local', status: 'done', candlesWritten: (31 + 29 - 2) * 24 });
    expect(out.stderr).toMatch(/backfill \d+ bybit ETH\/USDT 1h \[/);

    const status = await candlekeep(['backfill', 'status', String(result.id), '--json']);
    expect(status.code).toBe(0);
    expect(lastJson(status.stdout)).toMatchObject({ id: result.id, status: 'done', chunks: { done: 1, total: 1 } });

    const gaps = await candlekeep(['gaps', ...args, '--from', '2024-01-01', '--to', '2024-03-01', '--json']);
    expect(gaps.code).toBe(0);
    expect(lastJson(gaps.stdout)).toMatchObject({ stored: 60 * 24, holes: [], plan: [] });
  });

  it.each([
    [['pull', '--exchange', 'ftx', '--symbol', 'BTC/USDT', '--interval', '1m'], /unknown exchange "ftx"/],
    [['pull', '--exchange', 'coinbase', '--symbol', 'BTC/USD', '--interval', '4h'], /coinbase has no 4h candles; it offers 1m 5m 15m 1h 6h 1d/],
    [['pull', ...args, '--from', '2024-02-30'], /--from "2024-02-30"/],
    [['pull', '--exchange', 'bybit', '--symbol', 'DOGE/USDT', '--interval', '1h', '--from', '2024-01-01'], /unknown symbol DOGE\/USDT/],
    [['backfill', ...args, '--from', '2024-01-01', '--to', '2024-02-01'], /no backfill bus configured: set CANDLEKEEP_BACKFILL_BUS .* or pass --local/],
    [['gaps', '--exchange', 'bybit', '--symbol', 'BTC/USDT', '--interval', '1w'], /no stored series bybit BTC\/USDT 1w/],
    [['backfill', 'status', 'x'], /needs a backfill id/],
  ])('exits 2 with a clear message: %s', async (argv, message) => {
    const out = await candlekeep(argv);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(message);
  });
});

describe('candlekeep backfill through EventBridge', () => {
  let scheduler: SchedulerClient;
  let bus: WatchedBus;
  const groupName = uniqueName('cli-backfill-schedules');
  const aws = () => ({ AWS_ENDPOINT_URL: process.env.AWS_ENDPOINT_URL!, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });

  beforeAll(async () => {
    scheduler = new SchedulerClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
    bus = await watchedBus('cli-bus');
    await scheduler.send(new CreateScheduleGroupCommand({ Name: groupName }));
  });
  afterAll(async () => {
    await scheduler?.send(new DeleteScheduleGroupCommand({ Name: groupName })).catch(() => {});
    await bus?.delete().catch(() => {});
  });

  it('puts the request on the bus now', async () => {
    const out = await candlekeep(['backfill', '--exchange', 'okx', '--symbol', 'BTC/USDT', '--interval', '15m', '--from', '2023-01-01', '--to', '2023-07-01', '--json'], {
      ...aws(),
      CANDLEKEEP_BACKFILL_BUS: bus.name,
    });
    expect(out.code).toBe(0);
    const { eventIds } = lastJson(out.stdout) as { eventIds: string[] };
    const event = await bus.nextEvent(10_000);
    expect(event['detail-type']).toBe(BACKFILL_DETAIL_TYPE);
    expect(backfillEventSchema.parse(event)).toMatchObject({
      id: eventIds[0],
      detail: { exchange: 'okx', symbol: 'BTC/USDT', interval: '15m', from: Date.UTC(2023, 0, 1), to: Date.UTC(2023, 6, 1) },
    });
  });

  it('schedules it with --at as a one-time schedule', async () => {
    const at = new Date(Date.now() + 86_400_000).toISOString().slice(0, 16);
    const roleArn = 'arn:aws:iam::000000000000:role/scheduler';
    const out = await candlekeep(['backfill', '--exchange', 'okx', '--symbol', 'BTC/USDT', '--interval', '15m', '--from', '2023-01-01', '--to', '2023-07-01', '--at', at, '--json'], {
      ...aws(),
      CANDLEKEEP_BACKFILL_BUS: bus.arn,
      CANDLEKEEP_BACKFILL_SCHEDULE_GROUP: groupName,
      CANDLEKEEP_BACKFILL_SCHEDULER_ROLE_ARN: roleArn,
    });
    expect(out.code, out.stderr).toBe(0);
    const result = lastJson(out.stdout) as { mode: string; schedule: string; at: string };
    expect(result).toMatchObject({ mode: 'schedule', at: `${at}:00.000Z` });
    const got = await scheduler.send(new GetScheduleCommand({ Name: result.schedule, GroupName: groupName }));
    expect(got).toMatchObject({ ScheduleExpression: `at(${at}:00)`, Target: { Arn: bus.arn, RoleArn: roleArn } });
  });
});
