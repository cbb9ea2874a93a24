import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../dev/sample-candles.ts';
import type { CandleBatch, CandleRow } from '../../functions/candles/candle-batch.ts';
import { INTERVAL_MS, type Interval } from '../../functions/candles/intervals.ts';
import { CandleStore, seriesExtents } from '../../functions/store/candles.ts';
import { createPool, type Db, type Queryable } from '../../functions/store/db.ts';
import { migrate, MIGRATIONS_DIR } from '../../functions/store/migrate.ts';
import { findSeriesId } from '../../functions/store/series.ts';
import { emptyDatabase, testPool, uniqueSymbol } from '../support/db.ts';

const T0 = Date.UTC(2024, 2, 4); // a Monday, so weekly buckets align
const pool = testPool(6);
afterAll(() => pool.end());

/** Extent and gaps of a series computed from its candles, as the markets list did before it had a summary. */
async function recomputed(db: Queryable, seriesId: number, step: number) {
  const { rows } = await db.query<{ n: string; first_t: number | null; last_t: number | null; gaps: string; missing: string; largest: string }>(
    `SELECT count(*) AS n, min(t) AS first_t, max(t) AS last_t,
            count(*) FILTER (WHERE d > $2) AS gaps, coalesce(sum(d / $2 - 1) FILTER (WHERE d > $2), 0) AS missing,
            coalesce(max(d / $2 - 1) FILTER (WHERE d > $2), 0) AS largest
     FROM (SELECT (extract(epoch FROM open_time) * 1000)::float8 AS t,
                  (extract(epoch FROM open_time - lag(open_time) OVER (ORDER BY open_time)) * 1000)::bigint AS d
           FROM candles WHERE series_id = $1) c`,
    [seriesId, step],
  );
  const r = rows[0]!;
  return {
    candles: Number(r.n),
    firstOpenTime: r.first_t,
    lastOpenTime: r.last_t,
    gapCount: Number(r.gaps),
    missingCandles: Number(r.missing),
    largestGapCandles: Number(r.largest),
  };
}

const row = (t: number, closed: 0 | 1 = 1): CandleRow => [t, '1.5', '2', '1', '1.75', '10', null, null, closed];

describe('the per-series summary behind GET /v1/markets', () => {
  it.each<Interval>(['1m', '1w'])(
    'matches a full recount after shuffled, overlapping, concurrent and unranged writes and deletions (%s)',
    async (interval) => {
      const symbol = uniqueSymbol();
      const step = INTERVAL_MS[interval];
      const rand = seededRandom(interval === '1m' ? 7 : 11);
      const store = new CandleStore();
      // 600 buckets, about a third never stored, written in chunks of random spans in random order.
      const present = Array.from({ length: 600 }, (_, i) => i).filter(() => rand() > 0.33);
      const chunks: number[][] = [];
      for (let i = 0; i < present.length; ) {
        const n = 1 + Math.floor(rand() * 40);
        chunks.push(present.slice(i, i + n));
        i += Math.max(1, n - Math.floor(rand() * 5)); // chunks overlap a little: redelivered candles
      }
      chunks.sort(() => rand() - 0.5);
      const batch = (idx: number[], ranged: boolean, closed: 0 | 1 = 1): CandleBatch => ({
        v: 1,
        exchange: 'binance',
        symbol,
        interval,
        fetchedAt: T0 + 1_000_000,
        rows: idx.map((i) => row(T0 + i * step, closed)),
        ...(ranged ? { range: [T0 + idx[0]! * step, T0 + (idx[idx.length - 1]! + 1) * step] as [number, number] } : {}),
      });
      // Four writers at a time on the one series, ranged (one transaction) and unranged (plain statements) alike.
      for (let i = 0; i < chunks.length; i += 4) {
        await Promise.all(chunks.slice(i, i + 4).map((c, k) => store.write(pool, [batch(c, k % 2 === 0)])));
      }
      const id = (await findSeriesId(pool, { exchange: 'binance', symbol, interval }))!;
      const [market] = await seriesExtents(pool, { exchange: 'binance', symbol, interval });
      expect(market).toMatchObject(await recomputed(pool, id, step));
      expect(market!.candles).toBe(present.length);

      // Deletions at the edges and inside, then one more write that fills part of a hole.
      const del = (lo: number, hi: number) =>
        pool.query('DELETE FROM candles WHERE series_id = $1 AND open_time >= to_timestamp($2::float8 / 1000) AND open_time < to_timestamp($3::float8 / 1000)', [
          id,
          T0 + lo * step,
          T0 + hi * step,
        ]);
      await del(0, 20);
      await del(250, 300);
      await del(590, 600);
      await store.write(pool, [batch([260, 261, 262, 270], true)]);
      const [after] = await seriesExtents(pool, { exchange: 'binance', symbol, interval });
      expect(after).toMatchObject(await recomputed(pool, id, step));

      await del(0, 600);
      const [empty] = await seriesExtents(pool, { exchange: 'binance', symbol, interval });
      expect(empty).toMatchObject({ candles: 0, firstOpenTime: null, lastOpenTime: null, gapCount: 0, missingCandles: 0, largestGapCandles: 0 });
    },
    60_000,
  );

  it('is filled by migration 0008 from the candles stored before it', async () => {
    const { url } = await emptyDatabase();
    const db: Db = createPool(url, { max: 2 });
    try {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'candlekeep-migrations-'));
      await cp(MIGRATIONS_DIR, dir, { recursive: true });
      for (const name of await readdir(dir)) if (name >= '0008') await rm(path.join(dir, name));
      try {
        await migrate(db, { dir });
      } finally {
        await rm(dir, { recursive: true });
      }
      const ids: [number, number][] = [];
      for (const [interval, count] of [['1m', 500], ['1d', 40], ['1h', 0]] as const) {
        const { rows } = await db.query<{ id: number }>("INSERT INTO series (exchange, symbol, interval) VALUES ('okx', 'ETH/USDT', $1) RETURNING id", [interval]);
        const id = rows[0]!.id;
        ids.push([id, INTERVAL_MS[interval]]);
        await db.query(
          `INSERT INTO candles (series_id, closed, open_time, fetched_at, open, high, low, close, volume)
           SELECT $1, true, to_timestamp(($2::float8 + i * $3::float8) / 1000), now(), 1, 1, 1, 1, 1
           FROM generate_series(0, $4::int - 1) AS i WHERE i % 7 <> 3 AND i NOT BETWEEN 20 AND 26`,
          [id, T0, INTERVAL_MS[interval], count],
        );
      }

      await migrate(db);

      const markets = await seriesExtents(db, {});
      expect(markets).toHaveLength(3);
      for (const [id, step] of ids) {
        const { rows } = await db.query<{ interval: Interval }>('SELECT interval FROM series WHERE id = $1', [id]);
        expect(markets.find((m) => m.interval === rows[0]!.interval)).toMatchObject(await recomputed(db, id, step));
      }
    } finally {
      await db.end();
    }
  });
});
