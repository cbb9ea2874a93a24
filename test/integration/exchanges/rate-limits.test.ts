import { afterEach, describe, expect, it } from 'vitest';
import type { Exchange } from '../../../functions/candles/candle.ts';
import { BannedError } from '../../../functions/exchanges/errors.ts';
import { Governor, PUBLISHED_LIMITS, deriveRule, scaleRules } from '../../../functions/exchanges/governor.ts';
import type { RateRule } from '../../../functions/exchanges/types.ts';
import { adapters } from '../../../functions/exchanges/index.ts';
import { startFakeExchange, type FakeExchange, type FakeExchangeOptions } from '../../../dev/fake-exchange/server.ts';

const MIN = 60_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const SYMBOL: Record<Exchange, string> = { binance: 'BTC/USDT', okx: 'BTC/USDT', bybit: 'BTC/USDT', coinbase: 'BTC/USD', kraken: 'BTC/USD' };

let fake: FakeExchange | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: FakeExchangeOptions): Promise<FakeExchange> {
  fake = await startFakeExchange(options);
  return fake;
}

/** The latest few candles of one market: one request per call. */
function latest(exchange: Exchange, f: FakeExchange, fetch: typeof globalThis.fetch, interval: '1m' | '1h' = '1m') {
  const now = Date.now();
  const from = interval === '1m' ? now - 5 * MIN : now - 400 * 86_400_000;
  const to = interval === '1m' ? now : from + 5 * 3_600_000;
  return adapters[exchange].fetchPage({ symbol: SYMBOL[exchange], interval, from, to, now }, { fetch, baseUrl: f.baseUrls[exchange] });
}

/**
 * The fake runs every window `timeScale` times faster; the governor gets the same published limits,
 * derived with its usual headroom and scaled by the same factor. Binance's and Bybit's limits are
 * shrunk (identically on both sides) so a burst of a few dozen calls actually reaches them.
 */
const BURSTS: { exchange: Exchange; calls: number; timeScale: number; limits: FakeExchangeOptions['limits']; published: Record<string, RateRule>; interval?: '1h' }[] = [
  { exchange: 'binance', calls: 40, timeScale: 60, limits: { binance: { weightPerWindow: 40 } }, published: { binance: { limit: 40, windowMs: 60_000 } } },
  { exchange: 'okx', calls: 60, timeScale: 20, limits: {}, published: { 'okx:history': PUBLISHED_LIMITS['okx:history'] as RateRule }, interval: '1h' },
  { exchange: 'okx', calls: 100, timeScale: 20, limits: {}, published: { 'okx:candles': PUBLISHED_LIMITS['okx:candles'] as RateRule } },
  { exchange: 'bybit', calls: 80, timeScale: 5, limits: { bybit: { limit: 50 } }, published: { bybit: { limit: 50, windowMs: 5_000 } } },
  { exchange: 'coinbase', calls: 40, timeScale: 10, limits: {}, published: { coinbase: PUBLISHED_LIMITS.coinbase as RateRule } },
  { exchange: 'kraken', calls: 8, timeScale: 4, limits: {}, published: { kraken: PUBLISHED_LIMITS.kraken as RateRule } },
];

describe.each(BURSTS)('a burst of $calls concurrent $exchange calls', ({ exchange, calls, timeScale, limits, published, interval }) => {
  it('gets zero 429/418 answers through the governor', async () => {
    const f = await start({ timeScale, limits });
    const derived = Object.fromEntries(Object.entries(published).map(([k, r]) => [k, deriveRule(r)]));
    const governor = new Governor({ now: Date.now, sleep }, { rules: scaleRules(derived, timeScale) });
    const pages = await Promise.all(Array.from({ length: calls }, () => latest(exchange, f, governor.fetchFor(exchange), interval)));
    expect(pages.every((p) => p.candles.length > 0)).toBe(true);
    expect(f.stats(exchange)).toMatchObject({ requests: calls, ok: calls, rateLimited: 0, banned: 0 });
  });

  it('is refused by the fake without the governor (so the limit is real)', async () => {
    // Real-length windows: connection setup cannot spread the burst past them.
    const f = await start({ limits });
    await Promise.allSettled(Array.from({ length: calls }, () => latest(exchange, f, fetch, interval)));
    const s = f.stats(exchange);
    expect(s.rateLimited + s.banned).toBeGreaterThan(0);
  });
});

