import { describe, expect, it } from 'vitest';
import { ExchangeHttpError, MalformedResponseError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from '../../../functions/exchanges/errors.ts';
import { kraken } from '../../../functions/exchanges/kraken.ts';
import { CLOUDFLARE_PAGE, answer, fixture } from './canned.ts';

const BASE = 'https://api.kraken.com';
const T0 = 1688671200000;
const req = { symbol: 'BTC/USD', interval: '1m' as const, from: T0, to: T0 + 3_600_000, now: 1688671400000 };

describe('kraken adapter', () => {
  it('maps BTC to XBT and finds the result under Kraken\'s own pair key', async () => {
    const canned = answer(fixture('kraken-ohlc.docs.json'));
    const page = await kraken.fetchPage(req, { fetch: canned.fetch, baseUrl: BASE });
    expect(Object.fromEntries(canned.urls[0]?.searchParams ?? [])).toEqual({ pair: 'XBTUSD', interval: '1', since: String(T0 / 1000 - 1) });
    expect(page.candles).toEqual([
      { openTime: 1688671200000, open: '30306.1', high: '30306.2', low: '30305.7', close: '30305.7', volume: '3.39243896', trades: 23, closed: true, vwap: '30306.1' },
      { openTime: 1688671260000, open: '30304.5', high: '30304.5', low: '30300.0', close: '30300.0', volume: '4.42996871', trades: 18, closed: true, vwap: '30300.0' },
      { openTime: 1688671320000, open: '30300.3', high: '30300.4', low: '30291.4', close: '30291.4', volume: '2.13024789', trades: 25, closed: true, vwap: '30294.7' },
      // The last row is always the forming candle.
      { openTime: 1688671380000, open: '30291.8', high: '30295.1', low: '30291.8', close: '30295.0', volume: '1.01836275', trades: 9, closed: false, vwap: '30293.8' },
    ]);
    expect(page.next).toBeUndefined();
  });

  it('states its limited depth and the intervals it lacks', () => {
    expect(kraken.historyDepth).toEqual({ maxCandles: 720 });
    expect(kraken.nativeSymbol('ETH/USDT')).toBe('ETHUSDT');
    expect(kraken.nativeSymbol('DOGE/BTC')).toBe('XDGXBT');
    expect(['3m', '2h', '6h', '12h', '1w'].filter((i) => kraken.supports(i as never))).toEqual([]);
    return expect(kraken.fetchPage({ ...req, interval: '2h' }, { fetch: answer('{}').fetch, baseUrl: BASE })).rejects.toThrow(UnsupportedIntervalError);
  });

  it('maps the error array that comes with HTTP 200', async () => {
    const call = (body: string) => kraken.fetchPage(req, { fetch: answer(body).fetch, baseUrl: BASE });
    await expect(call(fixture('kraken-error-unknown-pair.json'))).rejects.toThrow(UnknownSymbolError);
    await expect(call('{"error":["EGeneral:Too many requests"]}')).rejects.toThrow(RateLimitedError);
    await expect(call('{"error":["EService:Unavailable"]}')).rejects.toMatchObject({ constructor: ExchangeHttpError, status: 200, code: 'EService:Unavailable' });
  });

  it('reports Cloudflare pages clearly, by status', async () => {
    const ok = kraken.fetchPage(req, { fetch: answer(CLOUDFLARE_PAGE, { headers: { 'content-type': 'text/html' } }).fetch, baseUrl: BASE });
    await expect(ok).rejects.toThrow(MalformedResponseError);
    await expect(ok).rejects.toThrow(/HTML page \(HTTP 200\).*Just a moment/);
    await expect(kraken.fetchPage(req, { fetch: answer(CLOUDFLARE_PAGE, { status: 520, headers: { 'content-type': 'text/html' } }).fetch, baseUrl: BASE }))
      .rejects.toMatchObject({ constructor: ExchangeHttpError, status: 520 });
  });

  it('rejects millisecond times where seconds are due, and a result with two pair keys', async () => {
    const ms = fixture('kraken-ohlc.docs.json').replace('1688671200,', '1688671200000,');
    await expect(kraken.fetchPage(req, { fetch: answer(ms).fetch, baseUrl: BASE })).rejects.toThrow(/in seconds .*milliseconds/);
    const two = '{"error":[],"result":{"XXBTZUSD":[],"XETHZUSD":[],"last":1}}';
    await expect(kraken.fetchPage(req, { fetch: answer(two).fetch, baseUrl: BASE })).rejects.toThrow(/expected one pair key/);
  });
});
