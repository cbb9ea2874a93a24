import { describe, expect, it } from 'vitest';
import { INTERVALS } from '../../../functions/candles/intervals.ts';
import { DEFAULT_BASE_URLS, resolveBaseUrls } from '../../../functions/exchanges/access.ts';
import { adapters } from '../../../functions/exchanges/index.ts';

describe('adapter registry', () => {
  it('has one adapter per exchange, each under its own id', () => {
    expect(Object.entries(adapters).map(([k, a]) => [k, a.id])).toEqual([
      ['binance', 'binance'], ['okx', 'okx'], ['bybit', 'bybit'], ['coinbase', 'coinbase'], ['kraken', 'kraken'],
    ]);
  });

  it('maps unified symbols to each exchange\'s own ids', () => {
    expect(Object.values(adapters).map((a) => a.nativeSymbol('BTC/USDT'))).toEqual(['BTCUSDT', 'BTC-USDT', 'BTCUSDT', 'BTC-USDT', 'XBTUSDT']);
    expect(adapters.kraken.nativeSymbol('BTC/USD')).toBe('XBTUSD');
    expect(adapters.coinbase.nativeSymbol('ETH/USD')).toBe('ETH-USD');
  });

  it('states which intervals each exchange offers', () => {
    const offered = Object.fromEntries(Object.values(adapters).map((a) => [a.id, INTERVALS.filter((i) => a.supports(i)).join(' ')]));
    expect(offered).toEqual({
      binance: '1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w',
      okx: '1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w',
      bybit: '1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w',
      coinbase: '1m 5m 15m 1h 6h 1d',
      kraken: '1m 5m 15m 30m 1h 4h 1d',
    });
  });

  it('defaults to the public hosts and takes validated overrides', () => {
    expect(resolveBaseUrls()).toEqual(DEFAULT_BASE_URLS);
    expect(resolveBaseUrls({ okx: 'http://127.0.0.1:4010/okx/', kraken: undefined })).toEqual({
      ...DEFAULT_BASE_URLS, okx: 'http://127.0.0.1:4010/okx',
    });
    expect(() => resolveBaseUrls({ binance: 'api.binance.com' })).toThrow(/base URL for binance: expected an http\(s\) URL/);
  });
});
