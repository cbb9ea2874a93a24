import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CandleRow } from '../../functions/candles/candle-batch.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import { createPool, type Db } from '../../functions/store/db.ts';
import { migrate, MIGRATIONS_DIR } from '../../functions/store/migrate.ts';
import { candlePartitions, settleDefaultPartition } from '../../functions/store/partitions.ts';
import { batch } from '../support/candles.ts';
import { emptyDatabase, testPool, uniqueSymbol } from '../support/db.ts';
import { readStored } from '../support/stored-candles.ts';

let db: Db;
beforeAll(() => {
  db = testPool(4);
});
afterAll(async () => {
  await db.end();
});
const scratchPools: Db[] = [];
afterEach(async () => {
  await Promise.all(scratchPools.splice(0).map((p) => p.end()));
});

const MIN = 60_000;
/** A closed 1m candle at `t`. */
const at = (t: number, close = '1.5'): CandleRow => [t, '1', '2', '0.5', close, '10', null, 7, 1];
const minutes = (from: number, n: number) => Array.from({ length: n }, (_, i) => at(from + i * MIN));

/** Rows per partition of candles, the default one included. */
async function rowsPerPartition(pool: Db, symbol?: string): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ p: string; n: number }>(
    `SELECT c.tableoid::regclass::text AS p, count(*)::int AS n FROM candles c
     WHERE $1::text IS NULL OR c.series_id = (SELECT id FROM series WHERE symbol = $1)
     GROUP BY 1 ORDER BY 1`,
    [symbol ?? null],
  );
  return Object.fromEntries(rows.map((r) => [r.p, r.n]));
}