describe('Retry-After and bans against the fake exchange', () => {
  /** A governor on a fake clock that only moves when it sleeps, to read its waits exactly. */
  function recordingGovernor() {
    let now = Date.now();
    const sleeps: number[] = [];
    const governor = new Governor({ now: () => now, sleep: async (ms) => { sleeps.push(ms); now += ms; } });
    return { governor, sleeps };
  }

  it.each([
    { exchange: 'binance' as const, retryAfterSec: 3, wait: 3000 },
    { exchange: 'coinbase' as const, retryAfterSec: 2, wait: 2000 },
    // No Retry-After: a full window of the exchange's budget.
    { exchange: 'okx' as const, retryAfterSec: undefined, wait: 2000 },
    { exchange: 'kraken' as const, retryAfterSec: undefined, wait: 1112 },
  ])('$exchange: waits $wait ms after a rate-limit answer, then succeeds', async ({ exchange, retryAfterSec, wait }) => {
    const f = await start({ enforceLimits: false });
    f.inject(exchange, '429', retryAfterSec === undefined ? {} : { retryAfterSec });
    const { governor, sleeps } = recordingGovernor();
    const page = await latest(exchange, f, governor.fetchFor(exchange));
    expect(page.candles.length).toBeGreaterThan(0);
    expect(sleeps).toEqual([wait]);
    expect(f.stats(exchange)).toMatchObject({ requests: 2, rateLimited: 1, ok: 1 });
  });

  it('binance: real elapsed time matches a fractional Retry-After', async () => {
    const f = await start({ enforceLimits: false });
    f.inject('binance', '429', { retryAfterSec: 0.4 });
    const governor = new Governor({ now: Date.now, sleep });
    const started = performance.now();
    await latest('binance', f, governor.fetchFor('binance'));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(1500);
  });

  it('binance: continued abuse earns a 418, after which the governor makes no call until the ban ends', async () => {
    const timeScale = 60; // the 2-minute ban lasts 2 s
    const f = await start({ timeScale, limits: { binance: { weightPerWindow: 10 } } });
    // Without a governor: 5 calls fill the window, the next ones get 429, and ignoring those gets a ban.
    for (let i = 0; i < 50 && f.stats('binance').banned === 0; i++) await latest('binance', f, fetch).catch(() => undefined);
    expect(f.stats('binance').rateLimited).toBeGreaterThan(0);
    expect(f.stats('binance').banned).toBe(1);

    const governor = new Governor({ now: Date.now, sleep }, { rules: scaleRules({ binance: deriveRule({ limit: 10, windowMs: 60_000 }) }, timeScale) });
    const err = await latest('binance', f, governor.fetchFor('binance')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BannedError);
    const requests = f.stats('binance').requests;
    await expect(latest('binance', f, governor.fetchFor('binance'))).rejects.toThrow(BannedError);
    await expect(latest('binance', f, governor.fetchFor('binance'))).rejects.toThrow(BannedError);
    expect(f.stats('binance').requests).toBe(requests);

    const until = (err as BannedError).untilMs;
    await sleep(Math.max(0, until - Date.now()) + 20);
    expect((await latest('binance', f, governor.fetchFor('binance'))).candles.length).toBeGreaterThan(0);
    expect(f.stats('binance').requests).toBe(requests + 1);
  });

  it('bybit: a breach answers 403, which the governor treats as a ban', async () => {
    const f = await start({ timeScale: 20, limits: { bybit: { limit: 3 } } });
    await Promise.allSettled(Array.from({ length: 5 }, () => latest('bybit', f, fetch)));
    expect(f.stats('bybit').banned).toBeGreaterThan(0);
    const governor = new Governor({ now: Date.now, sleep });
    await expect(latest('bybit', f, governor.fetchFor('bybit'))).rejects.toThrow(BannedError);
    const requests = f.stats('bybit').requests;
    await expect(latest('bybit', f, governor.fetchFor('bybit'))).rejects.toThrow(BannedError);
    expect(f.stats('bybit').requests).toBe(requests);
  });
});
