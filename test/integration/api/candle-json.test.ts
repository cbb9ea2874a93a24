import { beforeAll, describe, expect, it } from 'vitest';
import { readCandles, readCandlesJson, type ReadCandlesOptions } from '../../../functions/api/candles/read-candles.ts';
import { resolveSource } from '../../../functions/api/candles/source.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { uniqueSymbol } from '../../support/db.ts';
import { useApi } from './support.ts';

/*
 * JSON pages of stored candles are written by PostgreSQL, one text a candle (candleJson): each must
 * be exactly what JSON.stringify writes for the candle read as an object, whatever fields it has
 * (optional fields present, partly present or absent, null quote volume and trades, open candles,
 * long decimals), as of a point or not, and the answer around them exactly the page JSON.stringify
 * writes.
 */

const api = useApi();
const MIN = 60_000;
const T0 = Date.UTC(2024, 4, 6);
let symbol: string;
let before: number;

function row(i: number): CandleRow {
  const t = T0 + i * MIN;
  const base: CandleRow = [t, `${100 + i}.5`, `${102 + i}.123456789012345678`, `${99 + i}`, `${101 + i}.10`, `0.${i + 1}00000`, `${1000 + i}.25`, 10 + i, 1];
  if (i % 7 === 3) return [...base.slice(0, 6), null, null, 1] as CandleRow; // no quote volume, no trade count
  if (i % 5 === 1) return [...base, `${i}.75`, `${i * 100}.5`, `${100 + i}.333333`];
  if (i % 5 === 2) return [...base, null, null, `${100 + i}.1`]; // only a VWAP
  return base;
}

beforeAll(async () => {
  symbol = uniqueSymbol();
  const rows = Array.from({ length: 60 }, (_, i) => row(i)).filter((_, i) => i < 40 || i >= 45); // a gap
  rows[rows.length - 1]![8] = 0; // the newest candle still open
  await api.store.upsert(api.pool, [{ v: 1, exchange: 'binance', symbol, interval: '1m', fetchedAt: Date.UTC(2025, 0, 1), rows }]);
  before = Date.now();
  await new Promise((r) => setTimeout(r, 20));
  // Restatements after `before`: values, and the optional fields alone.
  const restated: CandleRow[] = [
    [T0 + 6 * MIN, '1', '2', '0.5', '1.5', '7', '8', 9, 1, '0.1', '0.2', '1.2'],
    [T0 + 11 * MIN, ...(row(11).slice(1, 9) as [string, string, string, string, string, string | null, number | null, 0 | 1]), null, null, null],
    [T0 + 12 * MIN, ...(row(12).slice(1, 9) as [string, string, string, string, string, string | null, number | null, 0 | 1]), '5', null, null],
  ];
  await api.store.upsert(api.pool, [{ v: 1, exchange: 'binance', symbol, interval: '1m', fetchedAt: Date.now(), rows: restated }]);
});

describe('JSON pages of stored candles, written by PostgreSQL', () => {
  it('write each candle exactly as JSON.stringify writes it read as an object, and the same next page', async () => {
    const src = await resolveSource(api.pool, 'binance', symbol, '1m');
    const cases: ReadCandlesOptions[] = [
      { limit: 1000, gaps: 'omit' },
      { limit: 10, gaps: 'omit' },
      { limit: 10, gaps: 'omit', start: T0 + 35 * MIN },
      { limit: 50, gaps: 'omit', start: T0 + 5 * MIN, end: T0 + 20 * MIN },
      { limit: 3, gaps: 'omit', from: T0 + 39 * MIN },
      { limit: 1000, gaps: 'omit', asOf: { at: before } },
      { limit: 5, gaps: 'omit', asOf: { at: before }, start: T0 + 5 * MIN },
      { limit: 1000, gaps: 'null', start: T0 + 35 * MIN },
      { limit: 10, gaps: 'omit', start: T0 + 70 * MIN },
    ];
    let extras = 0;
    for (const opts of cases) {
      const objects = await readCandles(api.pool, src, opts);
      const texts = await readCandlesJson(api.pool, src, opts);
      expect(texts.candles, JSON.stringify(opts)).toEqual(objects.candles.map((c) => JSON.stringify(c)));
      expect(texts.next).toBe(objects.next);
      objects.candles.forEach((c, i) => expect(texts.openTimes(i)).toBe(c.openTime));
      extras += objects.candles.filter((c) => c.vwap !== undefined || c.takerBuyVolume !== undefined).length;
    }
    expect(extras).toBeGreaterThan(0);
    // The shapes the rows were made to have did come back.
    const all = (await readCandlesJson(api.pool, src, { limit: 1000, gaps: 'omit' })).candles.join('\n');
    expect(all).toContain('"quoteVolume":null,"trades":null');
    expect(all).toContain('"vwap":"102.1","gap":false}');
    expect(all).toContain('"high":"104.123456789012345678"');
    expect(all).toContain('"closed":false');
    expect(all).toContain('"takerBuyVolume":"5","gap":false}');
  });

  it('answer the page JSON.stringify writes, and the same page as CSV, page after page', async () => {
    const query = { exchange: 'binance', symbol, interval: '1m', limit: 7 };
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await api.get('/v1/candles', { ...query, ...(cursor ? { cursor } : {}) });
      expect(r.status, r.text).toBe(200);
      expect(r.text).toBe(JSON.stringify(r.body));
      expect(Object.keys(r.body)).toEqual(['exchange', 'symbol', 'interval', 'resampledFrom', 'sourceCandlesPerBucket', 'gaps', 'start', 'end', 'count', 'candles', 'nextCursor']);
      const csv = await api.get('/v1/candles', { ...query, ...(cursor ? { cursor } : {}), format: 'csv' });
      expect(csv.text.trim().split('\n')).toHaveLength(r.body.count + 1);
      expect(csv.headers.get('x-next-cursor') ?? null).toBe(r.body.nextCursor);
      cursor = r.body.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(Math.ceil(55 / 7));
    const asOf = await api.get('/v1/candles', { ...query, asOf: new Date(before).toISOString(), limit: 1000 });
    expect(asOf.text).toBe(JSON.stringify(asOf.body));
    expect(asOf.body.asOf).toBe(new Date(before).toISOString());
    const sixth = (body: { candles: { openTime: number }[] }) => body.candles.find((c) => c.openTime === T0 + 6 * MIN);
    expect(sixth(asOf.body)).toMatchObject({ open: '106.5', takerBuyVolume: '6.75', vwap: '106.333333' });
    expect(sixth((await api.get('/v1/candles', { ...query, limit: 1000 })).body)).toMatchObject({ open: '1', takerBuyVolume: '0.1', vwap: '1.2' });
  });
});
