import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCandleBatches, parseCandleBatch, type BaseCandleRow, type CandleBatch, type CandleRow } from '../../../functions/candles/candle-batch.ts';
import type { Candle, Exchange } from '../../../functions/candles/candle.ts';
import type { Interval } from '../../../functions/candles/intervals.ts';
import { binance } from '../../../functions/exchanges/binance.ts';
import { bybit } from '../../../functions/exchanges/bybit.ts';
import { kraken } from '../../../functions/exchanges/kraken.ts';
import { okx } from '../../../functions/exchanges/okx.ts';
import type { ExchangeAdapter } from '../../../functions/exchanges/types.ts';
import { exportToFile } from '../../../functions/exports/export.ts';
import { exportRequestSchema } from '../../../functions/exports/request.ts';
import { runPython } from '../../support/cli.ts';
import { uniqueSymbol } from '../../support/db.ts';
import { answer, fixture } from '../../unit/exchanges/canned.ts';
import { parseCsv, useApi } from './support.ts';

/*
 * The optional fields the exchanges send (Binance's taker-buy base and quote volume, Kraken's VWAP,
 * OKX's and Bybit's quote volume), from each adapter's real sample body through CandleBatch and the
 * writer to the API's JSON and CSV and to Parquet and csv.gz files read back with pyarrow and pandas.
 * Old 9-field messages stay valid, and a restatement of an optional field alone is kept like any other.
 */

const api = useApi();
let dir: string;

interface Sample {
  exchange: Exchange;
  adapter: ExchangeAdapter;
  file: string;
  baseUrl: string;
  req: { symbol: string; interval: Interval; from: number; to: number; now: number };
  symbol: string;
  candles: Candle[];
}

const samples: Sample[] = [
  { exchange: 'binance', adapter: binance, file: 'binance-klines.docs.json', baseUrl: 'https://api.binance.com',
    req: { symbol: 'ETH/BTC', interval: '1w', from: 1499040000000, to: 1499040000000 + 30 * 86_400_000, now: 1499644800000 }, symbol: '', candles: [] },
  { exchange: 'kraken', adapter: kraken, file: 'kraken-ohlc.docs.json', baseUrl: 'https://api.kraken.com',
    req: { symbol: 'BTC/USD', interval: '1m', from: 1688671200000, to: 1688671200000 + 3_600_000, now: 1688671400000 }, symbol: '', candles: [] },
  { exchange: 'okx', adapter: okx, file: 'okx-candles.docs-aligned.json', baseUrl: 'https://www.okx.com',
    req: { symbol: 'BTC/USDT', interval: '1m', from: 0, to: 4102444800000, now: 4102444800000 }, symbol: '', candles: [] },
  { exchange: 'bybit', adapter: bybit, file: 'bybit-kline.docs.json', baseUrl: 'https://api.bybit.com',
    req: { symbol: 'BTC/USD', interval: '1h', from: 1670601600000, to: 1670608800000, now: 1672025956592 }, symbol: '', candles: [] },
];

const FIELDS = ['quoteVolume', 'takerBuyVolume', 'takerBuyQuoteVolume', 'vwap'] as const;
const COLUMN = { quoteVolume: 'quote_volume', takerBuyVolume: 'taker_buy_volume', takerBuyQuoteVolume: 'taker_buy_quote_volume', vwap: 'vwap' } as const;
/** Exact decimals compare by value: Parquet keeps the column's scale, not the trailing zeros. */
const norm = (v: unknown) => (typeof v === 'string' && v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v ?? null);
const fieldsOf = (c: Partial<Record<(typeof FIELDS)[number], string | null | undefined>>) => FIELDS.map((f) => norm(c[f]));

