import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';

const NOW = Date.UTC(2024, 2, 14, 9, 41, 27, 512);
const MIN = 60_000;
const CURRENT = NOW - (NOW % MIN);

let fake: FakeExchange;
beforeAll(async () => {
  // A frozen clock never refills a budget, so limits are off here (rate-limits.test.ts covers them).
  fake = await startFakeExchange({ now: () => NOW, enforceLimits: false });
});
afterAll(async () => {
  await fake.close();
});

async function get(url: string): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

describe('fake exchange wire behaviour', () => {
  it('binance: counts weight in X-MBX-USED-WEIGHT-1M', async () => {
    const limited = await startFakeExchange();
    try {
      const url = `${limited.baseUrls.binance}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3`;
      const [a, b] = [await get(url), await get(url)];
      const used = [a, b].map((r) => Number(r.headers.get('x-mbx-used-weight-1m')));
      // Two calls of weight 2, unless the minute turned in between.
      expect(used[1] === 4 || used[1] === 2).toBe(true);
      expect(used[0]).toBe(2);
    } finally {
      await limited.close();
    }
  });

  it('binance: endTime alone gives the newest rows, ascending', async () => {
    const a = await get(`${fake.baseUrls.binance}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3&endTime=${CURRENT - MIN}`);
    const b = await get(`${fake.baseUrls.binance}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3`);
    expect((a.json() as number[][]).map((r) => r[0])).toEqual([CURRENT - 3 * MIN, CURRENT - 2 * MIN, CURRENT - MIN]);
    const rows = b.json() as unknown[][];
    expect(rows.at(-1)?.[0]).toBe(CURRENT);
    expect(rows[0]?.[1]).toMatch(/^\d+\.\d{8}$/);
    expect(b.headers.get('date')).toBe(new Date(NOW).toUTCString());
  });

  it('okx: newest first, `confirm` 0 on the forming bar, `candles` limited to the newest 1,440 rows', async () => {
    const recent = (await get(`${fake.baseUrls.okx}/api/v5/market/candles?instId=BTC-USDT&bar=1m&limit=2`)).json() as { data: string[][] };
    expect(recent.data.map((r) => [Number(r[0]), r[8]])).toEqual([[CURRENT, '0'], [CURRENT - MIN, '1']]);
    const old = `instId=BTC-USDT&bar=1m&limit=2&after=${CURRENT - 2000 * MIN}`;
    expect(((await get(`${fake.baseUrls.okx}/api/v5/market/candles?${old}`)).json() as { data: unknown[] }).data).toEqual([]);
    expect(((await get(`${fake.baseUrls.okx}/api/v5/market/history-candles?${old}`)).json() as { data: unknown[] }).data).toHaveLength(2);
    const bad = await get(`${fake.baseUrls.okx}/api/v5/market/candles?instId=BTC-USDT&bar=7m`);
    expect([bad.status, bad.json()]).toEqual([200, { code: '51000', msg: 'Parameter bar error', data: [] }]);
  });

  it('bybit: a start inside a bucket selects that bucket; errors come with HTTP 200', async () => {
    const body = (await get(`${fake.baseUrls.bybit}/v5/market/kline?category=spot&symbol=BTCUSDT&interval=1&start=${CURRENT - 2 * MIN + 30_000}&end=${CURRENT}`)).json() as {
      result: { list: string[][] };
    };
    expect(body.result.list.map((r) => Number(r[0]))).toEqual([CURRENT, CURRENT - MIN, CURRENT - 2 * MIN]);
    const bad = await get(`${fake.baseUrls.bybit}/v5/market/kline?category=spot&symbol=NOPE&interval=1`);
    expect(bad.status).toBe(200);
    expect(bad.json()).toMatchObject({ retCode: 10001, retMsg: 'Not supported symbols' });
  });

  it('coinbase: more than 300 buckets is a 400, rows are JSON numbers newest first', async () => {
    const iso = (t: number) => new Date(t).toISOString();
    const tooMany = await get(`${fake.baseUrls.coinbase}/products/BTC-USD/candles?granularity=60&start=${iso(CURRENT - 301 * MIN)}&end=${iso(CURRENT)}`);
    expect(tooMany.status).toBe(400);
    const ok = await get(`${fake.baseUrls.coinbase}/products/BTC-USD/candles?granularity=60&start=${iso(CURRENT - 2 * MIN)}&end=${iso(CURRENT)}`);
    expect(ok.text).toMatch(/^\[\[\d{10},\d/);
    expect((ok.json() as number[][]).map((r) => r[0])).toEqual([CURRENT / 1000, CURRENT / 1000 - 60, CURRENT / 1000 - 120]);
    expect((await get(`${fake.baseUrls.coinbase}/products/BTC-USD/candles?granularity=14400`)).json()).toEqual({ message: 'Unsupported granularity' });
  });

  it('kraken: `since` is exclusive, the forming row always last, the key is XXBTZUSD', async () => {
    const body = (await get(`${fake.baseUrls.kraken}/0/public/OHLC?pair=XBTUSD&interval=1&since=${(CURRENT - 2 * MIN) / 1000}`)).json() as {
      result: Record<string, unknown>;
    };
    expect(Object.keys(body.result)).toEqual(['XXBTZUSD', 'last']);
    expect((body.result.XXBTZUSD as number[][]).map((r) => r[0])).toEqual([CURRENT / 1000 - 60, CURRENT / 1000]);
    expect(body.result.last).toBe(CURRENT / 1000 - 60);
    const ahead = (await get(`${fake.baseUrls.kraken}/0/public/OHLC?pair=XBTUSD&interval=1&since=${CURRENT / 1000 + 600}`)).json() as {
      result: Record<string, number[][]>;
    };
    expect(ahead.result.XXBTZUSD?.map((r) => r[0])).toEqual([CURRENT / 1000]);
  });

  it('holds each answer for the latency asked for, counting the request when it arrives', async () => {
    const slow = await startFakeExchange({ now: () => NOW, enforceLimits: false, latencyMs: [120, 150] });
    try {
      const url = `${slow.baseUrls.bybit}/v5/market/kline?category=spot&symbol=BTCUSDT&interval=1&limit=2`;
      const started = performance.now();
      const answer = await get(url);
      expect(performance.now() - started).toBeGreaterThanOrEqual(119);
      expect(answer.status).toBe(200);
      expect((answer.json() as { result: { list: unknown[] } }).result.list).toHaveLength(2);
      expect(slow.stats('bybit')).toMatchObject({ requests: 1, ok: 1 });
    } finally {
      await slow.close();
    }
    await expect(startFakeExchange({ latencyMs: [100, 50] })).rejects.toThrow(/latencyMs must be \[min, max\]/);
  });

  it('counts requests and rate-limit answers per exchange', async () => {
    fake.reset();
    fake.inject('coinbase', '429', { count: 2 });
    for (let i = 0; i < 3; i++) await get(`${fake.baseUrls.coinbase}/products/BTC-USD/candles?granularity=60`);
    expect(fake.stats('coinbase')).toEqual({ requests: 3, ok: 1, rateLimited: 2, banned: 0, errors: 0, faults: 2 });
    expect(fake.requests('coinbase').map((r) => r.status)).toEqual([429, 429, 200]);
  });
});
