import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetBucketEncryptionCommand, GetPublicAccessBlockCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalCandlekeep, type LocalCandlekeep } from '../../../dev/local-candlekeep.ts';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { synthesizeCandlekeep, type SynthesizedCandlekeep } from '../../../dev/template/index.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { batch, T0 } from '../../support/candles.ts';
import { runPython } from '../../support/cli.ts';
import { uniqueSymbol } from '../../support/db.ts';
import { pollUntil } from '../../support/poll.ts';
import { scratchDatabase, type ScratchDatabase } from './support.ts';

/*
 * Exports as the stack runs them, the way `npm run dev` hosts it: the synthesized stack's exports
 * bucket, work queue and dead-letter queue deployed to LocalStack through CloudFormation; POST
 * /v1/exports on the local API puts the export on the work queue; the export worker handler, fed
 * by the queue's event source mapping, writes the file into the bucket; GET /v1/exports/{id}
 * answers a presigned URL on LocalStack, and the file read back with pyarrow holds what PostgreSQL
 * holds.
 */
const API_KEY = `e2e-${randomBytes(8).toString('hex')}`;
const SYMBOL = uniqueSymbol();

let db: ScratchDatabase;
let pool: Db;
let synth: SynthesizedCandlekeep;
let local: LocalCandlekeep;
let dir: string;
const errors: string[] = [];

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${local.server.url}${path}`, {
    method,
    headers: { 'x-api-key': API_KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-e2e-export-'));
  db = await scratchDatabase('ck_e2e_exports');
  pool = createPool(db.url, { max: 2 });
  const rows: CandleRow[] = Array.from({ length: 3000 }, (_, i) => [
    T0 + i * 60_000,
    (100 + i * 0.001).toFixed(3),
    (101 + i * 0.001).toFixed(3),
    (99 + i * 0.001).toFixed(3),
    (100.5 + i * 0.001).toFixed(3),
    `${i}.25`,
    i % 7 ? `${i * 100}.5` : null,
    i % 5 ? i : null,
    1,
  ]);
  await new CandleStore().write(pool, [batch(SYMBOL, rows)]);
  synth = await synthesizeCandlekeep({ stackName: `CandlekeepExports-${randomBytes(4).toString('hex')}`, context: { 'candlekeep:markets': [] } });
  local = await startLocalCandlekeep({
    synth,
    endpoint: process.env.AWS_ENDPOINT_URL!,
    databaseUrl: db.url,
    apiKey: API_KEY,
    schedules: 'manual',
    waitTimeSeconds: 1,
    deleteStackOnStop: true,
    onError: (role, err) => errors.push(`${role}: ${(err as Error).message}`),
  });
}, 180_000);

afterAll(async () => {
  await local?.stop();
  await pool?.end();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('exports through the stack on LocalStack', () => {
  // Its lifecycle rules are asserted on the template (test/infra/exports.test.ts): LocalStack's
  // CloudFormation does not apply LifecycleConfiguration (GetBucketLifecycleConfiguration on the
  // deployed bucket answers NoSuchLifecycleConfiguration). The bucket `candlekeep serve` creates on
  // LocalStack has them (test/integration/exports/api-export.test.ts).
  it('deploys the exports bucket private and encrypted', async () => {
    const s3 = new S3Client({ ...awsClientConfig(process.env.AWS_ENDPOINT_URL!), forcePathStyle: true });
    const bucket = local.deployment.ref(synth.ids.exportsBucket);
    const block = await s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket }));
    expect(block.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    const encryption = await s3.send(new GetBucketEncryptionCommand({ Bucket: bucket }));
    expect(encryption.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('AES256');
  });

  it('queues the export, writes it with the worker and answers a presigned URL to a file with the stored values', async () => {
    const posted = await call('POST', '/v1/exports', { series: [`binance:${SYMBOL}:1m`], start: T0 + 100 * 60_000 });
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    const location = posted.headers.get('location')!;
    const done = await pollUntil(
      async () => {
        const a = await call('GET', location);
        return a.body.status === 'done' || a.body.status === 'failed' ? a : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, description: 'the export worker to finish' },
    );
    expect(done.body.status, done.body.error).toBe('done');
    expect(done.body.progress).toMatchObject({ rows: 2900, fraction: 1 });
    expect(new URL(done.body.download.url).origin).toBe(new URL(process.env.AWS_ENDPOINT_URL!).origin);
    const res = await fetch(done.body.download.url);
    expect(res.status).toBe(200);
    const path = join(dir, 'e2e.parquet');
    await writeFile(path, Buffer.from(await res.arrayBuffer()));
    const file = JSON.parse(await runPython('read_export.py', [path, 'parquet'])) as { rows: Record<string, unknown>[] };
    const { rows: stored } = await pool.query<{ t: number; close: string; quote: string | null; trades: number | null }>(
      `SELECT (extract(epoch FROM c.open_time) * 1000)::float8 AS t, c.close::text AS close, c.quote_volume::text AS quote, c.trades::int8::float8 AS trades
       FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1 AND c.open_time >= to_timestamp($2::float8 / 1000) ORDER BY c.open_time`,
      [SYMBOL, T0 + 100 * 60_000],
    );
    expect(file.rows.map((r) => [r.open_time, r.close, r.quote_volume, r.trades])).toEqual(stored.map((s) => [s.t, s.close, s.quote, s.trades]));
    expect(local.pipeline.runnerStats().exportWorker?.batches).toBeGreaterThanOrEqual(1);
    expect(errors).toEqual([]);
  });
});