async function store(s: Sample, candles: Candle[], fetchedAt: number) {
  const batches: CandleBatch[] = encodeCandleBatches({ exchange: s.exchange, symbol: s.symbol, interval: s.req.interval }, candles, fetchedAt).map((body) => {
    const parsed = parseCandleBatch(body);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.batch;
  });
  await api.store.write(api.pool, batches);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-extras-'));
  for (const s of samples) {
    const page = await s.adapter.fetchPage(s.req, { fetch: answer(fixture(s.file)).fetch, baseUrl: s.baseUrl });
    s.candles = page.candles;
    s.symbol = uniqueSymbol();
    await store(s, s.candles, Date.UTC(2025, 0, 1));
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the optional fields each exchange sends', () => {
  it('come from the sample bodies: taker-buy volumes from Binance, VWAP from Kraken, quote volume from OKX and Bybit', () => {
    const [b, k, o, y] = samples;
    expect(b!.candles[0]).toMatchObject({ takerBuyVolume: '1756.87402397', takerBuyQuoteVolume: '28.46694368', quoteVolume: '2434.19055334' });
    expect(k!.candles.map((c) => c.vwap)).toEqual(['30306.1', '30300.0', '30294.7', '30293.8']);
    expect(o!.candles.length).toBeGreaterThan(0);
    expect(o!.candles.every((c) => c.quoteVolume !== undefined && c.takerBuyVolume === undefined && c.vwap === undefined)).toBe(true);
    expect(y!.candles.length).toBeGreaterThan(0);
    expect(y!.candles.every((c) => c.quoteVolume !== undefined && c.vwap === undefined)).toBe(true);
  });

  it('reach GET /v1/candles as JSON (only where sent) and CSV (empty where not)', async () => {
    for (const s of samples) {
      const q = { exchange: s.exchange, symbol: s.symbol, interval: s.req.interval };
      const json = await api.get('/v1/candles', q);
      expect(json.status, json.text).toBe(200);
      expect(json.body.candles.map((c: Candle) => [c.openTime, ...fieldsOf(c)])).toEqual(s.candles.map((c) => [c.openTime, ...fieldsOf(c)]));
      for (const c of json.body.candles as Record<string, unknown>[]) {
        for (const f of ['takerBuyVolume', 'takerBuyQuoteVolume', 'vwap']) if (!s.candles.some((x) => x[f as keyof Candle] !== undefined)) expect(c).not.toHaveProperty(f);
      }
      const csv = parseCsv((await api.get('/v1/candles', { ...q, format: 'csv' })).text);
      expect(csv.map((r) => [Number(r.open_time), ...FIELDS.map((f) => norm(r[COLUMN[f]] === '' ? null : r[COLUMN[f]]))])).toEqual(
        s.candles.map((c) => [c.openTime, ...fieldsOf(c)]),
      );
    }
    // The exact text as the exchange sent it, trailing zeros included.
    const kr = await api.get('/v1/candles', { exchange: 'kraken', symbol: samples[1]!.symbol, interval: '1m' });
    expect(kr.body.candles[1].vwap).toBe('30300.0');
  });

  it('reach Parquet and csv.gz exports, read back with pyarrow and pandas', async () => {
    const series = samples.map((s) => `${s.exchange}:${s.symbol}:${s.req.interval}`);
    const want = samples.flatMap((s) => s.candles.map((c) => [s.exchange, c.openTime, ...fieldsOf(c)]));
    const parquet = join(dir, 'extras.parquet');
    await exportToFile(api.pool, exportRequestSchema.parse({ series, format: 'parquet' }), parquet);
    const file = JSON.parse(await runPython('read_export.py', [parquet, 'parquet'])) as { schema: Record<string, string>; rows: Record<string, unknown>[] };
    expect(file.schema.taker_buy_volume).toMatch(/^decimal128\(\d+, 8\)$/);
    expect(file.schema.vwap).toMatch(/^decimal128\(\d+, 1\)$/);
    expect(file.rows.map((r) => [r.exchange, r.open_time, ...FIELDS.map((f) => norm(r[COLUMN[f]]))])).toEqual(want);

    const gz = join(dir, 'extras.csv.gz');
    await exportToFile(api.pool, exportRequestSchema.parse({ series, format: 'csv.gz' }), gz);
    const csv = JSON.parse(await runPython('read_export.py', [gz, 'csv.gz'])) as { columns: string[]; rows: Record<string, string | null>[] };
    expect(csv.columns.slice(-3)).toEqual(['taker_buy_volume', 'taker_buy_quote_volume', 'vwap']);
    // csv.gz keeps the stored text exactly.
    expect(csv.rows.map((r) => [r.exchange, Number(r.open_time), ...FIELDS.map((f) => r[COLUMN[f]])])).toEqual(
      samples.flatMap((s) => s.candles.map((c) => [s.exchange, c.openTime, ...FIELDS.map((f) => c[f] ?? null)])),
    );
  });
});