describe('candles partitions: created as data needs them', () => {
  it('a fresh database has only the DEFAULT partition until candles arrive', async () => {
    const { url } = await emptyDatabase();
    const pool = createPool(url, { max: 1 });
    scratchPools.push(pool);
    await migrate(pool);
    expect(await candlePartitions(pool)).toEqual([{ name: 'candles_default', bound: 'DEFAULT' }]);
  });

  it('the writer adds the partition of each year a batch spans, and its rows land there', async () => {
    const symbol = uniqueSymbol();
    // The last minutes of 2087 and the first of 2088: one message spanning two new years.
    const rows = minutes(Date.UTC(2087, 11, 31, 23, 58), 4);
    const result = await new CandleStore().write(db, [{ ...batch(symbol, rows), range: [rows[0]![0], rows[3]![0] + MIN] }]);

    expect(result.written).toBe(4);
    expect(await rowsPerPartition(db, symbol)).toEqual({ candles_y2087: 2, candles_y2088: 2 });
    const names = (await candlePartitions(db)).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['candles_y2087', 'candles_y2088', 'candles_default']));
    const bound = (await candlePartitions(db)).find((p) => p.name === 'candles_y2088')!.bound;
    expect(bound).toMatch(/FROM \('2088-01-01 00:00:00\+00'\) TO \('2089-01-01 00:00:00\+00'\)/);
  });

  it('concurrent writers of the same new year all store their rows, and the year gets one partition', async () => {
    const symbols = Array.from({ length: 6 }, () => uniqueSymbol());
    const t = Date.UTC(2086, 5, 1);
    // Six stores, as six writer containers: none has seen 2086, all add it at once.
    const results = await Promise.all(symbols.map((s) => new CandleStore().upsert(db, [batch(s, minutes(t, 50))])));

    expect(results.map((r) => r.written)).toEqual(symbols.map(() => 50));
    for (const s of symbols) expect(await rowsPerPartition(db, s)).toEqual({ candles_y2086: 50 });
    expect((await candlePartitions(db)).filter((p) => p.name === 'candles_y2086')).toHaveLength(1);
  });

  it('a row whose year has no partition lands in DEFAULT, loses nothing, and maintenance moves it into its year', async () => {
    const symbol = uniqueSymbol();
    const store = new CandleStore();
    await store.upsert(db, [batch(symbol, [at(Date.UTC(2085, 0, 1))])]); // gives the series its id
    const { rows } = await db.query<{ id: number }>('SELECT id FROM series WHERE symbol = $1', [symbol]);
    // Written as an older writer (or another tool) would, without adding partitions first.
    await db.query(
      `INSERT INTO candles (series_id, closed, open_time, fetched_at, open, high, low, close, volume)
       VALUES ($1, true, '2084-03-01T00:00:00Z', now(), 1, 2, 0.5, 1.5, 10), ($1, true, '2084-03-01T00:01:00Z', now(), 1, 2, 0.5, 1.25, 10)`,
      [rows[0]!.id],
    );
    expect(await rowsPerPartition(db, symbol)).toEqual({ candles_default: 2, candles_y2085: 1 });

    expect(await settleDefaultPartition(db)).toContain(2084);

    expect(await rowsPerPartition(db, symbol)).toEqual({ candles_y2084: 2, candles_y2085: 1 });
    const stored = await readStored(db, { exchange: 'binance', symbol, interval: '1m' });
    expect(stored.map((c) => [c.openTime, c.close])).toEqual([
      [Date.UTC(2084, 2, 1), '1.5'],
      [Date.UTC(2084, 2, 1, 0, 1), '1.25'],
      [Date.UTC(2085, 0, 1), '1.5'],
    ]);
    // Nothing left to move: a second run creates nothing.
    expect(await settleDefaultPartition(db)).toEqual([]);
  });

  it('a year partition keeps the primary key and the restatement trigger of candles', async () => {
    const symbol = uniqueSymbol();
    const t = Date.UTC(2083, 0, 1);
    const store = new CandleStore();
    await store.upsert(db, [batch(symbol, [at(t, '1.5')], t + MIN)]);
    await store.upsert(db, [batch(symbol, [at(t, '1.75')], t + 2 * MIN)]);
    const { rows } = await db.query<{ old_close: string }>(
      'SELECT r.old_close FROM candle_restatements r JOIN series s ON s.id = r.series_id WHERE s.symbol = $1',
      [symbol],
    );
    expect(rows).toEqual([{ old_close: '1.5' }]);
    await expect(
      db.query(
        `INSERT INTO candles (series_id, closed, open_time, fetched_at, open, high, low, close, volume)
         SELECT id, true, '2083-01-01T00:00:00Z', now(), 1, 1, 1, 1, 1 FROM series WHERE symbol = $1`,
        [symbol],
      ),
    ).rejects.toMatchObject({ code: '23505' });
  });

  it('every connection runs with jit off, whatever the server default', async () => {
    const { rows } = await db.query<{ jit: string }>('SELECT current_setting($1) AS jit', ['jit']);
    expect(rows[0]?.jit).toBe('off');
  });

  it('a window read plans only the partition it reads', async () => {
    const symbol = uniqueSymbol();
    await new CandleStore().upsert(db, [batch(symbol, minutes(Date.UTC(2082, 1, 1), 10))]);
    const { rows } = await db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT * FROM candles WHERE series_id = (SELECT id FROM series WHERE symbol = $1)
       AND open_time >= $2::timestamptz AND open_time < $3::timestamptz ORDER BY open_time LIMIT 1001`,
      [symbol, '2082-02-01T00:00:00.000Z', '2082-02-01T16:41:00.000Z'],
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect([...new Set(plan.match(/\bcandles_(y\d{4}|default)\b/g))]).toEqual(['candles_y2082']);
    expect(plan).not.toContain('Subplans Removed');
  });
});

describe('0007: existing databases', () => {
  it('keeps the populated yearly partitions and every row, drops the empty ones and adds DEFAULT', async () => {
    const { url } = await emptyDatabase();
    const pool = createPool(url, { max: 1 });
    scratchPools.push(pool);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'candlekeep-migrations-'));
    try {
      await cp(MIGRATIONS_DIR, dir, { recursive: true });
      for (const name of await readdir(dir)) if (name >= '0007') await rm(path.join(dir, name));
      await migrate(pool, { dir });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(await candlePartitions(pool)).toHaveLength(100);
    await pool.query("INSERT INTO series (exchange, symbol, interval) VALUES ('binance', 'OLD/USDT', '1m')");
    // Data in several years, the first and last accepted ones among them.
    await pool.query(
      `INSERT INTO candles (series_id, closed, open_time, fetched_at, trades, open, high, low, close, volume, quote_volume)
       SELECT 1, true, t, t + interval '1 minute', 3, 100 + i, 101 + i, 99 + i, 100.5 + i, 2, NULL
       FROM unnest(ARRAY['2000-01-01T00:00:00Z', '2019-12-31T23:59:00Z', '2020-01-01T00:00:00Z', '2020-07-01T00:00:00Z',
                         '2024-02-29T12:00:00Z', '2099-12-31T23:59:00Z']::timestamptz[]) WITH ORDINALITY AS u(t, i)`,
    );
    const fingerprint = `SELECT count(*)::int AS n, md5(string_agg(concat_ws('|', series_id, closed, open_time, fetched_at, trades, open, high,
                           low, close, volume, quote_volume), ',' ORDER BY series_id, open_time)) AS h FROM candles`;
    const before = (await pool.query(fingerprint)).rows[0];

    const result = await migrate(pool);

    // 0007 first; later migrations follow it.
    expect(result.applied[0]).toBe('0007_partitions_on_demand.sql');
    expect((await pool.query(fingerprint)).rows[0]).toEqual(before);
    expect((await candlePartitions(pool)).map((p) => p.name)).toEqual([
      'candles_default',
      'candles_y2000',
      'candles_y2019',
      'candles_y2020',
      'candles_y2024',
      'candles_y2099',
    ]);
    expect(await rowsPerPartition(pool)).toEqual({ candles_y2000: 1, candles_y2019: 1, candles_y2020: 2, candles_y2024: 1, candles_y2099: 1 });
    // The writer carries on: a year that lost its empty partition gets it back with its first candle.
    const store = new CandleStore();
    await store.upsert(pool, [batch('OLD/USDT', [at(Date.UTC(2021, 5, 1))])]);
    expect((await rowsPerPartition(pool))['candles_y2021']).toBe(1);
  });
});
