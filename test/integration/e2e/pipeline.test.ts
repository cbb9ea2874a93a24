import { randomBytes } from 'node:crypto';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalCandlekeep, type LocalCandlekeep } from '../../../dev/local-candlekeep.ts';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { localFunctions, synthesizeCandlekeep, type SynthesizedCandlekeep } from '../../../dev/template/index.ts';
import type { Exchange } from '../../../functions/candles/candle.ts';
import { bucketStart, type Interval } from '../../../functions/candles/intervals.ts';
import { putBackfillRequests } from '../../../functions/ingest/backfill-events.ts';
import { encodeCandleBatches, parseCandleBatch } from '../../../functions/candles/candle-batch.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { followMarkets } from '../../../functions/store/markets.ts';
import { redrive } from '../../../functions/queue/redrive.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { asStored, readAll, scratchDatabase, type ScratchDatabase, type StoredCandle } from './support.ts';

/**
 * The whole pipeline as `npm run dev` runs it: the synthesized stack's queues, DLQ, secret, bus and
 * rule deployed to LocalStack through CloudFormation; the stack's own handlers (pull, writer,
 * backfill planner and worker, dead-letter scan, retention, API) run in this process with the template's environment and batch
 * settings; the fake exchange behind the adapters. What goes in at the exchange must come out of
 * the HTTP API unchanged.
 */
const API_KEY = `e2e-${randomBytes(8).toString('hex')}`;
const HOUR = 3_600_000;

let fake: FakeExchange;
let db: ScratchDatabase;
let pool: Db;
let synth: SynthesizedCandlekeep;
let local: LocalCandlekeep;
let frozenAt: number;
/** The followed market's `start`: the first tick fetches from there. */
let marketStart: number;
const errors: string[] = [];

beforeAll(async () => {
  // The fake's clock stands still, so the forming candle it serves during the tick is the one it
  // describes afterwards; limits are off (they have their own tests, and a frozen clock never refills).
  frozenAt = Date.now();
  marketStart = frozenAt - 3 * HOUR;
  fake = await startFakeExchange({ now: () => frozenAt, enforceLimits: false });
  db = await scratchDatabase();
  pool = createPool(db.url, { max: 2 });
  synth = await synthesizeCandlekeep({
    stackName: `CandlekeepE2e-${randomBytes(4).toString('hex')}`,
    context: {
      'candlekeep:markets': [{ exchange: 'binance', symbol: 'BTC/USDT', intervals: ['1m'], start: new Date(marketStart).toISOString() }],
    },
  });
  local = await startLocalCandlekeep({
    synth,
    endpoint: process.env.AWS_ENDPOINT_URL!,
    databaseUrl: db.url,
    exchangeUrls: fake.baseUrls,
    // The handlers judge which candles are closed by the fake's clock, as they would by an exchange's.
    exchangeClock: () => frozenAt,
    apiKey: API_KEY,
    schedules: 'manual',
    waitTimeSeconds: 1,
    deleteStackOnStop: true,
    onError: (role, err) => errors.push(`${role}: ${(err as Error).message}`),
  });
}, 120_000);

afterAll(async () => {
  await local?.stop();
  await Promise.all([fake?.close(), pool?.end()]);
  await db?.drop();
});

/** Every candle of the range through GET /v1/candles, following nextCursor. */
async function apiCandles(exchange: Exchange, symbol: string, interval: Interval, start: number, end: number): Promise<StoredCandle[]> {
  const out: StoredCandle[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ exchange, symbol, interval, start: String(start), end: String(end), limit: '500' });
    if (cursor) q.set('cursor', cursor);
    const res = await fetch(`${local.server.url}/v1/candles?${q}`, { headers: { 'x-api-key': API_KEY } });
    expect(res.status, await res.clone().text()).toBe(200);
    const page = (await res.json()) as { candles: (StoredCandle & { gap: boolean })[]; nextCursor: string | null };
    for (const { gap: _gap, ...c } of page.candles) out.push(c);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

async function drained(): Promise<boolean> {
  return (await queueDepth(local.sqs, local.deployment.ref(synth.ids.candlesQueue))) === 0;
}