describe('messages and restatements', () => {
  const T = Date.UTC(2024, 5, 3);
  const base = (i: number): BaseCandleRow => [T + i * 60_000, '10.5', '11', '10', '10.75', '3.5', '37.1', 7, 1];

  it('stores a 9-field message (an older sender) with no optional fields, and a 12-field one with them', async () => {
    const symbol = uniqueSymbol();
    const body = (rows: CandleRow[]) => JSON.stringify({ v: 1, exchange: 'binance', symbol, interval: '1m', fetchedAt: Date.UTC(2025, 0, 1), rows });
    const old = parseCandleBatch(body([base(0)]));
    const extended = parseCandleBatch(body([[...base(1), '1.25', '13.1', null]]));
    expect(old.ok && extended.ok).toBe(true);
    if (!old.ok || !extended.ok) return;
    await api.store.write(api.pool, [old.batch, extended.batch]);
    const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m' });
    expect(r.body.candles[0]).not.toHaveProperty('takerBuyVolume');
    expect(r.body.candles[1]).toMatchObject({ takerBuyVolume: '1.25', takerBuyQuoteVolume: '13.1' });
    expect(r.body.candles[1]).not.toHaveProperty('vwap');
    const { rows } = await api.pool.query('SELECT count(*)::int AS n FROM candle_extras x JOIN series s ON s.id = x.series_id WHERE s.symbol = $1', [symbol]);
    expect(rows[0].n).toBe(1);
  });

  it('keeps a restatement of an optional field alone, and an as-of read gives back the value it replaced', async () => {
    const symbol = uniqueSymbol();
    const s: Sample = { ...samples[0]!, symbol, req: { ...samples[0]!.req, interval: '1m' } };
    const first: Candle = { openTime: T, open: '10.5', high: '11', low: '10', close: '10.75', volume: '3.5', quoteVolume: '37.1', trades: 7, closed: true, takerBuyVolume: '1.25', takerBuyQuoteVolume: '13.1' };
    await store(s, [first], Date.now() - 60_000);
    const before = new Date().toISOString();
    // The same candle fetched later: only the taker-buy base volume differs.
    await store(s, [{ ...first, takerBuyVolume: '1.5' }], Date.now());
    const { rows: restated } = await api.pool.query(
      `SELECT r.old_taker_buy_volume::text AS old, r.old_close::text AS close FROM candle_restatements r JOIN series x ON x.id = r.series_id WHERE x.symbol = $1`,
      [symbol],
    );
    expect(restated).toEqual([{ old: '1.25', close: '10.75' }]);
    const now = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m' });
    expect(now.body.candles[0]).toMatchObject({ takerBuyVolume: '1.5', takerBuyQuoteVolume: '13.1' });
    const then = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', asOf: before });
    expect(then.body.candles[0]).toMatchObject({ takerBuyVolume: '1.25', takerBuyQuoteVolume: '13.1', close: '10.75' });

    // A later version without the fields clears them (and keeps the ones it replaced).
    await store(s, [{ ...first, takerBuyVolume: undefined, takerBuyQuoteVolume: undefined }], Date.now() + 1000);
    const cleared = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m' });
    expect(cleared.body.candles[0]).not.toHaveProperty('takerBuyVolume');
    const { rows: all } = await api.pool.query(
      `SELECT r.old_taker_buy_volume::text AS old FROM candle_restatements r JOIN series x ON x.id = r.series_id WHERE x.symbol = $1 ORDER BY r.id`,
      [symbol],
    );
    expect(all).toEqual([{ old: '1.25' }, { old: '1.5' }]);
  });

  it('leaves the stored optional fields alone when an identical or older version arrives', async () => {
    const symbol = uniqueSymbol();
    const s: Sample = { ...samples[0]!, symbol, req: { ...samples[0]!.req, interval: '1m' } };
    const c: Candle = { openTime: T, open: '10.5', high: '11', low: '10', close: '10.75', volume: '3.5', closed: true, vwap: '10.6' };
    await store(s, [c], Date.UTC(2025, 0, 2));
    await store(s, [c], Date.UTC(2025, 0, 3));
    await store(s, [{ ...c, vwap: '10.9' }], Date.UTC(2025, 0, 1));
    const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m' });
    expect(r.body.candles[0].vwap).toBe('10.6');
    const { rows } = await api.pool.query('SELECT count(*)::int AS n FROM candle_restatements r JOIN series x ON x.id = r.series_id WHERE x.symbol = $1', [symbol]);
    expect(rows[0].n).toBe(0);
  });
});
