import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Exchange } from '../../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../../functions/candles/intervals.ts';
import { MalformedResponseError, UnknownSymbolError, UnsupportedIntervalError } from '../../../functions/exchanges/errors.ts';
import { Governor } from '../../../functions/exchanges/governor.ts';
import { adapters } from '../../../functions/exchanges/index.ts';
import { fetchRange } from '../../../functions/exchanges/paging.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';

// The fake's clock is frozen mid-candle, so the forming candle and every page stay stable.
const NOW = Date.UTC(2024, 2, 14, 9, 41, 27, 512);
const MIN = 60_000;
const HOLE_EVERY = 7;

let fake: FakeExchange;
let governor: Governor;

beforeAll(async () => {
  fake = await startFakeExchange({
    now: () => NOW,
    seed: 42,
    enforceLimits: false,
    listedAt: (exchange, symbol) => (exchange === 'binance' && symbol === 'ETH/USDT' ? NOW - 1000 * MIN : undefined),
    holes: (t, s) => s.symbol === 'ETH/USD' && (t / INTERVAL_MS[s.interval]) % HOLE_EVERY === 0,
  });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  // Real sleeps but no real budget pressure: the fake does not enforce limits here.
  governor = new Governor({ now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) }, { baseBackoffMs: 20 });
});

function range(exchange: Exchange, symbol: string, interval: Interval, from: number, to: number = NOW) {
  return fetchRange(
    adapters[exchange],
    { symbol, interval, from, to, now: NOW },
    { fetch: governor.fetchFor(exchange), baseUrl: fake.baseUrls[exchange] },
  );
}

function expectEveryCandleOnce(candles: { openTime: number }[], step: number) {
  const times = candles.map((c) => c.openTime);
  expect(new Set(times).size).toBe(times.length);
  expect(times).toEqual([...times].sort((a, b) => a - b));
  for (const t of times) expect(t % step).toBe(0);
}

describe.each([
  { exchange: 'binance' as const, symbol: 'BTC/USDT', minutes: 2500, pages: 3 },
  { exchange: 'okx' as const, symbol: 'BTC/USDT', minutes: 2 * 1440, pages: 10 },
  { exchange: 'bybit' as const, symbol: 'ETH/USDT', minutes: 2500, pages: 3 },
  { exchange: 'coinbase' as const, symbol: 'BTC/USD', minutes: 700, pages: 3 },
])('$exchange against the fake exchange', ({ exchange, symbol, minutes, pages }) => {
  it('pages through a multi-page range, every candle exactly once, the forming one open', async () => {
    const from = bucketStart(NOW, '1m') - minutes * MIN;
    const result = await range(exchange, symbol, '1m', from);
    const expected = fake.expected(exchange, symbol, '1m', from, NOW);
    expectEveryCandleOnce(result.candles, MIN);
    expect(result.candles).toEqual(expected);
    expect(result.pages).toBe(pages);
    expect(fake.requests(exchange)).toHaveLength(pages);
    const last = result.candles.at(-1);
    expect(last?.openTime).toBe(bucketStart(NOW, '1m'));
    expect(last?.closed).toBe(false);
    expect(result.candles.slice(0, -1).every((c) => c.closed)).toBe(true);
  });

  it('maps the fake\'s unknown-symbol answer', async () => {
    await expect(range(exchange, 'DOGE/EUR', '1m', NOW - 10 * MIN)).rejects.toThrow(UnknownSymbolError);
    expect(fake.stats(exchange).errors).toBe(1);
  });
});

