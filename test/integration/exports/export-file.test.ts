import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCandles } from '../../../functions/api/candles/read-candles.ts';
import { resolveSource } from '../../../functions/api/candles/source.ts';
import type { CandleOut } from '../../../functions/api/schemas.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { exportToFile } from '../../../functions/exports/export.ts';
import { exportPages } from '../../../functions/exports/pages.ts';
import { planExport } from '../../../functions/exports/plan.ts';
import { exportRequestSchema, type ExportRequestInput } from '../../../functions/exports/request.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import type { Db } from '../../../functions/store/db.ts';
import { batch, T0 } from '../../support/candles.ts';
import { runCli, runPython } from '../../support/cli.ts';
import { testPool, uniqueSymbol, watchSends } from '../../support/db.ts';

/*
 * Exports read back by pandas/pyarrow, polars and DuckDB as they are, every value compared with
 * what PostgreSQL holds (or, for resampled and gap-filled exports, with what GET /v1/candles's
 * readCandles returns for the same query).
 */

const MIN = 60_000;
let db: Db;
let dir: string;
const A = uniqueSymbol();
const B = uniqueSymbol();

/** Values as exact decimals compare: trailing zeros after the point carry no value. */
const norm = (v: unknown) => (typeof v === 'string' && v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v);

function rowsA(): CandleRow[] {
  const rows: CandleRow[] = [];
  for (let i = 0; i < 3000; i++) {
    if (i >= 100 && i < 130) continue; // a hole of 30 minutes
    const open = (68000 + i * 0.01).toFixed(2);
    const close = (68000 + i * 0.01 + 0.5).toFixed(2);
    rows.push([
      T0 + i * MIN,
      open,
      i % 7 === 0 ? `${(68001 + i * 0.01).toFixed(2)}00` : (68001 + i * 0.01).toFixed(4), // scale 4 with trailing zeros
      (67999 + i * 0.01).toFixed(2),
      close,
      i % 11 === 0 ? '0.00001234' : `${i}.5`,
      i % 13 === 0 ? null : (i * 68000.123).toFixed(3),
      i % 17 === 0 ? null : i,
      i === 2999 ? 0 : 1,
    ]);
  }
  return rows;
}

function rowsB(): CandleRow[] {
  return Array.from({ length: 500 }, (_, i): CandleRow => [
    T0 + i * MIN,
    '0.000000012345',
    '0.000000012346',
    '0.000000012300',
    '0.000000012345',
    `123456789012.${String(123456789 + i).padStart(9, '0')}`, // 21 digits: DECIMAL(38, 9)
    '1.5',
    i,
    1,
  ]);
}

async function storedRows(symbols: string[]) {
  const { rows } = await db.query<Record<string, unknown>>(
    `SELECT s.exchange, s.symbol, s.interval, (extract(epoch FROM c.open_time) * 1000)::float8 AS open_time, c.open::text, c.high::text, c.low::text,
            c.close::text, c.volume::text, c.quote_volume::text, c.trades::int8::float8 AS trades, c.closed
     FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = ANY($1) AND s.interval = '1m'
     ORDER BY array_position($1, s.symbol::text), c.open_time`,
    [symbols],
  );
  return rows;
}

async function readBack(path: string, format: 'parquet' | 'csv.gz') {
  return JSON.parse(await runPython('read_export.py', [path, format])) as {
    schema: Record<string, string>;
    columns: string[];
    rows: Record<string, unknown>[];
    pandas: { rows: number; open_time_dtype: string };
    polars: { rows: number; open_time: string; open: string; sum_volume: string };
    duckdb: { rows: number; open_time: string; first: string; sum_volume: string };
  };
}

const request = (r: ExportRequestInput) => exportRequestSchema.parse(r);

