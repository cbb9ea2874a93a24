import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeExchange, type FakeExchange, type FaultOptions } from '../../../dev/fake-exchange/server.ts';
import type { Exchange } from '../../../functions/candles/candle.ts';
import { BodyTooLargeError } from '../../../functions/exchanges/errors.ts';
import { Governor } from '../../../functions/exchanges/governor.ts';
import { adapters } from '../../../functions/exchanges/index.ts';
import { MAX_BODY_BYTES } from '../../../functions/exchanges/normalise.ts';

const NOW = Date.UTC(2024, 2, 14, 9, 41, 27, 512);
const HUGE = 400_000_000;
// Far below the 400 MB a whole read would hold (twice that as a string), far above the 4 MiB limit
// plus the runtime's own buffers.
const RSS_GROWTH_BOUND = 96 * 1024 * 1024;

let fake: FakeExchange;
beforeAll(async () => {
  fake = await startFakeExchange({ now: () => NOW, enforceLimits: false });
});
afterAll(async () => {
  await fake.close();
});

/** One page from the fake, which answers with a `bytes`-long body generated as it is read; the process's peak RSS meanwhile. */
async function hugePage(exchange: Exchange, fault: FaultOptions) {
  fake.inject(exchange, 'huge', { bytes: HUGE, ...fault });
  const governor = new Governor({ now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) }, { maxAttempts: 1, timeoutMs: 60_000 });
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const started = Date.now();
  try {
    const err = await adapters[exchange]
      .fetchPage({ symbol: 'BTC/USDT', interval: '1m', from: NOW - 3_600_000, to: NOW, now: NOW }, { fetch: governor.fetchFor(exchange), baseUrl: fake.baseUrls[exchange] })
      .catch((e: unknown) => e);
    return { err, ms: Date.now() - started, growth: Math.max(peak, process.memoryUsage.rss()) - before };
  } finally {
    clearInterval(sampler);
  }
}

describe('exchange bodies are size-limited', () => {
  it('a 400 MB body sent without Content-Length is cut off while streaming, with a typed error naming the exchange and limit', async () => {
    const { err, ms, growth } = await hugePage('binance', {});
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect(err).toMatchObject({ exchange: 'binance', limitBytes: MAX_BODY_BYTES });
    expect((err as Error).message).toMatch(new RegExp(`^binance: response body exceeds the ${MAX_BODY_BYTES}-byte limit`));
    expect(ms).toBeLessThan(5_000);
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('a body the governor reads itself (Kraken\'s rate limits come in HTTP 200 bodies) is bounded the same way', async () => {
    const { err, growth } = await hugePage('kraken', {});
    expect(err).toMatchObject({ constructor: BodyTooLargeError, exchange: 'kraken', limitBytes: MAX_BODY_BYTES });
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('a declared Content-Length over the limit is refused before any of the body is read', async () => {
    const { err, ms, growth } = await hugePage('okx', { declareLength: true });
    expect(err).toMatchObject({ constructor: BodyTooLargeError, exchange: 'okx' });
    expect((err as Error).message).toContain(`Content-Length ${HUGE}`);
    expect(ms).toBeLessThan(5_000);
    expect(growth).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('ordinary pages still read whole after a huge one', async () => {
    const page = await adapters.binance.fetchPage(
      { symbol: 'BTC/USDT', interval: '1m', from: NOW - 3_600_000, to: NOW, now: NOW },
      { fetch: new Governor({ now: Date.now, sleep: async () => {} }).fetchFor('binance'), baseUrl: fake.baseUrls.binance },
    );
    expect(page.candles.length).toBeGreaterThan(0);
  });
});
