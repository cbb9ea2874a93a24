import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCandles } from '../../../functions/api/candles/read-candles.ts';
import { resolveSource } from '../../../functions/api/candles/source.ts';
import type { CandleOut } from '../../../functions/api/schemas.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { ensureBucket } from '../../../functions/exports/bucket.ts';
import { runExportJob } from '../../../functions/exports/export-job.ts';
import { inProcessExportService, type InProcessExports } from '../../../functions/exports/in-process.ts';
import { EXPORT_RETENTION_DAYS, EXPORTS_PREFIX, exportKey } from '../../../functions/exports/request.ts';
import { ABORT_UPLOADS_AFTER_DAYS } from '../../../lib/constructs/exports.ts';
import { getExportJob, insertExportJob } from '../../../functions/store/export-jobs.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { batch, T0 } from '../../support/candles.ts';
import { runCli, runPython } from '../../support/cli.ts';
import { uniqueName, uniqueSymbol } from '../../support/db.ts';
import { pollUntil } from '../../support/poll.ts';
import { API_KEY, useApi, type Answer } from '../api/support.ts';

/*
 * POST /v1/exports end to end: the API records the export, the export worker (in this process, as
 * `candlekeep serve` runs it) streams the file into a bucket on LocalStack's S3, GET
 * /v1/exports/{id} follows it to `done` and a presigned URL, and the file downloaded from that URL
 * is read back with pyarrow and pandas and compared value by value with PostgreSQL.
 */

const MIN = 60_000;
const A = uniqueSymbol();
const HUGE = uniqueSymbol();
const BUCKET = uniqueName('ck-exports').replace(/_/g, '-').toLowerCase();
const s3 = new S3Client({ endpoint: process.env.AWS_ENDPOINT_URL, forcePathStyle: true, region: process.env.AWS_REGION ?? 'us-east-1' });
let exports: InProcessExports;
let dir: string;

const api = useApi({
  deps: async (pool) => {
    await ensureBucket(s3, BUCKET);
    exports = inProcessExportService({ db: async () => pool, s3: async () => s3, bucket: BUCKET, urlSeconds: 300, retentionDays: 7, now: Date.now });
    return { exports };
  },
});

const norm = (v: unknown) => (typeof v === 'string' && v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v);

function rowsA(): CandleRow[] {
  const rows: CandleRow[] = [];
  for (let i = 0; i < 4000; i++) {
    if (i >= 500 && i < 540) continue; // a hole, for the gap policy
    rows.push([
      T0 + i * MIN,
      (30000 + i * 0.01).toFixed(2),
      (30001 + i * 0.01).toFixed(4),
      (29999 + i * 0.01).toFixed(2),
      (30000.5 + i * 0.01).toFixed(2),
      i % 11 === 0 ? '0.00001234' : `${i}.5`,
      i % 13 === 0 ? null : (i * 30000.123).toFixed(3),
      i % 17 === 0 ? null : i,
      1,
    ]);
  }
  return rows;
}

async function storedRows(symbol: string) {
  const { rows } = await api.pool.query<Record<string, unknown>>(
    `SELECT s.exchange, s.symbol, s.interval, (extract(epoch FROM c.open_time) * 1000)::float8 AS open_time, c.open::text, c.high::text, c.low::text,
            c.close::text, c.volume::text, c.quote_volume::text, c.trades::int8::float8 AS trades, c.closed
     FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1 AND s.interval = '1m' ORDER BY c.open_time`,
    [symbol],
  );
  return rows;
}

/** Follows the status resource until the export ended, checking every answer against the OpenAPI document. */
async function settle(location: string): Promise<Answer> {
  const fractions: number[] = [];
  const answer = await pollUntil(
    async () => {
      const a = await api.get(location);
      expect(a.status).toBe(200);
      if (a.body.progress.fraction !== null) fractions.push(a.body.progress.fraction);
      return a.body.status === 'done' || a.body.status === 'failed' ? a : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, description: `export ${location} to end` },
  );
  // Progress only grows.
  expect(fractions).toEqual([...fractions].sort((x, y) => x - y));
  return answer;
}

async function download(url: string, name: string): Promise<string> {
  const res = await fetch(url); // no API key: the URL is presigned
  expect(res.status).toBe(200);
  const path = join(dir, name);
  await writeFile(path, Buffer.from(await res.arrayBuffer()));
  return path;
}

