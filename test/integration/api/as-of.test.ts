import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateBacktestInput } from '../../../functions/backtests/record.ts';
import { checkRunData } from '../../../functions/backtests/reproduce.ts';
import type { Fingerprint } from '../../../functions/backtests/fingerprint.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { runCli, runPython } from '../../support/cli.ts';
import { uniqueSymbol } from '../../support/db.ts';
import { load, parseCsv, useApi, walk } from './support.ts';

/*
 * Point-in-time reads and reproducible runs: a run is recorded, then candles in its range are
 * restated and a gap is filled. Reads as of the run give back what it saw, exactly; the current
 * data's fingerprint no longer matches the run's, the as-of one does; `backtests reproduce` writes
 * those candles (read back with pyarrow) and a re-run is recorded with a reference to the original.
 */

const api = useApi();
const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2024, 2, 1);
let symbol: string;
let bars: StoredCandle[];
let runId: string;
let runAt: string;
let dir: string;
/** What the API answered before anything was restated. */
let before1m: unknown[];
let before1h: unknown[];

const toRow = (b: StoredCandle, over: Partial<StoredCandle> = {}): CandleRow => {
  const c = { ...b, ...over };
  return [c.openTime, c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.trades, c.closed ? 1 : 0];
};

const readAll = async (query: Record<string, string | number>) => {
  const out: { openTime: number; gap: boolean }[] = [];
  let cursor: string | undefined;
  do {
    const r = await api.get('/v1/candles', { exchange: 'binance', symbol, start: T0, end: T0 + 2 * HOUR, limit: 50, ...query, ...(cursor ? { cursor } : {}) });
    expect(r.status, r.text).toBe(200);
    out.push(...r.body.candles);
    cursor = r.body.nextCursor ?? undefined;
  } while (cursor);
  return out;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-asof-'));
  symbol = uniqueSymbol();
  // Two hours of 1m candles with minutes 50-54 missing, fetched (stored) in the past.
  bars = walk(T0, 120, MIN, 5, (i) => i >= 50 && i < 55);
  await load(api, symbol, '1m', bars, Date.UTC(2025, 0, 1));
  before1m = await readAll({ interval: '1m' });
  before1h = await readAll({ interval: '1h' });
  const body: CreateBacktestInput = {
    strategy: 'breakout',
    strategyVersion: '2.0.0',
    parameters: { lookback: 20 },
    instruments: [
      { exchange: 'binance', symbol, interval: '1m' },
      { exchange: 'binance', symbol, interval: '1h' },
    ],
    start: T0,
    end: T0 + 2 * HOUR,
    metrics: { totalReturn: 0.05 },
    tags: ['asof'],
  };
  const r = await api.call('POST', '/v1/backtests', { body });
  expect(r.status, r.text).toBe(201);
  runId = r.body.id;
  runAt = r.body.createdAt;
  // After the run: the exchange restates three closed candles (one only in its trade count) and a
  // backfill fills the gap, both fetched now.
  const now = Date.now();
  const restated = [bars[10]!, bars[11]!, bars[70]!];
  const rows = [
    toRow(restated[0]!, { close: restated[0]!.high, volume: '999.5' }),
    toRow(restated[1]!, { open: restated[1]!.low }),
    toRow(restated[2]!, { trades: (restated[2]!.trades ?? 0) + 1 }),
  ];
  for (let i = 50; i < 55; i++) rows.push([T0 + i * MIN, '100', '101', '99', '100', '1', '100', 1, 1]);
  await api.store.upsert(api.pool, [{ v: 1, exchange: 'binance', symbol, interval: '1m', fetchedAt: now, rows }]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('GET /v1/candles?asOf=', () => {
  it('returns the values as stored at that moment, not the restated ones, and leaves out candles stored since', async () => {
    const now = await readAll({ interval: '1m' });
    expect(now).toHaveLength(120);
    expect(now).not.toEqual(before1m);
    const asOf = await readAll({ interval: '1m', asOf: runAt });
    expect(asOf).toEqual(before1m);
    expect(asOf).toHaveLength(115);
  });

  it('builds resampled buckets from the source as of the moment, not from the current rollups', async () => {
    const now = await readAll({ interval: '1h' });
    expect(now).not.toEqual(before1h);
    expect(await readAll({ interval: '1h', asOf: runAt })).toEqual(before1h);
    // Gap filling applies to the as-of candles too: the five missing minutes are gaps again.
    const filled = await readAll({ interval: '1m', asOf: runAt, gaps: 'null' });
    expect(filled.filter((c) => c.gap).map((c) => c.openTime)).toEqual([50, 51, 52, 53, 54].map((i) => T0 + i * MIN));
  });

  it('says the point in the page and the CSV headers, and is empty before anything was stored', async () => {
    const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: runAt, limit: 20 });
    expect(r.body.asOf).toBe(runAt);
    const csv = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: runAt, limit: 20, format: 'csv' });
    expect(csv.headers.get('x-as-of')).toBe(runAt);
    expect(parseCsv(csv.text)[10]!.close).toBe(bars[10]!.close);
    const early = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: '2024-12-31T00:00:00Z' });
    expect(early.body.candles).toEqual([]);
    const current = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 20 });
    expect(current.body.asOf).toBeUndefined();
  });

  it('binds a cursor to its asOf: the next page without it (or with another) is refused', async () => {
    const first = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: runAt, limit: 5 });
    const cursor = first.body.nextCursor as string;
    const without = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 5, cursor });
    expect(without.status).toBe(400);
    expect(without.body.detail).toContain('cursor belongs to a different query');
    const other = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 5, cursor, asOf: Date.now() });
    expect(other.status).toBe(400);
    const bad = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: 'yesterday' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('asOf');
  });
});

