import { describe, expect, it } from 'vitest';
import { BannedError, ExchangeNetworkError, RateLimitedError } from '../../../functions/exchanges/errors.ts';
import {
  DEFAULT_RULES,
  Governor,
  MemoryBudgetStore,
  deriveRule,
  type GovernorOptions,
} from '../../../functions/exchanges/governor.ts';
import type { RateRule } from '../../../functions/exchanges/types.ts';
import { lateSenders, tightestWindow } from '../../support/late-senders.ts';

const T0 = Date.UTC(2024, 0, 1);

type Step = Response | Error | ((signal: AbortSignal | undefined) => Promise<Response>);

/** A clock that only moves when the governor sleeps, and an exchange that answers from a script. */
function harness(script: Step[], options: GovernorOptions = {}, random = () => 0.5) {
  let now = T0;
  const sleeps: number[] = [];
  const calls: number[] = [];
  const fetch: typeof globalThis.fetch = async (_input, init) => {
    calls.push(now);
    const step = script.shift() ?? new Response('[]');
    if (step instanceof Error) throw step;
    return typeof step === 'function' ? step(init?.signal ?? undefined) : step;
  };
  const governor = new Governor(
    { now: () => now, sleep: async (ms) => { sleeps.push(ms); now += ms; }, random, fetch },
    options,
  );
  return {
    governor,
    sleeps,
    calls,
    script,
    get now() { return now; },
    advance(ms: number) { now += ms; },
    call: (exchange: Parameters<Governor['governedFetch']>[0] = 'binance', url = 'https://api.binance.com/api/v3/klines') =>
      governor.governedFetch(exchange, url),
  };
}

const res = (status: number, headers: Record<string, string> = {}, body = '{}') => new Response(body, { status, headers });