async function readBack(path: string, format: 'parquet' | 'csv.gz') {
  return JSON.parse(await runPython('read_export.py', [path, format])) as { schema: Record<string, string>; columns: string[]; rows: Record<string, unknown>[] };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-api-export-'));
  const store = new CandleStore();
  await store.write(api.pool, [batch(A, rowsA())]);
  // 41 significant digits: more than Parquet's DECIMAL(38) holds.
  await store.write(api.pool, [batch(HUGE, [[T0, '1', '1', '1', '1', `${'9'.repeat(31)}.${'1'.repeat(10)}`, null, 1, 1]])]);
});

afterAll(async () => {
  await exports?.drain();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('POST /v1/exports', () => {
  it('writes a Parquet file to S3 whose every value is what PostgreSQL holds, behind a presigned URL', async () => {
    const posted = await api.call('POST', '/v1/exports', { body: { series: [`binance:${A}:1m`] } });
    expect(posted.status, posted.text).toBe(202);
    expect(posted.body).toMatchObject({ status: 'queued', format: 'parquet', download: null, error: null });
    const location = posted.headers.get('location')!;
    expect(location).toBe(`/v1/exports/${posted.body.id}`);

    const done = await settle(location);
    expect(done.body.status, done.body.error).toBe('done');
    const stored = await storedRows(A);
    expect(done.body.progress).toMatchObject({ sourceCandles: stored.length, totalSourceCandles: stored.length, rows: stored.length, fraction: 1 });
    expect(done.body.progress.bytes).toBeGreaterThan(0);
    const { url, expiresAt, fileName } = done.body.download;
    expect(new URL(url).origin).toBe(new URL(process.env.AWS_ENDPOINT_URL!).origin);
    expect(fileName).toBe(`candlekeep-export-${done.body.id}.parquet`);
    const validFor = Date.parse(expiresAt) - Date.now();
    expect(validFor).toBeGreaterThan(200_000);
    expect(validFor).toBeLessThanOrEqual(300_000);
    expect(Date.parse(done.body.fileExpiresAt) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);

    const path = await download(url, 'a.parquet');
    const file = await readBack(path, 'parquet');
    expect(file.schema).toMatchObject({ open_time: 'timestamp[ms, tz=UTC]', open: 'decimal128(18, 2)', high: 'decimal128(18, 4)', trades: 'int64' });
    expect(file.rows).toHaveLength(stored.length);
    file.rows.forEach((got, i) => {
      for (const c of ['exchange', 'symbol', 'interval', 'open_time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades', 'closed']) {
        expect(norm(got[c]), `row ${i} ${c}`).toBe(norm(stored[i]![c]));
      }
    });
    // The object is the file the link served, under the documented key.
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: exportKey(done.body.id, 'parquet') }));
    expect(Number(object.ContentLength)).toBe(done.body.progress.bytes);
  });

  it('resamples a market selection with the gap policy of reads, as csv.gz', async () => {
    const start = T0 + 7 * MIN;
    const end = T0 + 3900 * MIN;
    const posted = await api.call('POST', '/v1/exports', {
      body: { markets: { exchange: 'binance', symbols: [A], interval: '15m' }, start: new Date(start).toISOString(), end, gaps: 'null', format: 'csv.gz' },
    });
    expect(posted.status, posted.text).toBe(202);
    const done = await settle(posted.headers.get('location')!);
    expect(done.body.status, done.body.error).toBe('done');
    const file = await readBack(await download(done.body.download.url, 'a.csv.gz'), 'csv.gz');

    const src = await resolveSource(api.pool, 'binance', A, '15m');
    const want: CandleOut[] = [];
    let from: number | undefined;
    do {
      const page = await readCandles(api.pool, src, { start, end, limit: 10_000, from, gaps: 'null' });
      want.push(...page.candles);
      from = page.next ?? undefined;
    } while (from !== undefined);
    expect(want.some((c) => c.gap)).toBe(true);
    expect(file.columns).toContain('source_candles');
    expect(file.rows.map((r) => [Number(r.open_time), r.symbol, r.interval, norm(r.open), norm(r.high), norm(r.low), norm(r.close), norm(r.volume), r.gap, r.source_candles === null ? null : Number(r.source_candles)])).toEqual(
      want.map((c) => [c.openTime, A, '15m', norm(c.open ?? null), norm(c.high ?? null), norm(c.low ?? null), norm(c.close ?? null), norm(c.volume ?? null), String(c.gap), c.sourceCandles ?? null]),
    );
  });

  it('refuses bad requests clearly, recording nothing', async () => {
    const before = await api.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM exports');
    const cases: [object | string, number, string, RegExp][] = [
      [{}, 422, 'series', /either series or markets/],
      [{ series: [`binance:${A}:1m`], markets: { interval: '1h' } }, 422, 'series', /either series or markets/],
      [{ series: ['binance:BTCUSDT:1m'] }, 422, 'series[0]', /exchange:BASE\/QUOTE:interval/],
      [{ series: [`binance:${A}:1m`], format: 'xlsx' }, 422, 'format', /parquet or csv\.gz/],
      [{ series: [`binance:${A}:1m`], start: '2024-02-01', end: '2024-01-01' }, 422, 'end', /start must be before end/],
      [{ series: [`binance:${A}:1m`], start: 'yesterday' }, 422, 'start', /./],
      [{ series: [`binance:${A}:1m`], limit: 5 }, 422, 'limit', /./],
      [{ series: [`binance:${A}:1m`, 'binance:NOPE/USDT:1m'] }, 404, 'series[1]', /no candles are stored for binance NOPE\/USDT/],
      [{ series: [`binance:${A}:7m`] }, 422, 'series[0]', /./],
      [{ markets: { exchange: 'kraken', symbols: ['NOPE/USD'], interval: '1h' } }, 404, 'markets', /no stored series match/],
      ['{"series": [', 400, '(body)', /JSON/],
    ];
    for (const [body, status, parameter, detail] of cases) {
      const a = await api.call('POST', '/v1/exports', { body });
      expect(a.status, `${JSON.stringify(body)}: ${a.text}`).toBe(status);
      expect(a.headers.get('content-type')).toContain('application/problem+json');
      expect(a.body.parameter, JSON.stringify(a.body)).toBe(parameter);
      expect(a.body.detail).toMatch(detail);
    }
    const noType = await api.call('POST', '/v1/exports', { body: JSON.stringify({ series: [`binance:${A}:1m`] }), headers: { 'content-type': 'text/plain' } });
    expect(noType.status).toBe(415);
    const noKey = await api.call('POST', '/v1/exports', { body: { series: [`binance:${A}:1m`] }, key: null });
    expect(noKey.status).toBe(401);
    const after = await api.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM exports');
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);

    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-an-id']) {
      const missing = await api.get(`/v1/exports/${id}`);
      expect(missing.status).toBe(404);
      expect(missing.body.detail).toContain(`no export ${id}`);
    }
  });

  it('ends an export that cannot be written in status failed, with the reason', async () => {
    const posted = await api.call('POST', '/v1/exports', { body: { series: [`binance:${HUGE}:1m`] } });
    expect(posted.status, posted.text).toBe(202);
    const ended = await settle(posted.headers.get('location')!);
    expect(ended.body).toMatchObject({ status: 'failed', download: null, fileExpiresAt: null });
    expect(ended.body.error).toMatch(/volume values need 41 decimal digits .* Parquet DECIMAL holds 38/);
    expect(ended.body.finishedAt).not.toBeNull();
  });
});

