import { describe, expect, it } from 'vitest';
import { binance } from '../../../functions/exchanges/binance.ts';
import { okx } from '../../../functions/exchanges/okx.ts';

// A base URL may carry a path (a proxy, the fake exchange's `/okx` prefix): the request must still
// draw on the bucket and weight its endpoint has, or the governor lets through what the exchange refuses.
describe.each(['https://www.okx.com', 'http://127.0.0.1:9999/okx'])('okx limit routes under %s', (base) => {
  it.each([
    ['/api/v5/market/candles?instId=BTC-USDT', 'okx:candles'],
    ['/api/v5/market/history-candles?instId=BTC-USDT', 'okx:history'],
    ['/api/v5/public/instruments?instType=SPOT', 'okx:instruments'],
    ['/api/v5/market/tickers?instType=SPOT', 'okx:tickers'],
  ])('%s draws on %s', (path, bucket) => {
    expect(okx.limits.route(new URL(base + path))).toEqual({ key: bucket, weight: 1 });
  });
});

describe.each(['https://api.binance.com', 'http://127.0.0.1:9999/binance'])('binance weights under %s', (base) => {
  it.each([
    ['/api/v3/klines?symbol=BTCUSDT', 2],
    ['/api/v3/exchangeInfo', 20],
    ['/api/v3/ticker/24hr', 80],
  ])('%s weighs %d', (path, weight) => {
    expect(binance.limits.route(new URL(base + path))).toEqual({ key: 'binance', weight });
  });
});