describe('governor', () => {
  it('waits exactly the Retry-After of a 429, then retries', async () => {
    const h = harness([res(429, { 'Retry-After': '3' }), res(200)]);
    const response = await h.call();
    expect(response.status).toBe(200);
    expect(h.sleeps).toEqual([3000]);
    expect(h.calls).toEqual([T0, T0 + 3000]);
  });

  it('reads Retry-After given as an HTTP date', async () => {
    const h = harness([res(429, { 'Retry-After': new Date(T0 + 5000).toUTCString() }), res(200)]);
    await h.call();
    expect(h.sleeps).toEqual([5000]);
  });

  it('makes other callers wait out a 429 pause too', async () => {
    const h = harness([res(429, { 'Retry-After': '2' })], { maxAttempts: 1 });
    await expect(h.call()).rejects.toThrow(RateLimitedError);
    h.advance(500);
    await h.call();
    expect(h.sleeps).toEqual([1500]);
    expect(h.calls).toEqual([T0, T0 + 2000]);
  });

  it('fails fast instead of sleeping past maxWaitMs', async () => {
    const h = harness([res(429, { 'Retry-After': '120' })], { maxWaitMs: 10_000 });
    await expect(h.call()).rejects.toMatchObject({ constructor: RateLimitedError, retryAfterMs: 120_000 });
    expect(h.sleeps).toEqual([]);
    expect(h.calls).toHaveLength(1);
  });

  it('stops every call to a banned exchange until the ban ends', async () => {
    const h = harness([res(418, { 'Retry-After': '120' }), res(200)]);
    await expect(h.call()).rejects.toMatchObject({ constructor: BannedError, untilMs: T0 + 120_000 });
    h.advance(60_000);
    await expect(h.call()).rejects.toThrow(BannedError);
    h.advance(59_999);
    await expect(h.call()).rejects.toThrow(BannedError);
    expect(h.calls).toHaveLength(1);
    h.advance(1);
    expect((await h.call()).status).toBe(200);
    expect(h.calls).toEqual([T0, T0 + 120_000]);
    // Other exchanges are unaffected.
    expect((await h.call('okx', 'https://www.okx.com/api/v5/market/candles')).status).toBe(200);
  });

  it('treats Bybit 403 as a ban of ten minutes when no end is given', async () => {
    const h = harness([res(403, {}, 'Forbidden')]);
    await expect(h.call('bybit', 'https://api.bybit.com/v5/market/kline')).rejects.toMatchObject({
      constructor: BannedError, untilMs: T0 + 600_000,
    });
  });

  it('pauses on rate-limit bodies sent with HTTP 200 and hands the body on intact', async () => {
    const h = harness([res(200, {}, '{"error":["EGeneral:Too many requests"]}'), res(200, {}, '{"error":[],"result":{}}')]);
    const response = await h.call('kraken', 'https://api.kraken.com/0/public/OHLC?pair=XBTUSD');
    expect(await response.text()).toBe('{"error":[],"result":{}}');
    expect(h.sleeps).toEqual([DEFAULT_RULES.kraken?.windowMs]);
  });

  it('retries 5xx with bounded, jittered exponential backoff and then returns the answer', async () => {
    const low = harness([res(500), res(502), res(503), res(500)], { baseBackoffMs: 200, maxBackoffMs: 500 }, () => 0);
    expect((await low.call()).status).toBe(500);
    expect(low.calls).toHaveLength(4);
    expect(low.sleeps).toEqual([100, 200, 250]);
    const high = harness([res(500), res(502), res(503), res(500)], { baseBackoffMs: 200, maxBackoffMs: 500 }, () => 0.999);
    await high.call();
    expect(high.sleeps).toEqual([200, 400, 500]);
    const many = harness(Array.from({ length: 10 }, () => res(503)), { maxAttempts: 10, baseBackoffMs: 200, maxBackoffMs: 500 }, Math.random);
    await many.call();
    expect(many.calls).toHaveLength(10);
    expect(Math.max(...many.sleeps)).toBeLessThanOrEqual(500);
  });

  it('never retries other 4xx answers', async () => {
    const h = harness([res(400, {}, '{"code":-1121,"msg":"Invalid symbol."}'), res(200)]);
    const response = await h.call();
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('Invalid symbol');
    expect(h.calls).toHaveLength(1);
  });

  it('retries network failures and gives up with a typed error', async () => {
    const ok = harness([new TypeError('fetch failed'), res(200)]);
    expect((await ok.call()).status).toBe(200);
    const down = harness([new TypeError('fetch failed'), new TypeError('fetch failed')], { maxAttempts: 2 });
    await expect(down.call()).rejects.toThrow(ExchangeNetworkError);
    expect(down.calls).toHaveLength(2);
  });

  it('aborts a request that exceeds the timeout', async () => {
    const hang = (signal: AbortSignal | undefined) =>
      new Promise<Response>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
    const h = harness([hang, hang], { timeoutMs: 20, maxAttempts: 2 });
    await expect(h.call()).rejects.toThrow(/request timed out after 2 attempts/);
  });

  it('spaces requests to stay inside the budget', async () => {
    const h = harness([], { rules: { coinbase: { limit: 3, windowMs: 1000 } } });
    for (let i = 0; i < 7; i++) await h.call('coinbase', 'https://api.exchange.coinbase.com/products/BTC-USD/candles');
    expect(h.calls.map((t) => t - T0)).toEqual([0, 0, 0, 1000, 1000, 1000, 2000]);
  });

  it('corrects its estimate from X-MBX-USED-WEIGHT-1M', async () => {
    const h = harness([res(200, { 'X-MBX-USED-WEIGHT-1M': '99' }), res(200)], {
      rules: { binance: { limit: 100, windowMs: 60_000 } },
      maxWaitMs: 120_000,
    });
    await h.call();
    await h.call();
    // 99 used by someone else plus this call's 2 would pass 100: wait for the window to slide.
    expect(h.sleeps).toEqual([60_000]);
  });

  it('routes OKX history and recent candles to separate budgets', async () => {
    const h = harness([], { rules: { 'okx:history': { limit: 1, windowMs: 1000 }, 'okx:candles': { limit: 1, windowMs: 1000 } } });
    await h.call('okx', 'https://www.okx.com/api/v5/market/history-candles');
    await h.call('okx', 'https://www.okx.com/api/v5/market/candles');
    await h.call('okx', 'https://www.okx.com/api/v5/market/history-candles');
    expect(h.calls.map((t) => t - T0)).toEqual([0, 0, 1000]);
  });
});

