import { describe, expect, it } from 'vitest';
import { COINBASE_MAX_BUCKETS, coinbase } from '../../../functions/exchanges/coinbase.ts';
import { BadRequestError, ExchangeHttpError, MalformedResponseError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from '../../../functions/exchanges/errors.ts';
import { answer, fixture } from './canned.ts';

const BASE = 'https://api.exchange.coinbase.com';
const T = 1415398740000; // the docs example's minute
const req = { symbol: 'BTC/USD', interval: '1m' as const, from: T, to: T + 60_000, now: T + 600_000 };

describe('coinbase adapter', () => {
  it('rejects the verbatim documentation example, whose time is not a bucket start', async () => {
    await expect(coinbase.fetchPage(req, { fetch: answer(fixture('coinbase-candles.docs.json')).fetch, baseUrl: BASE }))
      .rejects.toThrow(/openTime 1415398768000 .* is not aligned to 1m/);
  });

  it('reads low/high before open/close and keeps the JSON numbers\' own digits', async () => {
    const page = await coinbase.fetchPage(req, { fetch: answer(fixture('coinbase-candles.docs-aligned.json')).fetch, baseUrl: BASE });
    expect(page.candles).toEqual([{ openTime: T, open: '0.35', high: '4.2', low: '0.32', close: '4.2', volume: '12.3', closed: true }]);
  });

  it('never round-trips prices through a float and expands exponent notation', async () => {
    const body = `[[${T / 1000 + 60},68000.5,68200.000,68123.10,68100,1e-8],[${T / 1000},0.1,0.30000000000000004,0.2,0.3,1.5E-7]]`;
    const page = await coinbase.fetchPage({ ...req, now: T + 90_000 }, { fetch: answer(body).fetch, baseUrl: BASE });
    expect(page.candles).toEqual([
      { openTime: T, open: '0.2', high: '0.30000000000000004', low: '0.1', close: '0.3', volume: '0.00000015', closed: true },
      { openTime: T + 60_000, open: '68123.10', high: '68200.000', low: '68000.5', close: '68100', volume: '0.00000001', closed: false },
    ]);
  });

  it('reports intervals Coinbase lacks without calling it', async () => {
    for (const interval of ['3m', '30m', '2h', '4h', '12h', '1w'] as const) {
      const canned = answer('[]');
      expect(coinbase.supports(interval)).toBe(false);
      await expect(coinbase.fetchPage({ ...req, interval }, { fetch: canned.fetch, baseUrl: BASE })).rejects.toThrow(UnsupportedIntervalError);
      expect(canned.urls).toHaveLength(0);
    }
  });

  it('asks for at most 300 buckets with ISO times and pages backward by time', async () => {
    const to = Date.UTC(2024, 0, 2);
    const canned = answer('[]');
    const page = await coinbase.fetchPage({ ...req, from: to - 1000 * 60_000, to, now: to + 1 }, { fetch: canned.fetch, baseUrl: BASE });
    const q = canned.urls[0]?.searchParams;
    const start = Date.parse(q?.get('start') ?? '');
    expect(canned.urls[0]?.pathname).toBe('/products/BTC-USD/candles');
    expect(q?.get('granularity')).toBe('60');
    expect(q?.get('end')).toBe('2024-01-02T00:00:00.000Z');
    expect((to - start) / 60_000 + 1).toBe(COINBASE_MAX_BUCKETS);
    // An empty window (no trades) still moves on: holes say nothing about older data.
    expect(page.next).toEqual({ to: start - 1 });
  });

  it('maps errors and rejects millisecond times', async () => {
    const call = (body: string, status: number, headers?: Record<string, string>) =>
      coinbase.fetchPage(req, { fetch: answer(body, { status, ...(headers ? { headers } : {}) }).fetch, baseUrl: BASE });
    await expect(call(fixture('coinbase-error-not-found.json'), 404)).rejects.toThrow(UnknownSymbolError);
    await expect(call('{"message":"Public rate limit exceeded"}', 429, { 'Retry-After': '2' })).rejects.toMatchObject({
      constructor: RateLimitedError, retryAfterMs: 2000,
    });
    await expect(call('{"message":"granularity too small for the requested time range. Count of aggregations requested exceeds 300"}', 400))
      .rejects.toThrow(BadRequestError);
    await expect(call(`[[${T},0.32,4.2,0.35,4.2,12.3]]`, 200)).rejects.toThrow(MalformedResponseError);
    await expect(call(`[[${T},0.32,4.2,0.35,4.2,12.3]]`, 200)).rejects.toThrow(/in seconds .*milliseconds/);
  });
});
