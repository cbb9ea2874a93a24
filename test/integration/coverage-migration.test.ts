import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../functions/candles/candle.ts';
import { findGaps } from '../../functions/ingest/gaps.ts';
import { loadCoverage } from '../../functions/store/coverage.ts';
import { createPool, type Db } from '../../functions/store/db.ts';
import { migrate, MIGRATIONS_DIR } from '../../functions/store/migrate.ts';
import { emptyDatabase } from '../support/db.ts';
import { coverageHoldings } from '../support/coverage.ts';

const MIN = 60_000;
const WEEK = 7 * 24 * 60 * MIN;
const T0 = Date.UTC(2024, 2, 4); // a Monday, so weekly buckets align
const pools: Db[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end()));
});

/**
 * The migrations a database in use before this fix had applied: 0001 to 0004, plus the dead-letter
 * ledger (0006) and the markets and their retention (0010, 0013), which have nothing to do with
 * coverage but are read by the gaps code that shows the ledger's state before and after.
 */
async function migrationsBeforeTheFix(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'candlekeep-migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  const readByGaps = ['0006_dead_letters', '0010_markets', '0013_retention'];
  for (const name of await readdir(dir)) if (name >= '0005' && !readByGaps.some((k) => name.startsWith(k))) await rm(path.join(dir, name));
  return dir;
}

async function seedSeries(db: Db, s: SeriesKey, stepMs: number, indexes: readonly number[]): Promise<number> {
  const { rows } = await db.query<{ id: number }>('INSERT INTO series (exchange, symbol, interval) VALUES ($1, $2, $3) RETURNING id', [
    s.exchange,
    s.symbol,
    s.interval,
  ]);
  const id = rows[0]!.id;
  await db.query(
    `INSERT INTO candles (series_id, closed, open_time, fetched_at, open, high, low, close, volume)
     SELECT $1, true, to_timestamp(($2::float8 + i * $3::float8) / 1000), now(), 100, 101, 99, 100.5, 2
     FROM unnest($4::int[]) AS i`,
    [id, T0, stepMs, `{${indexes.join(',')}}`],
  );
  return id;
}

async function seedCoverage(db: Db, seriesId: number, start: number, end: number, candles: number): Promise<void> {
  await db.query(
    'INSERT INTO coverage (series_id, range_start, range_end, candles) VALUES ($1, to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000), $4)',
    [seriesId, start, end, candles],
  );
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('0005: coverage rows that claim more than is stored', () => {
  it('are split into their stored runs, so the lost buckets read as missing; honest rows stay', async () => {
    const { url } = await emptyDatabase();
    const db = createPool(url, { max: 2 });
    pools.push(db);
    const dir = await migrationsBeforeTheFix();
    try {
      await migrate(db, { dir });
    } finally {
      await rm(dir, { recursive: true });
    }

    // Prepare: a wrong ledger as the old pull and backfill left it.
    const minutes: SeriesKey = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1m' };
    // [0, 100): fetched 100, but the batch holding 40..49 and the one holding 70 were lost.
    // [100, 200): fetched 95, stored 95; 150..154 are a quiet spell the exchange confirmed empty.
    // [200, 260): fetched 60, none stored.
    const stored = [...range(0, 40), ...range(50, 70), ...range(71, 100), ...range(100, 150), ...range(155, 200)];
    const m = await seedSeries(db, minutes, MIN, stored);
    await seedCoverage(db, m, T0, T0 + 100 * MIN, 100);
    await seedCoverage(db, m, T0 + 100 * MIN, T0 + 200 * MIN, 95);
    await seedCoverage(db, m, T0 + 200 * MIN, T0 + 260 * MIN, 60);
    const weeks: SeriesKey = { exchange: 'binance', symbol: 'ETH/USDT', interval: '1w' };
    const w = await seedSeries(db, weeks, WEEK, [0, 1, 3]);
    await seedCoverage(db, w, T0, T0 + 4 * WEEK, 4);
    const now = T0 + 260 * MIN + 30_000;
    const before = await findGaps(db, minutes, { now });
    expect(before.holes.map((h) => h.kind)).toEqual(['empty', 'empty', 'empty', 'empty']);

    // Act
    const result = await migrate(db);

    // Assess
    expect(result.applied[0]).toBe('0005_coverage_claims_what_is_stored.sql');
    expect(await loadCoverage(db, m, { start: T0, end: now })).toEqual([
      { start: T0, end: T0 + 40 * MIN, candles: 40 },
      { start: T0 + 50 * MIN, end: T0 + 70 * MIN, candles: 20 },
      { start: T0 + 71 * MIN, end: T0 + 100 * MIN, candles: 29 },
      { start: T0 + 100 * MIN, end: T0 + 200 * MIN, candles: 95 },
    ]);
    expect(await loadCoverage(db, w, { start: T0, end: T0 + 4 * WEEK })).toEqual([
      { start: T0, end: T0 + 2 * WEEK, candles: 2 },
      { start: T0 + 3 * WEEK, end: T0 + 4 * WEEK, candles: 1 },
    ]);
    const after = await findGaps(db, minutes, { now });
    expect(after.holes.map((h) => [(h.start - T0) / MIN, (h.end - T0) / MIN, h.kind])).toEqual([
      [40, 50, 'missing'],
      [70, 71, 'missing'],
      [150, 155, 'empty'],
      [200, 260, 'missing'],
    ]);
    for (const row of [...(await coverageHoldings(db, m)), ...(await coverageHoldings(db, w))]) expect(row.stored).toBe(row.candles);
  });
});
