import { describe, expect, it } from 'vitest';
import { adapters } from '../../../functions/exchanges/index.ts';
import { answer, fixture } from './canned.ts';

const NOW = 1_700_000_000_000;
const list = async (exchange: keyof typeof adapters, body: string) => {
  const canned = answer(body);
  const instruments = await adapters[exchange].instruments({ fetch: canned.fetch, baseUrl: 'https://exchange.example' }, NOW);
  return { instruments, url: canned.urls[0]! };
};
const volumes = async (exchange: keyof typeof adapters, body: string) => {
  const canned = answer(body);
  const out = await adapters[exchange].quoteVolumes!({ fetch: canned.fetch, baseUrl: 'https://exchange.example' }, NOW);
  return { volumes: Object.fromEntries(out), url: canned.urls[0]! };
};

describe("each exchange's spot instrument list, from bodies in its documented shape", () => {
  it('binance: exchangeInfo with its status words, and every 24h ticker (weight 20 and 80)', async () => {
    const { instruments, url } = await list('binance', fixture('binance-exchange-info.docs-shape.json'));
    expect(url.pathname).toBe('/api/v3/exchangeInfo');
    expect(instruments).toEqual([
      { symbol: 'ETH/BTC', native: 'ETHBTC', key: 'ETHBTC', base: 'ETH', quote: 'BTC', trading: true, status: 'TRADING' },
      { symbol: 'BTC/USDT', native: 'BTCUSDT', key: 'BTCUSDT', base: 'BTC', quote: 'USDT', trading: true, status: 'TRADING' },
      { symbol: 'LUNA/USDT', native: 'LUNAUSDT', key: 'LUNAUSDT', base: 'LUNA', quote: 'USDT', trading: false, status: 'BREAK' },
    ]);
    const v = await volumes('binance', fixture('binance-ticker-24hr-mini.docs-shape.json'));
    expect(`${v.url.pathname}${v.url.search}`).toBe('/api/v3/ticker/24hr?type=MINI');
    expect(v.volumes).toEqual({ ETHBTC: 2852.18270511, BTCUSDT: 560112634.6824521, LUNAUSDT: 0 });
    const weight = (path: string) => adapters.binance.limits.route(new URL(path, 'https://api.binance.com')).weight;
    expect([weight('/api/v3/klines'), weight('/api/v3/exchangeInfo'), weight('/api/v3/ticker/24hr')]).toEqual([2, 20, 80]);
  });

  it('okx: SPOT instruments (live or not) and tickers, whose volCcy24h is the quote volume, each on its own budget', async () => {
    const { instruments, url } = await list('okx', fixture('okx-instruments-spot.docs-shape.json'));
    expect(`${url.pathname}${url.search}`).toBe('/api/v5/public/instruments?instType=SPOT');
    expect(instruments.map((i) => [i.symbol, i.native, i.trading, i.status])).toEqual([
      ['BTC/USDT', 'BTC-USDT', true, 'live'],
      ['ETH/BTC', 'ETH-BTC', false, 'suspend'],
    ]);
    expect((await volumes('okx', fixture('okx-tickers-spot.docs-shape.json'))).volumes).toEqual({ 'BTC-USDT': 2222, 'ETH-BTC': 130.5 });
    const bucket = (path: string) => adapters.okx.limits.route(new URL(path, 'https://www.okx.com')).key;
    expect([bucket('/api/v5/public/instruments'), bucket('/api/v5/market/tickers'), bucket('/api/v5/market/candles')]).toEqual([
      'okx:instruments',
      'okx:tickers',
      'okx:candles',
    ]);
  });

  it('bybit: instruments-info and tickers of category spot, turnover24h as the quote volume', async () => {
    const { instruments, url } = await list('bybit', fixture('bybit-instruments-info-spot.docs-shape.json'));
    expect(`${url.pathname}${url.search}`).toBe('/v5/market/instruments-info?category=spot');
    expect(instruments.map((i) => [i.symbol, i.native, i.trading, i.status])).toEqual([
      ['BTC/USDT', 'BTCUSDT', true, 'Trading'],
      ['NEW/USDT', 'NEWUSDT', false, 'PreLaunch'],
    ]);
    expect((await volumes('bybit', fixture('bybit-tickers-spot.docs-shape.json'))).volumes).toEqual({ BTCUSDT: 243765620.65899866, NEWUSDT: 0 });
  });

  it('coinbase: products, a delisted one not trading; it has no one-call volume list', async () => {
    const { instruments, url } = await list('coinbase', fixture('coinbase-products.docs-shape.json'));
    expect(url.pathname).toBe('/products');
    expect(instruments.map((i) => [i.symbol, i.native, i.trading, i.status])).toEqual([
      ['BTC/USD', 'BTC-USD', true, 'online'],
      ['REP/USD', 'REP-USD', false, 'delisted, trading disabled'],
    ]);
    expect(adapters.coinbase.quoteVolumes).toBeUndefined();
  });

  it("kraken: AssetPairs in candlekeep's names (XBT is BTC, XDG is DOGE), dark pools left out; 24h volume times VWAP by pair key", async () => {
    const { instruments, url } = await list('kraken', fixture('kraken-asset-pairs.docs-shape.json'));
    expect(url.pathname).toBe('/0/public/AssetPairs');
    expect(instruments).toEqual([
      { symbol: 'ETH/BTC', native: 'ETHXBT', key: 'XETHXXBT', base: 'ETH', quote: 'BTC', trading: true, status: 'online' },
      { symbol: 'BTC/USD', native: 'XBTUSD', key: 'XXBTZUSD', base: 'BTC', quote: 'USD', trading: true, status: 'online' },
      { symbol: 'DOGE/USD', native: 'XDGUSD', key: 'XDGUSD', base: 'DOGE', quote: 'USD', trading: false, status: 'cancel_only' },
    ]);
    // The native id of each is what the klines adapter asks for.
    expect(instruments.map((i) => adapters.kraken.nativeSymbol(i.symbol))).toEqual(['ETHXBT', 'XBTUSD', 'XDGUSD']);
    const { volumes: v } = await volumes('kraken', fixture('kraken-ticker.docs-shape.json'));
    expect(v.XXBTZUSD).toBeCloseTo(4412.73601799 * 30689.13205, 2);
    expect(v.XETHXXBT).toBeCloseTo(2049 * 0.05235, 6);
  });

  it("reads a listing's error answer as the exchange's error, and a wrong shape as malformed", async () => {
    await expect(list('kraken', '{"error":["EGeneral:Too many requests"]}')).rejects.toThrow(/kraken: rate limited/);
    await expect(list('okx', '{"code":"50011","msg":"Too Many Requests","data":[]}')).rejects.toThrow(/okx: rate limited/);
    await expect(list('binance', '{"symbols":"none"}')).rejects.toThrow(/binance: malformed response: unexpected shape: symbols/);
  });
});
