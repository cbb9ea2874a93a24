import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleStore, type StoredCandle, type UpsertResult } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { batch, row, T0 } from '../support/candles.ts';
import { testPool, uniqueSymbol } from '../support/db.ts';
import { readStored } from '../support/stored-candles.ts';

let db: Db;
const store = new CandleStore();
beforeAll(() => {
  db = testPool();
});
afterAll(async () => {
  await db.end();
});

/** The stored rows of a test's series (`batch` writes binance 1m). */
const stored = (symbol: string) => readStored(db, { exchange: 'binance', symbol, interval: '1m' });

/** Physical identity of each row version: a rewrite creates a new version (new ctid and xmin). */
async function versions(symbol: string): Promise<string[]> {
  const { rows } = await db.query<{ v: string }>(
    `SELECT c.ctid::text || '/' || c.xmin::text AS v
     FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1 ORDER BY c.open_time`,
    [symbol],
  );
  return rows.map((r) => r.v);
}

describe('candle store: exact values', () => {
  it('returns decimal text byte-identical to what was written', async () => {
    const symbol = uniqueSymbol();
    const thirtyDigits = '123456789012345678901234567890';

    await store.upsert(db, [
      batch(symbol, [
        row(0, { open: '68123.45000000', high: '68123.45000000', low: '0.00000001234', close: '0.00000001234', volume: thirtyDigits, quoteVolume: '0.000000000000000000000000000001' }),
        row(1, { quoteVolume: null, trades: null }),
      ]),
    ]);

    const [first, second] = await stored(symbol);
    expect(first).toMatchObject({
      open: '68123.45000000',
      high: '68123.45000000',
      low: '0.00000001234',
      close: '0.00000001234',
      volume: thirtyDigits,
      quoteVolume: '0.000000000000000000000000000001',
      trades: 42,
      openTime: T0,
    });
    expect(second).toMatchObject({ quoteVolume: null, trades: null, openTime: T0 + 60_000 });
  });

  it('stores far-past and far-future dates within the accepted range', async () => {
    const symbol = uniqueSymbol();
    const early = Date.UTC(2000, 0, 1);
    const late = Date.UTC(2099, 11, 31, 23, 59);
    const b = batch(symbol, [[early, '1', '1', '1', '1', '0', null, null, 1], [late, '2', '2', '2', '2', '0', null, null, 0]]);

    const result = await store.upsert(db, [b]);

    expect(result.written).toBe(2);
    expect((await stored(symbol)).map((r) => r.openTime)).toEqual([early, late]);
  });
});

/** One version of the candle at T0: its values, and when it was fetched. */
type Version = [values: Parameters<typeof row>[1], fetchedAt: number];

/** Writes the versions in turn, each in its own batch as separate pulls would; returns the last write's result. */
async function writeInTurn(symbol: string, versions: readonly Version[]): Promise<UpsertResult> {
  let result: UpsertResult = { received: 0, written: 0, unchanged: 0 };
  for (const [values, fetchedAt] of versions) result = await store.upsert(db, [batch(symbol, [row(0, values)], fetchedAt)]);
  return result;
}

describe('candle store: finality', () => {
  const cases: { name: string; versions: Version[]; written: number; kept: Partial<StoredCandle> }[] = [
    {
      name: 'does not overwrite a closed candle with an open one that arrives later',
      versions: [[{ close: '100.75', closed: true }, T0 + 120_000], [{ close: '100.9', closed: false }, T0 + 180_000]],
      written: 0,
      kept: { close: '100.75', closed: true },
    },
    {
      name: 'overwrites an open candle with its closed version',
      versions: [[{ close: '100.6', closed: false }, T0 + 30_000], [{ close: '100.75', closed: true }, T0 + 61_000]],
      written: 1,
      kept: { close: '100.75', closed: true },
    },
    {
      name: 'lets a newer open version replace an older one, but not the reverse',
      versions: [
        [{ volume: '5', closed: false }, T0 + 20_000],
        [{ volume: '9', closed: false }, T0 + 40_000],
        [{ volume: '7', closed: false }, T0 + 30_000],
      ],
      written: 0,
      kept: { volume: '9', closed: false },
    },
    {
      name: 'ignores a stale closed version delivered after a restatement',
      versions: [[{ volume: '13.75' }, T0 + 86_400_000], [{ volume: '12.5' }, T0 + 120_000]],
      written: 0,
      kept: { volume: '13.75' },
    },
  ];
  it.each(cases)('$name', async ({ versions, written, kept }) => {
    const symbol = uniqueSymbol();

    const last = await writeInTurn(symbol, versions);

    expect(last).toEqual({ received: 1, written, unchanged: 1 - written });
    expect(await stored(symbol)).toMatchObject([kept]);
  });

  it('writes nothing when the same batch is delivered three times', async () => {
    const symbol = uniqueSymbol();
    const b = batch(symbol, [row(0), row(1, { closed: false }), row(2, { trades: null, quoteVolume: null })]);

    const first = await store.upsert(db, [b]);
    const rowsAfterFirst = await stored(symbol);
    const versionsAfterFirst = await versions(symbol);
    const second = await store.upsert(db, [b]);
    const third = await store.upsert(db, [b]);

    expect(first).toEqual({ received: 3, written: 3, unchanged: 0 });
    expect(second).toEqual({ received: 3, written: 0, unchanged: 3 });
    expect(third).toEqual({ received: 3, written: 0, unchanged: 3 });
    expect(await stored(symbol)).toEqual(rowsAfterFirst);
    // ctid/xmin unchanged: no row was rewritten, so no new row version and no dead tuple.
    expect(await versions(symbol)).toEqual(versionsAfterFirst);
  });

  it('records a restated closed candle and keeps the newest version', async () => {
    const symbol = uniqueSymbol();

    const restated = await writeInTurn(symbol, [[{ high: '101.25', volume: '12.5' }, T0 + 120_000], [{ high: '101.5', volume: '13.75' }, T0 + 86_400_000]]);

    expect(restated.written).toBe(1);
    expect(await stored(symbol)).toMatchObject([{ high: '101.5', volume: '13.75', closed: true }]);
    const { rows } = await db.query(
      `SELECT r.old_high::text, r.old_volume::text, (extract(epoch FROM r.open_time) * 1000)::float8 AS open_time
       FROM candle_restatements r JOIN series s ON s.id = r.series_id WHERE s.symbol = $1`,
      [symbol],
    );
    expect(rows).toEqual([{ old_high: '101.25', old_volume: '12.5', open_time: T0 }]);
  });

  it('picks the final version when one batch holds several versions of a candle, in any order', async () => {
    const symbol = uniqueSymbol();
    const closed = batch(symbol, [row(0, { close: '100.75', closed: true })], T0 + 61_000);
    const open = batch(symbol, [row(0, { close: '100.1', closed: false })], T0 + 90_000);

    const result = await store.upsert(db, [closed, open]);

    expect(result).toEqual({ received: 1, written: 1, unchanged: 0 });
    expect(await stored(symbol)).toMatchObject([{ close: '100.75', closed: true }]);
  });

  it('keeps series apart and gives each a stable id', async () => {
    const a = uniqueSymbol();
    const b = uniqueSymbol();
    await store.upsert(db, [batch(a, [row(0)]), batch(b, [row(0), row(1)])]);
    await new CandleStore().upsert(db, [batch(a, [row(1)])]); // a fresh container resolves the same id

    expect((await stored(a)).length).toBe(2);
    expect((await stored(b)).length).toBe(2);
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM series WHERE symbol = ANY($1)', [[a, b]]);
    expect(rows[0]?.n).toBe(2);
  });
});
