import { describe, expect, it } from 'vitest';
import { bybit } from '../../../functions/exchanges/bybit.ts';
import { BannedError, MalformedResponseError, RateLimitedError, UnknownSymbolError } from '../../../functions/exchanges/errors.ts';
import { answer, fixture } from './canned.ts';

const BASE = 'https://api.bybit.com';
const H = 3_600_000;
const NEWEST = 1670608800000;
const req = { symbol: 'BTC/USD', interval: '1h' as const, from: 1670601600000, to: NEWEST, now: 1672025956592 };

describe('bybit adapter', () => {
  it('parses the documentation example newest-first into ascending candles', async () => {
    const canned = answer(fixture('bybit-kline.docs.json'));
    const page = await bybit.fetchPage(req, { fetch: canned.fetch, baseUrl: BASE });
    expect(page.candles).toEqual([
      { openTime: 1670601600000, open: '17086.5', high: '17088', low: '16978', close: '17071.5', volume: '6356', quoteVolume: '0.37288112', closed: true },
      { openTime: 1670605200000, open: '17071.5', high: '17071.5', low: '17061', close: '17071', volume: '4177', quoteVolume: '0.24469757', closed: true },
      { openTime: 1670608800000, open: '17071', high: '17073', low: '17027', close: '17055.5', volume: '268611', quoteVolume: '15.74462667', closed: true },
    ]);
    expect(Object.fromEntries(canned.urls[0]?.searchParams ?? [])).toEqual({
      category: 'spot', symbol: 'BTCUSD', interval: '60', start: String(req.from), end: String(req.to), limit: '1000',
    });
  });

  it('treats the newest row as forming until its hour is over by both clocks', async () => {
    const midHour = NEWEST + H / 2;
    const ours = await bybit.fetchPage({ ...req, now: midHour }, { fetch: answer(fixture('bybit-kline.docs.json')).fetch, baseUrl: BASE });
    expect(ours.candles.map((c) => c.closed)).toEqual([true, true, false]);
    // Our clock says the hour is over, Bybit's says not yet: still forming.
    const theirs = fixture('bybit-kline.docs.json').replace('1672025956592', String(midHour));
    const page = await bybit.fetchPage({ ...req, now: NEWEST + 2 * H }, { fetch: answer(theirs).fetch, baseUrl: BASE });
    expect(page.candles.at(-1)?.closed).toBe(false);
  });

  it('maps HTTP 200 retCode errors and the 403 ban', async () => {
    const call = (body: string, status = 200, headers?: Record<string, string>) =>
      bybit.fetchPage(req, { fetch: answer(body, { status, ...(headers ? { headers } : {}) }).fetch, baseUrl: BASE });
    await expect(call(fixture('bybit-error-unknown-symbol.json'))).rejects.toThrow(UnknownSymbolError);
    await expect(call('{"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1}', 200, {
      'X-Bapi-Limit-Reset-Timestamp': String(req.now + 1500),
    })).rejects.toMatchObject({ constructor: RateLimitedError, retryAfterMs: 1500 });
    await expect(call('Forbidden', 403, { 'content-type': 'text/plain' })).rejects.toMatchObject({
      constructor: BannedError, untilMs: req.now + bybit.bans.defaultMs,
    });
    await expect(call('{"retCode":10002,"retMsg":"invalid request, please check your server timestamp","result":{},"time":1}')).rejects.toMatchObject({
      status: 200, code: '10002',
    });
  });

  it('rejects an answer for another symbol and second timestamps', async () => {
    await expect(bybit.fetchPage({ ...req, symbol: 'ETH/USD' }, { fetch: answer(fixture('bybit-kline.docs.json')).fetch, baseUrl: BASE }))
      .rejects.toThrow(/answer is for symbol BTCUSD, not ETHUSD/);
    const seconds = fixture('bybit-kline.docs.json').replace('"1670608800000"', '"1670608800"');
    await expect(bybit.fetchPage(req, { fetch: answer(seconds).fetch, baseUrl: BASE })).rejects.toThrow(MalformedResponseError);
  });
});