describe('the bucket candlekeep serve creates', () => {
  // LocalStack's CloudFormation does not apply a bucket's LifecycleConfiguration (the stack's
  // bucket deployed there has none), so the stack's rules are asserted on the template
  // (test/infra/exports.test.ts); the bucket `candlekeep serve` creates on a local S3 is checked here.
  it('has the stack\'s lifecycle rules, as S3 reports them: files expire, unfinished uploads are aborted', async () => {
    const { Rules } = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: BUCKET }));
    expect(Rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ID: 'expire-exports', Status: 'Enabled', Filter: { Prefix: EXPORTS_PREFIX }, Expiration: { Days: EXPORT_RETENTION_DAYS } }),
        expect.objectContaining({ ID: 'abort-unfinished-uploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: ABORT_UPLOADS_AFTER_DAYS } }),
      ]),
    );
    expect(Rules).toHaveLength(2);
  });
});

describe('candlekeep export --remote', () => {
  const env = () => ({ CANDLEKEEP_URL: api.url, CANDLEKEEP_API_KEY: API_KEY });

  it('exports through the API with a progress bar and downloads the file', async () => {
    const path = join(dir, 'remote.csv.gz');
    const r = await runCli(['export', '--remote', '--series', `binance:${A}:1m`, '--out', path, '--json'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/export [0-9a-f-]{36} queued/);
    expect(r.stderr).toContain('export [');
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { rows: number; format: string; bytes: number; id: string };
    const stored = await storedRows(A);
    expect(summary).toMatchObject({ rows: stored.length, format: 'csv.gz' });
    const file = await readBack(path, 'csv.gz');
    expect(file.rows.map((row) => [Number(row.open_time), row.close, row.volume])).toEqual(stored.map((row) => [row.open_time, row.close, row.volume]));
  });

  it('exits 1 with the reason of a failed export and leaves no file', async () => {
    const path = join(dir, 'huge.parquet');
    const r = await runCli(['export', '--remote', '--series', `binance:${HUGE}:1m`, '--out', path], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/export [0-9a-f-]{36} failed: volume values need 41 decimal digits/);
    expect(existsSync(path) || existsSync(`${path}.partial`)).toBe(false);
  });
});

describe('the export job', () => {
  const request = () => ({ series: [`binance:${A}:1m`], gaps: 'omit', format: 'parquet' });

  it('fails an export that runs out of time and leaves no object and no unfinished upload behind', async () => {
    const job = await insertExportJob(api.pool, { request: request(), format: 'parquet', requestedBy: 'test' });
    const outcome = await runExportJob({ db: api.pool, s3, bucket: BUCKET, retentionDays: 7, now: Date.now, shouldStop: () => true }, job.id);
    expect(outcome).toMatchObject({ outcome: 'failed' });
    const row = (await getExportJob(api.pool, job.id))!;
    expect(row.status).toBe('failed');
    expect(row.error).toMatch(/did not finish in the worker's time \(\d+ of \d+ stored candles read\)/);
    await expect(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: exportKey(job.id, 'parquet') }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: exportKey(job.id, 'parquet') }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  it('fails with the bucket\'s answer when the bucket does not exist, and ignores a redelivery of an ended export', async () => {
    const job = await insertExportJob(api.pool, { request: request(), format: 'parquet', requestedBy: 'test' });
    const deps = { db: api.pool, s3, bucket: `${BUCKET}-missing`, retentionDays: 7, now: Date.now };
    const outcome = await runExportJob(deps, job.id);
    expect(outcome).toMatchObject({ outcome: 'failed' });
    expect((await getExportJob(api.pool, job.id))!.error).toMatch(new RegExp(`the exports bucket ${BUCKET}-missing refused the file \\(NoSuchBucket\\)`));
    expect(await runExportJob({ ...deps, bucket: BUCKET }, job.id)).toEqual({ outcome: 'skipped' });
    expect((await getExportJob(api.pool, job.id))!.status).toBe('failed');
  });
});

describe('S3Upload', () => {
  const MiB = 1024 * 1024;
  const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

  it('streams a file larger than a part as a multipart upload, byte for byte', async () => {
    const { S3Upload } = await import('../../../functions/exports/s3-upload.ts');
    const key = `exports/${uniqueName('multipart')}.bin`;
    const upload = new S3Upload({ s3, bucket: BUCKET, key, contentType: 'application/octet-stream', partBytes: 5 * MiB });
    const chunks = Array.from({ length: 23 }, (_, i) => bytes(512 * 1024 + i, i)); // about 11.5 MiB: three parts
    for (const c of chunks) if (!upload.write(c)) await new Promise((r) => upload.once('drain', r));
    upload.end();
    await new Promise((resolve, reject) => upload.once('finish', resolve).once('error', reject));
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(object.ETag).toMatch(/-3"$/); // S3 names a multipart object's ETag by its part count
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('aborts the multipart upload when destroyed, so no object and no parts remain', async () => {
    const { S3Upload } = await import('../../../functions/exports/s3-upload.ts');
    const key = `exports/${uniqueName('aborted')}.bin`;
    const upload = new S3Upload({ s3, bucket: BUCKET, key, contentType: 'application/octet-stream', partBytes: 5 * MiB });
    for (let i = 0; i < 12; i++) if (!upload.write(bytes(512 * 1024, i))) await new Promise((r) => upload.once('drain', r));
    const before = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }));
    expect(before.Uploads ?? []).toHaveLength(1);
    const closed = new Promise((r) => upload.once('close', r));
    upload.on('error', () => {}); // the error destroy() is given; what is checked is what S3 holds after
    upload.destroy(new Error('stopped'));
    await closed;
    const after = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: key }));
    expect(after.Uploads ?? []).toEqual([]);
    await expect(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({ name: 'NoSuchKey' });
  });
});
