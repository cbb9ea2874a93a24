import { randomBytes } from 'node:crypto';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { table } from '../../../cli/commands/gaps.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { resumeOpenBackfills, startLocalCandlekeep, type LocalCandlekeep, type LocalCandlekeepOptions } from '../../../dev/local-candlekeep.ts';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { synthesizeCandlekeep, type SynthesizedCandlekeep } from '../../../dev/template/index.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { putBackfillRequests } from '../../../functions/ingest/backfill-events.ts';
import { findGaps } from '../../../functions/ingest/gaps.ts';
import { queueCounts } from '../../../functions/queue/counts.ts';
import { countOpenChunks } from '../../../functions/store/backfills.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { coverageHoldings } from '../../support/coverage.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth } from '../../support/sqs.ts';
import { reconcile, scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';

/**
 * `npm run dev` whose LocalStack loses its state mid-backfill (a LocalStack the run started is
 * stopped with it and keeps nothing; a crash or power loss does the same to any): the backfill's
 * finished chunks had their candles queued, not yet written, and the queues are gone. The state
 * loss is the stack deleted from LocalStack after the pipeline stopped (the shared LocalStack
 * itself stays up); the next run deploys it afresh, as on a new LocalStack, and resumes.
 */
const DAY = 24 * 3_600_000;
const FROM = Date.UTC(2025, 3, 1);
const TO = FROM + 40 * DAY;
const SERIES: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };

let fake: FakeExchange;
let db: ScratchDatabase;
let pool: Db;
let synth: SynthesizedCandlekeep;
let run: LocalCandlekeep | undefined;
const endpoint = () => process.env.AWS_ENDPOINT_URL!;

beforeAll(async () => {
  fake = await startFakeExchange({ enforceLimits: false });
  db = await scratchDatabase('ck_fault_restart');
  pool = createPool(db.url, { max: 2 });
  synth = await synthesizeCandlekeep({
    stackName: `CandlekeepRestart-${randomBytes(4).toString('hex')}`,
    context: { 'candlekeep:markets': [{ exchange: 'okx', symbol: 'ETH/USDT', intervals: ['1h'], start: '2025-01-01' }] },
  });
}, 120_000);

afterAll(async () => {
  await run?.stop();
  await pool?.end();
  await db?.drop();
  await fake?.close();
});

function start(opts: Partial<LocalCandlekeepOptions> = {}): Promise<LocalCandlekeep> {
  return startLocalCandlekeep({
    synth,
    endpoint: endpoint(),
    databaseUrl: db.url,
    exchangeUrls: fake.baseUrls,
    apiKey: `restart-${randomBytes(8).toString('hex')}`,
    schedules: 'manual',
    waitTimeSeconds: 1,
    deleteStackOnStop: true,
    ...opts,
  });
}

const requestBackfill = (local: LocalCandlekeep) =>
  putBackfillRequests(new EventBridgeClient(awsClientConfig(endpoint())), local.deployment.outputs.BackfillBusName!, [
    { ...SERIES, from: FROM, to: TO, requestedBy: 'restart test' },
  ]);

async function chunksDone(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM backfill_chunks WHERE status = 'done'`);
  return rows[0]!.n;
}

async function settled(local: LocalCandlekeep, description: string): Promise<void> {
  await pollUntil(
    async () => {
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM backfills WHERE status IN ('planned', 'running')`);
      return rows[0]!.n === 0 && (await queueDepth(local.sqs, local.deployment.ref(synth.ids.candlesQueue))) === 0;
    },
    { timeoutMs: 90_000, intervalMs: 500, description },
  );
}

describe('fault: the local pipeline loses its LocalStack state mid-backfill', () => {
  it('starts again with every ledger row holding the candles it claims; the lost ranges read missing and a backfill repairs them', { timeout: 300_000 }, async () => {
    // Prepare: a run whose writer lags (here: does not run), so finished chunks' candles wait in the queue.
    run = await start({ skip: ['writer'] });
    await requestBackfill(run);
    const candlesQueue = run.deployment.ref(synth.ids.candlesQueue);
    await pollUntil(async () => (await chunksDone()) >= 1 && (await queueCounts(run!.sqs, candlesQueue)).visible > 0, {
      timeoutMs: 60_000,
      intervalMs: 200,
      description: 'a chunk to be done with its candles still queued',
    });

    // Act: stop and lose every queue (the stack is deleted on stop), then start again.
    await run.stop();
    run = undefined;
    const doneBeforeLoss = await chunksDone();
    const openBeforeLoss = await countOpenChunks(pool);
    run = await start();
    const resumed = await resumeOpenBackfills(run, db.url);
    expect(resumed).toBe(openBeforeLoss);
    await settled(run, 'the resumed backfill to finish and its candles to be written');

    // Assess: the ledger claims only what is stored; what was lost is missing, not "confirmed empty".
    const holdings = await coverageHoldings(pool);
    expect(holdings.length).toBeGreaterThan(0);
    expect(holdings.filter((r) => r.stored !== r.candles)).toEqual([]);
    const now = Date.now();
    const before = await findGaps(pool, SERIES, { from: FROM, to: TO, now });
    process.stdout.write(
      `[local restart] ${doneBeforeLoss} chunk(s) done and ${openBeforeLoss} open when the queues were lost; after the restart:\n${table(before)}\n`,
    );
    expect(before.holes.length).toBeGreaterThan(0);
    expect(before.holes.filter((h) => h.kind !== 'missing')).toEqual([]);

    // Sending the request again fetches exactly the lost ranges.
    await requestBackfill(run);
    await pollUntil(async () => (await findGaps(pool, SERIES, { from: FROM, to: TO, now })).holes.length === 0, {
      timeoutMs: 90_000,
      intervalMs: 500,
      description: 'the lost ranges to be backfilled',
    });
    await settled(run, 'the repair to finish');
    expect((await coverageHoldings(pool)).filter((r) => r.stored !== r.candles)).toEqual([]);
    await reconcile({
      label: 'local pipeline restarted after losing its LocalStack state',
      db: pool,
      series: [{ key: SERIES, expected: fake.expected('binance', 'BTC/USDT', '1m', FROM, TO - 1) }],
      messages: [],
      sqs: run.sqs,
      dlqUrl: run.deployment.ref(synth.ids.deadLetterQueue),
    });
  });
});