describe('budget rules and store', () => {
  it('derives budgets with headroom from the published limits', () => {
    expect(DEFAULT_RULES).toEqual({
      binance: { limit: 5400, windowMs: 60_000 },
      'okx:candles': { limit: 36, windowMs: 2_000 },
      'okx:history': { limit: 18, windowMs: 2_000 },
      'okx:instruments': { limit: 18, windowMs: 2_000 },
      'okx:tickers': { limit: 18, windowMs: 2_000 },
      bybit: { limit: 540, windowMs: 5_000 },
      coinbase: { limit: 9, windowMs: 1_000 },
      kraken: { limit: 1, windowMs: 1_112 },
    });
    expect(deriveRule({ limit: 1, windowMs: 1000 }, 0.5)).toEqual({ limit: 1, windowMs: 2000 });
  });

  it('grants weight in a sliding window and says how long until the next grant', async () => {
    const store = new MemoryBudgetStore();
    const rule = { limit: 3, windowMs: 1000 };
    // Each grant is answered at once here.
    const at = async (now: number, weight = 1) => {
      const wait = await store.take('k', weight, now, rule);
      if (wait === 0) await store.settle('k', weight, now, now);
      return wait;
    };
    expect([await at(0), await at(100), await at(200)]).toEqual([0, 0, 0]);
    // Refusals record nothing, so asking again changes nothing.
    expect([await at(300), await at(300)]).toEqual([700, 700]);
    expect(await at(1000)).toBe(0);
    expect(await at(1000, 3)).toBe(1000); // a full-limit take waits until even the entry at 1000 has left
    await store.reportUsage('k', 5, 1000, rule);
    expect(await at(1999)).toBe(1);
    expect(await at(2000)).toBe(0);
  });

  it('holds a grant until a window after its answer, however late that comes', async () => {
    const store = new MemoryBudgetStore();
    const rule = { limit: 1, windowMs: 1000 };
    expect(await store.take('k', 1, 0, rule)).toBe(0);
    // Still in flight at 5000: the exchange may count it only now, so nothing more may go out.
    expect(await store.take('k', 1, 5000, rule)).toBe(1000);
    await store.settle('k', 1, 0, 5200);
    expect(await store.take('k', 1, 6100, rule)).toBe(100);
    expect(await store.take('k', 1, 6200, rule)).toBe(0);
  });

  it('keeps requests that leave late a full window apart at the exchange: Kraken, one per 1,112 ms against its second', async () => {
    const delays = [0, 1_500, 0, 900, 2_500, 40, 0, 1_200, 300, 0, 2_000, 0];
    const arrivals = await lateSenders({
      stores: [new MemoryBudgetStore()], exchange: 'kraken', key: 'kraken', rule: DEFAULT_RULES.kraken!, start: T0,
      callers: 4, callsPerCaller: 3, sendDelayMs: (n) => delays[n % delays.length]!, latencyMs: 100,
    });
    expect(arrivals).toHaveLength(12);
    expect(tightestWindow(arrivals, 1)).toBeGreaterThanOrEqual(1_000);
  });

  it('keeps OKX under 40 requests in any 2 s with ten callers whose requests leave up to 1.5 s late', async () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const arrivals = await lateSenders({
      stores: [new MemoryBudgetStore()], exchange: 'okx', key: 'okx:candles', rule: DEFAULT_RULES['okx:candles']!, start: T0,
      callers: 10, callsPerCaller: 12, sendDelayMs: () => (random() < 0.2 ? Math.round(random() * 1_500) : 0), latencyMs: 80,
    });
    expect(arrivals).toHaveLength(120);
    expect(tightestWindow(arrivals, 40)).toBeGreaterThanOrEqual(2_000);
  });

  it('lets late requests bunch at the exchange when a grant counts from when it was asked for (negative control)', async () => {
    // Each grant is answered at once, as if its request had left and arrived at its grant.
    class FromGrant extends MemoryBudgetStore {
      override async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
        const wait = await super.take(key, weight, now, rule);
        if (wait === 0) await super.settle(key, Math.min(weight, rule.limit), now, now);
        return wait;
      }
      override async settle(): Promise<void> {}
    }
    const fromGrant = new FromGrant();
    const delays = [0, 1_500, 0, 900, 2_500, 40, 0, 1_200, 300, 0, 2_000, 0];
    const arrivals = await lateSenders({
      stores: [fromGrant], exchange: 'kraken', key: 'kraken', rule: DEFAULT_RULES.kraken!, start: T0,
      callers: 4, callsPerCaller: 3, sendDelayMs: (n) => delays[n % delays.length]!, latencyMs: 100,
    });
    expect(tightestWindow(arrivals, 1)).toBeLessThan(1_000);
  });

  it('keeps the longer block and lets a ban outrank a pause', async () => {
    const store = new MemoryBudgetStore();
    await store.ban('okx', 5000, 'rate-limited');
    await store.ban('okx', 3000, 'rate-limited');
    expect(await store.bannedUntil('okx', 0)).toEqual({ untilMs: 5000, kind: 'rate-limited' });
    await store.ban('okx', 4000, 'banned');
    expect(await store.bannedUntil('okx', 0)).toEqual({ untilMs: 5000, kind: 'banned' });
    expect(await store.bannedUntil('okx', 5000)).toBeUndefined();
  });
});
