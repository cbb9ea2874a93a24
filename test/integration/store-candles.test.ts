import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { batch, row, T0 } from '../support/candles.ts';
import { testPool, uniqueSymbol } from '../support/db.ts';

let db: Db;
const store = new CandleStore();
beforeAll(() => {
  db = testPool();
});
afterAll(async () => {
  await db.end();
});

interface Stored {
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  quote_volume: string | null;
  trades: string | null;
  closed: boolean;
  open_time: number;
}

async function stored(symbol: string): Promise<Stored[]> {
  const { rows } = await db.query<Stored>(
    `SELECT c.open::text, c.high::text, c.low::text, c.close::text, c.volume::text, c.quote_volume::text,
            c.trades::text, c.closed, (extract(epoch FROM c.open_time) * 1000)::float8 AS open_time
     FROM candles c JOIN series s ON s.id = c.series_id WHERE s.symbol = $1 ORDER BY c.open_time`,
    [symbol],
  );
  return rows;
}

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
      quote_volume: '0.000000000000000000000000000001',
      trades: '42',
      open_time: T0,
    });
    expect(second).toMatchObject({ quote_volume: null, trades: null, open_time: T0 + 60_000 });
  });

  it('stores far-past and far-future dates within the accepted range', async () => {
    const symbol = uniqueSymbol();
    const early = Date.UTC(2000, 0, 1);
    const late = Date.UTC(2099, 11, 31, 23, 59);
    const b = batch(symbol, [[early, '1', '1', '1', '1', '0', null, null, 1], [late, '2', '2', '2', '2', '0', null, null, 0]]);

    const result = await store.upsert(db, [b]);

    expect(result.written).toBe(2);
    expect((await stored(symbol)).map((r) => r.open_time)).toEqual([early, late]);
  });
});

describe('candle store: finality', () => {
  it('does not overwrite a closed candle with an open one that arrives later', async () => {
    const symbol = uniqueSymbol();
    await store.upsert(db, [batch(symbol, [row(0, { close: '100.75', closed: true })], T0 + 120_000)]);

    const result = await store.upsert(db, [batch(symbol, [row(0, { close: '100.9', closed: false })], T0 + 180_000)]);

    expect(result).toEqual({ received: 1, written: 0, unchanged: 1 });
    expect(await stored(symbol)).toMatchObject([{ close: '100.75', closed: true }]);
  });

  it('overwrites an open candle with its closed version', async () => {
    const symbol = uniqueSymbol();
    await store.upsert(db, [batch(symbol, [row(0, { close: '100.6', closed: false })], T0 + 30_000)]);

    const result = await store.upsert(db, [batch(symbol, [row(0, { close: '100.75', closed: true })], T0 + 61_000)]);

    expect(result.written).toBe(1);
    expect(await stored(symbol)).toMatchObject([{ close: '100.75', closed: true }]);
  });

  it('lets a newer open version replace an older one, but not the reverse', async () => {
    const symbol = uniqueSymbol();
    await store.upsert(db, [batch(symbol, [row(0, { volume: '5', closed: false })], T0 + 20_000)]);
    await store.upsert(db, [batch(symbol, [row(0, { volume: '9', closed: false })], T0 + 40_000)]);

    const late = await store.upsert(db, [batch(symbol, [row(0, { volume: '7', closed: false })], T0 + 30_000)]);

    expect(late.written).toBe(0);
    expect(await stored(symbol)).toMatchObject([{ volume: '9', closed: false }]);
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
    await store.upsert(db, [batch(symbol, [row(0, { high: '101.25', volume: '12.5' })], T0 + 120_000)]);

    const result = await store.upsert(db, [batch(symbol, [row(0, { high: '101.5', volume: '13.75' })], T0 + 86_400_000)]);

    expect(result.written).toBe(1);
    expect(await stored(symbol)).toMatchObject([{ high: '101.5', volume: '13.75', closed: true }]);
    const { rows } = await db.query(
      `SELECT r.old_high::text, r.old_volume::text, (extract(epoch FROM r.open_time) * 1000)::float8 AS open_time
       FROM candle_restatements r JOIN series s ON s.id = r.series_id WHERE s.symbol = $1`,
      [symbol],
    );
    expect(rows).toEqual([{ old_high: '101.25', old_volume: '12.5', open_time: T0 }]);
  });

  it('ignores a stale closed version delivered after a restatement', async () => {
    const symbol = uniqueSymbol();
    await store.upsert(db, [batch(symbol, [row(0, { volume: '13.75' })], T0 + 86_400_000)]);

    const stale = await store.upsert(db, [batch(symbol, [row(0, { volume: '12.5' })], T0 + 120_000)]);

    expect(stale.written).toBe(0);
    expect(await stored(symbol)).toMatchObject([{ volume: '13.75' }]);
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