beforeAll(async () => {
  db = testPool(2);
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-export-test-'));
  await new CandleStore().write(db, [batch(A, rowsA()), batch(B, rowsB())]);
});
afterAll(async () => {
  await db?.end();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('candlekeep export to Parquet', () => {
  it('writes every stored value exactly, readable by pyarrow, pandas, polars and DuckDB', async () => {
    const path = join(dir, 'two.parquet');
    const progress: number[] = [];
    const result = await exportToFile(db, request({ series: [`binance:${A}:1m`, `binance:${B}:1m`] }), path, {
      pageSize: 700,
      onProgress: (p) => progress.push(p.sourceCandles / p.totalSourceCandles),
    });
    const stored = await storedRows([A, B]);
    expect(result.rows).toBe(stored.length);
    expect(progress.length).toBeGreaterThan(5);
    expect(progress.at(-1)).toBe(1);

    const file = await readBack(path, 'parquet');
    expect(file.schema).toMatchObject({
      exchange: 'dictionary<values=string, indices=int32, ordered=0>',
      symbol: 'dictionary<values=string, indices=int32, ordered=0>',
      open_time: 'timestamp[ms, tz=UTC]',
      open: 'decimal128(18, 12)',
      high: 'decimal128(18, 12)',
      volume: 'decimal128(38, 9)',
      quote_volume: 'decimal128(18, 3)',
      trades: 'int64',
      closed: 'bool',
      gap: 'bool',
    });
    expect(file.rows).toHaveLength(stored.length);
    file.rows.forEach((got, i) => {
      const want = stored[i]!;
      expect(got.tz).toBe('UTC');
      for (const c of ['exchange', 'symbol', 'interval', 'open_time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades', 'closed']) {
        expect(norm(got[c]), `row ${i} ${c}`).toBe(norm(want[c]));
      }
      expect(got.gap).toBe(false);
    });
    expect(file.pandas).toEqual({ rows: stored.length, open_time_dtype: 'datetime64[ms, UTC]' });
    expect(file.polars).toMatchObject({ rows: stored.length, open_time: "Datetime(time_unit='ms', time_zone='UTC')" });
    expect(file.duckdb).toMatchObject({ rows: stored.length, open_time: 'TIMESTAMP WITH TIME ZONE' });
    expect(file.duckdb.first.startsWith(new Date(T0).toISOString().slice(0, 10))).toBe(true);
    expect(norm(file.duckdb.sum_volume)).toBe(norm(file.polars.sum_volume));
  });

  it('resamples and fills gaps exactly as GET /v1/candles does', async () => {
    const path = join(dir, 'hourly.parquet');
    const start = T0 + 7 * MIN;
    const end = T0 + 2900 * MIN;
    const req = request({ markets: { symbols: [A], interval: '15m' }, start, end, gaps: 'null' });
    await exportToFile(db, req, path, { pageSize: 50 });
    const src = await resolveSource(db, 'binance', A, '15m');
    const api: CandleOut[] = [];
    let from: number | undefined;
    do {
      const page = await readCandles(db, src, { start, end, limit: 10_000, from, gaps: 'null' });
      api.push(...page.candles);
      from = page.next ?? undefined;
    } while (from !== undefined);
    const file = await readBack(path, 'parquet');
    expect(file.schema.source_candles).toBe('int32');
    expect(api.some((c) => c.gap)).toBe(true);
    expect(file.rows.map((r) => [r.open_time, norm(r.open), norm(r.high), norm(r.low), norm(r.close), norm(r.volume), norm(r.quote_volume), r.trades, r.closed, r.gap, r.source_candles])).toEqual(
      api.map((c) => [c.openTime, norm(c.open), norm(c.high), norm(c.low), norm(c.close), norm(c.volume), norm(c.quoteVolume), c.trades, c.closed, c.gap, c.sourceCandles]),
    );
  });
});

describe('export pages', () => {
  it("sends the next page's statement to the database before the caller encodes this page, so the two overlap", async () => {
    // Every message the pool's connections send on their WebSocket, when it is sent.
    const pool = testPool(2);
    const writes: { at: number; bytes: string }[] = [];
    watchSends(pool, (data) => writes.push({ at: performance.now(), bytes: Buffer.from(data).toString('latin1') }));
    try {
      const plan = await planExport(pool, request({ series: [`binance:${A}:1m`] }));
      const pages: { start: number; last: number }[] = [];
      for await (const page of exportPages(pool, plan, 500)) {
        if (page.kind !== 'text') throw new Error('expected the bulk path');
        const start = performance.now();
        while (performance.now() - start < 20); // a page's encoding: synchronous, it holds the event loop
        pages.push({ start, last: Number(page.text.trimEnd().split('\n').at(-1)!.split(',')[0]) });
      }
      expect(pages).toHaveLength(6); // 2,970 candles in pages of 500
      for (const p of pages.slice(0, -1)) {
        // The next page is keyed from just after this one's last candle: its Bind carries that time.
        const from = new Date(p.last + 1).toISOString();
        const sent = writes.find((w) => w.bytes.includes(from));
        expect(sent, `the statement of the page from ${from}`).toBeDefined();
        expect(sent!.at).toBeLessThan(p.start);
      }
    } finally {
      await pool.end();
    }
  });
});

describe('candlekeep export to csv.gz', () => {
  it('writes the stored decimal text of a market selection, readable by pandas', async () => {
    const path = join(dir, 'a.csv.gz');
    await exportToFile(db, request({ markets: { exchange: 'binance', symbols: [A], interval: '1m' }, format: 'csv.gz' }), path, { pageSize: 999 });
    const stored = await storedRows([A]);
    const file = await readBack(path, 'csv.gz');
    expect(file.columns).toEqual([
      'exchange', 'symbol', 'interval', 'time', 'open_time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades', 'closed', 'gap',
      'taker_buy_volume', 'taker_buy_quote_volume', 'vwap',
    ]);
    expect(file.rows.map((r) => ({ ...r, open_time: Number(r.open_time), trades: r.trades === null ? null : Number(r.trades), closed: r.closed === 'true' }))).toEqual(
      stored.map((s) => ({ ...s, time: new Date(s.open_time as number).toISOString(), gap: 'false', taker_buy_volume: null, taker_buy_quote_volume: null, vwap: null })),
    );
  });
});

describe('candlekeep export (CLI)', () => {
  it('writes the file with a progress bar on stderr and a summary on stdout', async () => {
    const path = join(dir, 'cli.parquet');
    const r = await runCli(['export', '--series', `binance:${A}:1m`, '--start', new Date(T0).toISOString(), '--out', path, '--json']);
    expect(r.stderr).toContain('export [');
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { rows: number; bytes: number; format: string };
    expect(summary).toMatchObject({ rows: (await storedRows([A])).length, format: 'parquet', bytes: (await stat(path)).size });
  });

  it('refuses a bad request with exit code 2 and an unknown series with 1, leaving no file', async () => {
    const path = join(dir, 'nothing.parquet');
    const bad = await runCli(['export', '--series', 'binance:BTCUSDT:1m', '--out', path]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--series');
    const unknown = await runCli(['export', '--series', 'binance:NOPE/USDT:1m', '--out', path]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no candles are stored for binance NOPE/USDT');
    expect(existsSync(path) || existsSync(`${path}.partial`)).toBe(false);
  });
});
