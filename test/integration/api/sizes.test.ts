import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CreateBacktestInput } from '../../../functions/backtests/record.ts';
import { ANSWER_BUDGET_BYTES } from '../../../functions/http/size.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { uniqueSymbol } from '../../support/db.ts';
import { load, parseCsv, useApi, walk, type Answer } from './support.ts';

const api = useApi();
const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1);
let symbol: string;

/** What the answer takes inside the Lambda's response: the body escaped as a JSON string. */
const lambdaBytes = (a: Answer) => Buffer.byteLength(JSON.stringify(a.text), 'utf8');

beforeAll(async () => {
  symbol = uniqueSymbol();
  await load(api, symbol, '1m', walk(T0, 60, MIN, 5));
});

function run(strategy: string, over: Partial<CreateBacktestInput> = {}): CreateBacktestInput {
  return {
    strategy,
    strategyVersion: '1',
    parameters: { fast: 10 },
    instruments: [{ exchange: 'binance', symbol, interval: '1m' }],
    start: '2024-03-01T00:00:00Z',
    end: '2024-03-01T01:00:00Z',
    metrics: { totalReturn: 0.1 },
    ...over,
  };
}

/** Parameters just under the 64 KiB cap, made of quotes: each doubles when escaped, twice on its way out. */
const nearCapParameters = (i: number) => ({ i, blob: '"'.repeat(30_000) });

async function post(body: CreateBacktestInput): Promise<Answer> {
  return api.call('POST', '/v1/backtests', { body, headers: { 'Idempotency-Key': randomUUID() } });
}

describe('stored sizes', () => {
  it('refuses parameters over 64 KiB and a trade over 8 KiB with 422 naming the field', async () => {
    const big = await post(run('size_cap', { parameters: { blob: 'x'.repeat(70_000) } }));
    expect(big.status).toBe(422);
    expect(big.body).toMatchObject({ parameter: 'parameters', detail: expect.stringMatching(/at most 64 KiB/) });
    expect((await post(run('size_cap', { parameters: nearCapParameters(0) }))).status).toBe(201);

    const fields = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, 'y'.repeat(200)]));
    const trade = await post(run('size_cap', { trades: [{ side: 'long', entryTime: T0 }, { side: 'long', entryTime: T0, ...fields }] }));
    expect(trade.status).toBe(422);
    expect(trade.body).toMatchObject({ parameter: 'trades[1]', detail: expect.stringMatching(/at most 8 KiB/) });
  });
});

describe('answers stay under the Lambda response limit', () => {
  const strategy = `size_list_${Date.now().toString(36)}`;
  const ids: string[] = [];
  beforeAll(async () => {
    // 60 runs near the parameter cap: about 7 MB as one escaped answer.
    for (let i = 0; i < 60; i++) {
      const r = await post(run(strategy, { parameters: nearCapParameters(i) }));
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
  }, 120_000);

  it.each(['json', 'csv'])('pages GET /v1/backtests by size (%s): every page fits, every run comes once', async (format) => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await api.get('/v1/backtests', { strategy, limit: 1000, format, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      expect(lambdaBytes(r)).toBeLessThanOrEqual(ANSWER_BUDGET_BYTES);
      const runs = format === 'json' ? (r.body.runs as { id: string }[]).map((x) => x.id) : parseCsv(r.text).map((x) => x.id!);
      seen.push(...runs);
      cursor = (format === 'json' ? r.body.nextCursor : r.headers.get('x-next-cursor')) ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBeGreaterThan(1);
    expect(seen.sort()).toEqual([...ids].sort());
  });

  it('compares 10 runs near the cap within the limit', async () => {
    const r = await api.get('/v1/backtests/compare', { ids: ids.slice(0, 10).join(',') });
    expect(r.status).toBe(200);
    expect(lambdaBytes(r)).toBeLessThanOrEqual(ANSWER_BUDGET_BYTES);
    expect(r.body.parameters.differing.map((p: { name: string }) => p.name)).toEqual(['i']);
  });

  it('serves trades too big for one answer through their own paged route, and says so for include=trades', async () => {
    // 15,000 trades of about 300 bytes, mostly quotes: 4.5 MB stored, about 8.5 MB escaped in one answer.
    const trades = Array.from({ length: 15_000 }, (_, i) => ({ side: 'long' as const, entryTime: T0 + i * MIN, pnl: i, note: `${'"'.repeat(120)}${i}` }));
    const created = await post(run('size_trades', { trades }));
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const whole = await api.get(`/v1/backtests/${id}`, { include: 'trades' });
    expect(whole.status).toBe(422);
    expect(whole.body).toMatchObject({ parameter: 'include', detail: expect.stringContaining(`/v1/backtests/${id}/trades`) });

    const got: { pnl: number }[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const r = await api.get(`/v1/backtests/${id}/trades`, { limit: 10_000, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      expect(lambdaBytes(r)).toBeLessThanOrEqual(ANSWER_BUDGET_BYTES);
      got.push(...r.body.trades);
      sizes.push(r.body.trades.length);
      cursor = r.body.nextCursor ?? undefined;
    } while (cursor);
    // 10,000 of these would not fit in one answer: the first page was cut by size.
    expect(sizes[0]).toBeLessThan(10_000);
    expect(got.map((t) => t.pnl)).toEqual(trades.map((t) => t.pnl));

    // The typed client follows the pages.
    let n = 0;
    for await (const _t of api.client.iterateBacktestTrades(id)) n++;
    expect(n).toBe(15_000);
  }, 60_000);

  it('pages the equity curve the same way', async () => {
    const equityCurve = Array.from({ length: 3000 }, (_, i) => ({ t: T0 + i * MIN, equity: 1000 + i }));
    const created = await post(run('size_curve', { equityCurve }));
    const id = created.body.id as string;
    const first = await api.get(`/v1/backtests/${id}/equity-curve`, { limit: 1000 });
    expect(first.body.equityCurve).toHaveLength(1000);
    const points = [];
    for await (const p of api.client.iterateBacktestEquityCurve(id)) points.push(p);
    expect(points).toEqual(equityCurve);
  });

  it('cuts a candle page of 80-digit decimals short and continues where it stopped', async () => {
    const wide = uniqueSymbol();
    const digits = (i: number) => `${i + 1}.${'7'.repeat(76)}`.slice(0, 80);
    const bars: StoredCandle[] = walk(T0, 10_000, MIN, 2).map((b, i) => ({
      ...b,
      open: digits(i),
      high: digits(i + 2),
      low: digits(i),
      close: digits(i + 1),
      volume: digits(i),
      quoteVolume: digits(i),
    }));
    await load(api, wide, '1m', bars);
    const first = await api.get('/v1/candles', { exchange: 'binance', symbol: wide, interval: '1m', start: T0, limit: 10_000 });
    expect(first.status).toBe(200);
    expect(lambdaBytes(first)).toBeLessThanOrEqual(ANSWER_BUDGET_BYTES);
    expect(first.body.count).toBeLessThan(10_000);
    const all = await api.client.allCandles({ exchange: 'binance', symbol: wide, interval: '1m', start: T0, limit: 10_000 });
    expect(all.map((c) => c.openTime)).toEqual(bars.map((b) => b.openTime));
    expect(all.map((c) => c.high)).toEqual(bars.map((b) => b.high));
  }, 60_000);
});