describe('exchange specifics against the fake exchange', () => {
  it('binance: nothing before the listing date', async () => {
    const result = await range('binance', 'ETH/USDT', '1m', NOW - 3000 * MIN);
    expect(result.candles[0]?.openTime).toBe(bucketStart(NOW - 1000 * MIN, '1m') + MIN);
    expect(result.candles).toEqual(fake.expected('binance', 'ETH/USDT', '1m', NOW - 3000 * MIN, NOW));
    expect(result.candles).toHaveLength(1000);
  });

  it('okx: recent ranges read `candles`, older ones `history-candles`', async () => {
    await range('okx', 'ETH/USDT', '1h', NOW - 10 * 3_600_000);
    await range('okx', 'ETH/USDT', '1h', NOW - 400 * 86_400_000, NOW - 399 * 86_400_000);
    expect(fake.requests('okx').map((r) => r.path)).toEqual(['/api/v5/market/candles', '/api/v5/market/history-candles']);
  });

  it('okx, bybit, binance: every one of candlekeep\'s intervals is served aligned', async () => {
    for (const exchange of ['binance', 'okx', 'bybit'] as const) {
      for (const interval of ['3m', '2h', '6h', '12h', '1d', '1w'] as const) {
        const from = NOW - 20 * INTERVAL_MS[interval];
        const result = await range(exchange, 'SOL/USDT', interval, from);
        expect(result.candles).toEqual(fake.expected(exchange, 'SOL/USDT', interval, from, NOW));
        expect(result.candles.at(-1)?.closed).toBe(false);
      }
    }
  });

  it('coinbase: missing buckets stay missing, and dust volume arrives as plain decimals', async () => {
    const from = bucketStart(NOW, '1m') - 900 * MIN;
    const result = await range('coinbase', 'ETH/USD', '1m', from);
    expectEveryCandleOnce(result.candles, MIN);
    expect(result.candles).toEqual(fake.expected('coinbase', 'ETH/USD', '1m', from, NOW));
    expect(result.candles.some((c) => (c.openTime / MIN) % HOLE_EVERY === 0)).toBe(false);
    expect(result.candles.length).toBeLessThan(901);
    const dust = result.candles.filter((c) => /^0\.0000000\d$/.test(c.volume));
    expect(dust.length).toBeGreaterThan(0);
  });

  it('coinbase: intervals it lacks are refused before any request', async () => {
    await expect(range('coinbase', 'BTC/USD', '4h', NOW - 86_400_000)).rejects.toThrow(UnsupportedIntervalError);
    expect(fake.stats('coinbase').requests).toBe(0);
  });

  it('kraken: one call returns the newest 720 rows whatever the range asks, the last one forming', async () => {
    const result = await range('kraken', 'BTC/USD', '1m', NOW - 2000 * MIN);
    expect(result.pages).toBe(1);
    expect(result.candles).toHaveLength(720);
    expect(result.candles).toEqual(fake.expected('kraken', 'BTC/USD', '1m', NOW - 2000 * MIN, NOW));
    expect(result.candles.at(-1)?.closed).toBe(false);
    expect(result.candles[0]?.close).toMatch(/^\d+\.\d$/); // XBTUSD prices carry one decimal, trailing zero kept
    expect(fake.requests('kraken')[0]?.query.pair).toBe('XBTUSD');
  });

  it('kraken: buckets without trades come back flat with count 0', async () => {
    const result = await range('kraken', 'ETH/USD', '1m', NOW - 60 * MIN);
    const flat = result.candles.filter((c) => (c.openTime / MIN) % HOLE_EVERY === 0 && c.closed);
    expect(flat.length).toBeGreaterThan(0);
    for (const c of flat) expect([c.trades, c.open === c.close && c.high === c.low]).toEqual([0, true]);
  });

  it('faults: a 502 HTML page is retried, a 200 HTML page and truncated JSON are malformed', async () => {
    fake.inject('bybit', 'html', { status: 502 });
    const healed = await range('bybit', 'BTC/USDT', '1m', NOW - 10 * MIN);
    expect(healed.candles).toHaveLength(10);
    expect(fake.stats('bybit')).toMatchObject({ requests: 2, faults: 1, ok: 1 });

    fake.inject('okx', 'html', { status: 200 });
    await expect(range('okx', 'BTC/USDT', '1m', NOW - 10 * MIN)).rejects.toThrow(/expected JSON, got an HTML page/);
    fake.inject('kraken', 'truncated');
    await expect(range('kraken', 'BTC/USD', '1m', NOW - 10 * MIN)).rejects.toThrow(MalformedResponseError);
    fake.inject('binance', '500', { count: 2 });
    expect((await range('binance', 'BTC/USDT', '1m', NOW - 10 * MIN)).candles).toHaveLength(10);
    expect(fake.stats('binance')).toMatchObject({ requests: 3, faults: 2, ok: 1 });
  });
});
