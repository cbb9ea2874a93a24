import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/constructs/candlekeep-function.ts';
import type { CandleRow } from '../../functions/candles/candle-batch.ts';
import { createApiKey } from '../../functions/store/api-keys.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { batch, T0 } from '../support/candles.ts';
import { runCli, runProcess } from '../support/cli.ts';
import { testPool, uniqueName, uniqueSymbol } from '../support/db.ts';
import { pollUntil } from '../support/poll.ts';

/*
 * The Python client's pytest suite (python/tests) against `candlekeep serve` on this run's
 * database, as a user would run it: 25,000 stored candles (three pages), backtest records, and a
 * file `candlekeep export` wrote; exports through the API go to a bucket on LocalStack's S3. Any failing Python test fails this one, with pytest's report.
 */

const KEY = 'python-client-key-0123';
const SYMBOL = uniqueSymbol();
const N = 25_000;
let db: Db;
let dir: string;
let server: ChildProcess | undefined;
let url = '';

function rows(): CandleRow[] {
  return Array.from({ length: N }, (_, i): CandleRow => [
    T0 + i * 60_000,
    `${(50000 + (i % 997) * 0.1).toFixed(2)}`,
    `${(50010 + (i % 997) * 0.1).toFixed(2)}0`, // trailing zero: exact mode keeps it
    `${(49990 + (i % 997) * 0.1).toFixed(2)}`,
    `${(50001 + (i % 991) * 0.1).toFixed(2)}`,
    i % 5 === 0 ? '0.00012345' : `${i % 300}.123456`,
    i % 9 === 0 ? null : `${(i % 300) * 50000}.5`,
    i % 11 === 0 ? null : i % 1000,
    1,
  ]);
}

beforeAll(async () => {
  db = testPool(2);
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-python-'));
  const all = rows();
  const store = new CandleStore();
  for (let i = 0; i < all.length; i += 5000) await store.write(db, [batch(SYMBOL, all.slice(i, i + 5000))]);
  const { rows: stored } = await db.query<[number, string, string, string, string, string, string | null, number | null, boolean]>({
    text: `SELECT (extract(epoch FROM c.open_time) * 1000)::float8, c.open::text, c.high::text, c.low::text, c.close::text, c.volume::text,
                  c.quote_volume::text, c.trades::int8::float8, c.closed
           FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1 AND s.interval = '1m' ORDER BY c.open_time`,
    values: [SYMBOL],
    rowMode: 'array',
  });
  await writeFile(join(dir, 'expected.json'), JSON.stringify({ rows: stored }));
  const exported = await runCli(['export', '--series', `binance:${SYMBOL}:1m`, '--out', join(dir, 'export.parquet')]);
  expect(exported.code, exported.stderr).toBe(0);

  const child = spawn(process.execPath, [projectPath('bin/candlekeep.js'), 'serve', '--port', '0'], {
    cwd: projectPath(''),
    // Exports go to a bucket of this run on LocalStack's S3 (AWS_ENDPOINT_URL), made by serve.
    env: { ...process.env, CANDLEKEEP_API_KEY: KEY, CANDLEKEEP_EXPORTS_BUCKET: `ck-python-${Date.now().toString(36)}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server = child;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  url = await pollUntil(() => (child.exitCode === null ? /candlekeep API on (http:\/\/\S+)\/v1/.exec(stderr)?.[1] : Promise.reject(new Error(stderr))), {
    timeoutMs: 60_000,
    description: 'candlekeep serve to listen',
  });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
  await db?.end();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the Python client (pytest against candlekeep serve)', () => {
  it('passes every test in python/tests', async () => {
    const python = process.env.CANDLEKEEP_TEST_PYTHON!;
    const readKey = (await createApiKey(db, { name: uniqueName('pytest-read'), scope: 'read', now: Date.now() })).key;
    const r = await runProcess(python, ['-m', 'pytest', 'python/tests', '-q', '-p', 'no:cacheprovider'], {
      CANDLEKEEP_URL: url,
      CANDLEKEEP_API_KEY: KEY,
      CANDLEKEEP_TEST_SERIES: `binance:${SYMBOL}:1m`,
      CANDLEKEEP_TEST_EXPECTED: join(dir, 'expected.json'),
      CANDLEKEEP_TEST_EXPORT: join(dir, 'export.parquet'),
      CANDLEKEEP_TEST_READ_KEY: readKey,
    }, { timeoutMs: 300_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/\b10 passed\b/);
  }, 360_000);
});