describe('reproducing a run', () => {
  it("matches the run's fingerprint over the candles as of the run, while the current data's does not", async () => {
    const { rows } = await api.pool.query<{ fingerprint: Fingerprint }>('SELECT fingerprint FROM backtests WHERE id = $1', [runId]);
    const check = await checkRunData(api.pool, rows[0]!.fingerprint);
    expect(check.matches).toBe(true);
    expect(check.asOfRun).toBe(check.stored);
    expect(check.current).not.toBe(check.stored);
    expect(check).toMatchObject({ candles: 230, currentCandles: 240, mismatches: [] });
  });

  it('`backtests reproduce` writes the configuration and the exact input candles, and a re-run records reproducedFrom', async () => {
    const out = join(dir, 'rerun');
    const r = await runCli(['backtests', 'reproduce', runId, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { matches: boolean; rows: number; stored: string; current: string; asOfRun: string };
    expect(summary).toMatchObject({ matches: true, rows: 115 });
    expect(summary.current).not.toBe(summary.stored);

    const file = JSON.parse(await runPython('read_export.py', [join(out, 'candles.parquet'), 'parquet'])) as { rows: Record<string, unknown>[] };
    const norm = (v: unknown) => (typeof v === 'string' && v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v);
    expect(file.rows.map((x) => [x.open_time, x.open, x.high, x.low, x.close, x.volume, x.quote_volume, x.trades, x.closed].map(norm))).toEqual(
      bars.map((b) => [b.openTime, b.open, b.high, b.low, b.close, b.volume, b.quoteVolume, b.trades, b.closed].map(norm)),
    );

    const config = JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as { run: { id: string }; fingerprint: { value: string } };
    expect(config.run.id).toBe(runId);
    expect(config.fingerprint.value).toBe(summary.stored);
    const body = JSON.parse(await readFile(join(out, 'rerun.json'), 'utf8')) as CreateBacktestInput;
    expect(body).toMatchObject({ strategy: 'breakout', parameters: { lookback: 20 }, reproducedFrom: runId });
    const rerun = await api.call('POST', '/v1/backtests', { body: { ...body, metrics: { totalReturn: 0.05 } } });
    expect(rerun.status, rerun.text).toBe(201);
    expect(rerun.body.reproducedFrom).toBe(runId);
    const got = await api.get(`/v1/backtests/${rerun.body.id}`);
    expect(got.body.reproducedFrom).toBe(runId);
    expect((await api.get(`/v1/backtests/${runId}`)).body.reproducedFrom).toBeNull();
    // The original's data changed since it ran; the re-run's, recorded over today's data, did not.
    const cmp = await api.get('/v1/backtests/compare', { ids: [runId, rerun.body.id].join(',') });
    expect(cmp.status, cmp.text).toBe(200);
    expect(cmp.body.data.map((d: { changed: boolean }) => d.changed)).toEqual([true, false]);
  });

  it('refuses a re-run of an unknown run, and reproduce of an unknown or malformed id, leaving no file', async () => {
    const missing = '0190a6c2-7f7e-7d4e-9b1a-3c5d7e9f1a2b';
    const r = await api.call('POST', '/v1/backtests', {
      body: { strategy: 's', strategyVersion: '1', parameters: {}, instruments: [{ exchange: 'binance', symbol, interval: '1m' }], start: T0, end: T0 + HOUR, metrics: { totalReturn: 0 }, reproducedFrom: missing },
    });
    expect(r.status).toBe(422);
    expect(r.body.detail).toContain(`no stored run ${missing}`);
    const notUuid = await api.call('POST', '/v1/backtests', {
      body: { strategy: 's', strategyVersion: '1', parameters: {}, instruments: [{ exchange: 'binance', symbol, interval: '1m' }], start: T0, end: T0 + HOUR, metrics: { totalReturn: 0 }, reproducedFrom: 'abc' },
    });
    expect(notUuid.status).toBe(422);
    expect(notUuid.text).toContain('reproducedFrom');

    const out = join(dir, 'none');
    const unknown = await runCli(['backtests', 'reproduce', missing, '--out', out]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(`no backtest run ${missing}`);
    const bad = await runCli(['backtests', 'reproduce', 'not-a-run', '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('not a run id');
    expect(existsSync(out)).toBe(false);
  });
});
