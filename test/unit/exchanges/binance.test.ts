import { describe, expect, it } from 'vitest';
import { binance } from '../../../functions/exchanges/binance.ts';
import {
  BadRequestError,
  BannedError,
  ExchangeHttpError,
  MalformedResponseError,
  RateLimitedError,
  UnknownSymbolError,
  UnsupportedIntervalError,
} from '../../../functions/exchanges/errors.ts';
import { CLOUDFLARE_PAGE, answer, fixture } from './canned.ts';

const BASE = 'https://api.binance.com';
const WEEK_OPEN = 1499040000000; // Monday 2017-07-03, the docs example
const WEEK_CLOSE = 1499644799999;
const req = { symbol: 'ETH/BTC', interval: '1w' as const, from: WEEK_OPEN, to: WEEK_OPEN + 30 * 86_400_000, now: WEEK_CLOSE + 1 };

describe('binance adapter', () => {
  it('parses the documentation example with its exact decimal text', async () => {
    const canned = answer(fixture('binance-klines.docs.json'));
    const page = await binance.fetchPage(req, { fetch: canned.fetch, baseUrl: BASE });
    expect(page.candles).toEqual([
      {
        openTime: WEEK_OPEN, open: '0.01634790', high: '0.80000000', low: '0.01575800', close: '0.01577100',
        volume: '148976.11427815', quoteVolume: '2434.19055334', trades: 308, closed: true,
        takerBuyVolume: '1756.87402397', takerBuyQuoteVolume: '28.46694368',
      },
    ]);
    // The next week may exist: the range goes on until a page comes back empty or `now` is reached.
    expect(page.next).toEqual({ from: WEEK_CLOSE + 1 });
    expect(page.weight).toBe(2);
  });

  it('asks for the native symbol and interval, walking forward from startTime', async () => {
    const canned = answer('[]');
    await binance.fetchPage(req, { fetch: canned.fetch, baseUrl: BASE });
    const url = canned.urls[0];
    expect(url?.origin + (url?.pathname ?? '')).toBe('https://api.binance.com/api/v3/klines');
    expect(Object.fromEntries(url?.searchParams ?? [])).toEqual({
      symbol: 'ETHBTC', interval: '1w', startTime: String(req.from), endTime: String(req.to), limit: '1000',
    });
  });

  it('flags the candle open until its closeTime has passed', async () => {
    const body = fixture('binance-klines.docs.json');
    const atClose = await binance.fetchPage({ ...req, now: WEEK_CLOSE }, { fetch: answer(body).fetch, baseUrl: BASE });
    const after = await binance.fetchPage({ ...req, now: WEEK_CLOSE + 1 }, { fetch: answer(body).fetch, baseUrl: BASE });
    expect(atClose.candles[0]?.closed).toBe(false);
    expect(after.candles[0]?.closed).toBe(true);
  });

  it('rejects rows whose closeTime does not fit the requested interval', async () => {
    const page = binance.fetchPage({ ...req, interval: '1d' }, { fetch: answer(fixture('binance-klines.docs.json')).fetch, baseUrl: BASE });
    await expect(page).rejects.toThrow(MalformedResponseError);
    await expect(page).rejects.toThrow(/closeTime 1499644799999 does not end a 1d candle/);
  });

  it('rejects open times given in seconds instead of milliseconds', async () => {
    const body = fixture('binance-klines.docs.json').replace('1499040000000', '1499040000');
    await expect(binance.fetchPage(req, { fetch: answer(body).fetch, baseUrl: BASE })).rejects.toThrow(
      /not a millisecond UTC time .*seconds/,
    );
  });

  it('sorts and de-duplicates rows', async () => {
    const row = (t: number) => `[${t},"1.0","1.0","1.0","1.0","2.5",${t + 59_999},"2.5",1,"0","0","0"]`;
    const t0 = Date.UTC(2024, 0, 1);
    const body = `[${row(t0 + 120_000)},${row(t0)},${row(t0 + 60_000)},${row(t0)}]`;
    const page = await binance.fetchPage(
      { symbol: 'BTC/USDT', interval: '1m', from: t0, to: t0 + 600_000, now: t0 + 150_000 },
      { fetch: answer(body).fetch, baseUrl: BASE },
    );
    expect(page.candles.map((c) => [c.openTime, c.closed])).toEqual([[t0, true], [t0 + 60_000, true], [t0 + 120_000, false]]);
  });

  it('ends the range at the forming candle and goes on after any non-empty page', async () => {
    const t0 = Date.UTC(2024, 0, 1);
    const row = (t: number) => `[${t},"1","1","1","1","1",${t + 59_999},"1",1,"0","0","0"]`;
    const at = (body: string, now: number) =>
      binance.fetchPage({ symbol: 'BTC/USDT', interval: '1m', from: t0, to: t0 + 86_400_000, now }, { fetch: answer(body).fetch, baseUrl: BASE });
    expect((await at(`[${row(t0)},${row(t0 + 60_000)}]`, t0 + 90_000)).next).toBeUndefined();
    expect((await at(`[${row(t0)},${row(t0 + 60_000)}]`, t0 + 3_600_000)).next).toEqual({ from: t0 + 120_000 });
    expect((await at('[]', t0 + 3_600_000)).next).toBeUndefined();
  });

  it('returns a cursor after a full page', async () => {
    const t0 = Date.UTC(2024, 0, 1);
    const rows = Array.from({ length: 1000 }, (_, i) => {
      const t = t0 + i * 60_000;
      return `[${t},"1","1","1","1","1",${t + 59_999},"1",1,"0","0","0"]`;
    });
    const page = await binance.fetchPage(
      { symbol: 'BTC/USDT', interval: '1m', from: t0, to: t0 + 5000 * 60_000, now: t0 + 9000 * 60_000 },
      { fetch: answer(`[${rows.join(',')}]`).fetch, baseUrl: BASE },
    );
    expect(page.candles).toHaveLength(1000);
    expect(page.next).toEqual({ from: t0 + 1000 * 60_000 });
  });

  it('maps its error codes to typed errors', async () => {
    const call = (body: string, status: number, headers?: Record<string, string>) =>
      binance.fetchPage(req, { fetch: answer(body, { status, ...(headers ? { headers } : {}) }).fetch, baseUrl: BASE });
    await expect(call(fixture('binance-error-invalid-symbol.docs.json'), 400)).rejects.toThrow(UnknownSymbolError);
    await expect(call('{"code":-1120,"msg":"Invalid interval."}', 400)).rejects.toThrow(UnsupportedIntervalError);
    await expect(call('{"code":-1003,"msg":"Too much request weight used"}', 429, { 'Retry-After': '7' })).rejects.toMatchObject({
      constructor: RateLimitedError, retryAfterMs: 7000,
    });
    await expect(call('{"code":-1003,"msg":"Way too much request weight used; IP banned until 1499644999999."}', 418, { 'Retry-After': '60' }))
      .rejects.toMatchObject({ constructor: BannedError, untilMs: 1499644999999 });
    await expect(call('{"code":-1104,"msg":"Not all sent parameters were read."}', 400)).rejects.toMatchObject({
      constructor: BadRequestError, status: 400, code: '-1104', exchangeMessage: 'Not all sent parameters were read.',
    });
  });

  it('reports HTML and truncated JSON as malformed, with an excerpt', async () => {
    const html = binance.fetchPage(req, { fetch: answer(CLOUDFLARE_PAGE, { headers: { 'content-type': 'text/html' } }).fetch, baseUrl: BASE });
    await expect(html).rejects.toThrow(MalformedResponseError);
    await expect(html).rejects.toThrow(/expected JSON, got an HTML page.*Just a moment/);
    const body = fixture('binance-klines.docs.json');
    await expect(binance.fetchPage(req, { fetch: answer(body.slice(0, 60)).fetch, baseUrl: BASE })).rejects.toThrow(
      /invalid or truncated JSON/,
    );
  });

  it('refuses a symbol that is not BASE/QUOTE before calling', async () => {
    const canned = answer('[]');
    await expect(binance.fetchPage({ ...req, symbol: 'ETHBTC' }, { fetch: canned.fetch, baseUrl: BASE })).rejects.toThrow(UnknownSymbolError);
    expect(canned.urls).toHaveLength(0);
  });
});