describe('the local pipeline end to end (LocalStack + PostgreSQL + fake exchange)', () => {
  it('a scheduled tick flows through the candles queue into PostgreSQL and out of the API as the exchange served it', async () => {
    const start = marketStart;
    await local.pipeline.tick();
    const expected = fake.expected('binance', 'BTC/USDT', '1m', start, frozenAt).map(asStored);
    expect(expected.length).toBeGreaterThanOrEqual(180);
    // The forming candle is stored, and stored as open.
    expect(expected.at(-1)).toMatchObject({ openTime: bucketStart(frozenAt, '1m'), closed: false });

    await pollUntil(async () => (await drained()) && (await apiCandles('binance', 'BTC/USDT', '1m', start, frozenAt + HOUR)).length === expected.length, {
      timeoutMs: 45_000,
      intervalMs: 500,
      description: 'the tick to reach the API',
    });
    expect(await apiCandles('binance', 'BTC/USDT', '1m', start, frozenAt + HOUR)).toEqual(expected);
    expect(errors).toEqual([]);
  });

  it('a market followed through the API at runtime is pulled on the next tick, through the pull-work queue and its workers, with no redeploy', async () => {
    const followed = await fetch(`${local.server.url}/v1/markets`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ markets: [{ exchange: 'okx', symbol: 'SOL/USDT', intervals: ['1m'] }] }),
    });
    expect(followed.status, await followed.clone().text()).toBe(201);
    const workQueue = local.deployment.resolve(local.functions.functions.find((f) => f.role === 'pull')!.environment.PULL_WORK_QUEUE_URL!);
    const workerRuns = () => local.pipeline.runnerStats().pullWorker?.batches ?? 0;
    const before = workerRuns();

    await local.pipeline.tick();
    // A new market without a start: the newest page (OKX serves 300 rows), forming candle included.
    const forming = bucketStart(frozenAt, '1m');
    const expected = fake.expected('okx', 'SOL/USDT', '1m', forming - 299 * 60_000, frozenAt).map(asStored);
    expect(expected).toHaveLength(300);
    await pollUntil(
      async () => (await queueDepth(local.sqs, workQueue)) === 0 && (await drained()) && (await apiCandles('okx', 'SOL/USDT', '1m', forming - 400 * 60_000, frozenAt + HOUR)).length === expected.length,
      { timeoutMs: 45_000, intervalMs: 500, description: 'the new market to reach the API' },
    );
    expect(await apiCandles('okx', 'SOL/USDT', '1m', forming - 400 * 60_000, frozenAt + HOUR)).toEqual(expected);
    expect(workerRuns()).toBeGreaterThan(before);
    expect(errors).toEqual([]);
  });

  it('a backfill request on the bus flows through the rule, planner, work queue, worker and candles queue, and out of the API unchanged', async () => {
    const from = Date.UTC(2025, 0, 1);
    const to = Date.UTC(2025, 0, 15);
    const events = new EventBridgeClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
    await putBackfillRequests(events, local.deployment.outputs.BackfillBusName!, [{ exchange: 'okx', symbol: 'ETH/USDT', interval: '1h', from, to, requestedBy: 'e2e' }]);

    const status = await pollUntil(
      async () => {
        const { rows } = await pool.query<{ status: string }>(
          `SELECT b.status FROM backfills b JOIN series s ON s.id = b.series_id WHERE s.exchange = 'okx' AND s.symbol = 'ETH/USDT' AND s.interval = '1h'`,
        );
        const s = rows[0]?.status;
        return s && s !== 'planned' && s !== 'running' ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: 'the backfill to finish' },
    );
    expect(status).toBe('done');

    const expected = fake.expected('okx', 'ETH/USDT', '1h', from, to - 1).map(asStored);
    expect(expected).toHaveLength(14 * 24);
    await pollUntil(async () => (await drained()) && (await apiCandles('okx', 'ETH/USDT', '1h', from, to)).length === expected.length, {
      timeoutMs: 45_000,
      intervalMs: 500,
      description: 'the backfilled candles to reach the API',
    });
    expect(await apiCandles('okx', 'ETH/USDT', '1h', from, to)).toEqual(expected);

    // Nothing was dead-lettered on the way, and the rule's event was consumed.
    expect(await readAll(local.sqs, local.deployment.ref(synth.ids.deadLetterQueue))).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('the scheduled dead-letter scan puts what waits in the dead-letter queue into /v1/gaps and /v1/markets, and a redrive clears both', async () => {
    // Hours the backfill above stored, lost from the table and waiting in the stack's DLQ instead.
    const from = Date.UTC(2025, 0, 5, 10);
    const to = from + 3 * HOUR;
    await pool.query(
      `DELETE FROM candles WHERE series_id = (SELECT id FROM series WHERE exchange = 'okx' AND symbol = 'ETH/USDT' AND interval = '1h')
         AND open_time >= to_timestamp($1::float8 / 1000) AND open_time < to_timestamp($2::float8 / 1000)`,
      [from, to],
    );
    const dlqUrl = local.deployment.ref(synth.ids.deadLetterQueue);
    await sendBodies(local.sqs, dlqUrl, encodeCandleBatches({ exchange: 'okx', symbol: 'ETH/USDT', interval: '1h' }, fake.expected('okx', 'ETH/USDT', '1h', from, to - 1), frozenAt));

    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${local.server.url}${path}`, { headers: { 'x-api-key': API_KEY } });
      expect(res.status, await res.clone().text()).toBe(200);
      return (await res.json()) as T;
    };
    const market = async () =>
      (await api<{ markets: { deadLetteredMessages: number; deadLetteredCandles: number }[] }>('/v1/markets?exchange=okx&symbol=ETH/USDT&interval=1h')).markets[0];
    const gaps = async () => (await api<{ gaps: unknown[] }>('/v1/gaps?exchange=okx&symbol=ETH/USDT&interval=1h')).gaps;

    // Every schedule of the template fires, the scan's among them.
    await local.pipeline.tick();
    expect(await market()).toMatchObject({ deadLetteredMessages: 1, deadLetteredCandles: 3 });
    expect(await gaps()).toEqual([
      { start: from, end: to, missingCandles: 3, kind: 'dead-lettered', confirmedByExchange: false, deadLetteredMessages: 1 },
    ]);

    expect(await redrive(local.sqs, { queueUrl: local.deployment.ref(synth.ids.candlesQueue), dlqUrl })).toMatchObject({ moved: 1, failed: 0 });
    await pollUntil(async () => (await drained()) && (await gaps()).length === 0, { timeoutMs: 45_000, intervalMs: 500, description: 'the redriven hours to be stored' });
    await local.pipeline.tick();
    expect(await market()).toMatchObject({ deadLetteredMessages: 0, deadLetteredCandles: 0 });
    expect(errors).toEqual([]);
  });

  it('runs the retention job on its daily schedule, reading each market\'s retention from the database', async () => {
    const [schedule] = localFunctions(synth).schedules.filter((x) => x.functionId === synth.ids.functions.retention);
    expect(schedule?.expression).toBe('cron(30 2 * * ? *)');
    expect(schedule!.next(Date.UTC(2026, 0, 1, 12))).toBe(Date.UTC(2026, 0, 2, 2, 30));

    await followMarkets(pool, [{ exchange: 'binance', symbol: 'LINK/USDT', intervals: ['1h'], retention: { default: 2 } }]);
    const old = bucketStart(frozenAt - 10 * 24 * HOUR, '1h');
    const rows = fake.expected('binance', 'LINK/USDT', '1h', old, old + 24 * HOUR - 1);
    await new CandleStore().upsert(pool, encodeCandleBatches({ exchange: 'binance', symbol: 'LINK/USDT', interval: '1h' }, rows, frozenAt).map((b) => {
      const parsed = parseCandleBatch(b);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.batch;
    }));

    // Every schedule of the template fires, the retention job's among them. The same tick pulls the
    // market's newest page through the pull-work queue, which may land after the job ran: once it
    // has, the next run expires what that page brought from before the horizon too.
    await local.pipeline.tick();
    const pulledPageStored = async () => {
      const { rows: recent } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM candles WHERE series_id = (SELECT id FROM series WHERE exchange = 'binance' AND symbol = 'LINK/USDT' AND interval = '1h')
           AND open_time >= to_timestamp($1::float8 / 1000)`,
        [frozenAt - 24 * HOUR],
      );
      return Number(recent[0]!.n) > 0 && (await drained());
    };
    await pollUntil(pulledPageStored, { timeoutMs: 45_000, intervalMs: 250, description: 'the tick\'s pull of LINK/USDT to be stored' });
    await local.pipeline.tick();
    const { rows: left } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM candles WHERE series_id = (SELECT id FROM series WHERE exchange = 'binance' AND symbol = 'LINK/USDT' AND interval = '1h')
         AND open_time < to_timestamp($1::float8 / 1000)`,
      [old + 24 * HOUR],
    );
    expect(Number(left[0]!.n)).toBe(0);
    const res = await fetch(`${local.server.url}/v1/markets?exchange=binance&symbol=LINK/USDT&interval=1h`, { headers: { 'x-api-key': API_KEY } });
    const listed = ((await res.json()) as { markets: { retentionDays: number; expiredCandles: number }[] }).markets[0]!;
    expect(listed.retentionDays).toBe(2);
    // The 24 written above, and whatever older candles the pulled page held.
    expect(listed.expiredCandles).toBeGreaterThanOrEqual(24);
    expect(errors).toEqual([]);
  });
});
