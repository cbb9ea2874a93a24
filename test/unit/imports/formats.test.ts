import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseImportFile } from '../../../functions/imports/formats.ts';

/*
 * Which fields each import format claims. freqtrade and CCXT rows define time and OHLCV only: a
 * row with more values (a script that appended something of its own) must not have them taken as
 * the quote volume, trade count or taker volumes that Binance's archives carry.
 */

const NOW = Date.UTC(2030, 0, 1);
const row = [1717200000000, '10.5', '11', '10', '10.2', '3', '31.5', '42', '1.5', '15.75'];
const json = (rows: unknown[]) => new TextEncoder().encode(JSON.stringify(rows));
const claimed = (c: object) => Object.keys(c).filter((k) => ['quoteVolume', 'trades', 'takerBuyVolume', 'takerBuyQuoteVolume', 'vwap'].includes(k));

describe('import formats claim only the fields they have', () => {
  it('CCXT JSON and CSV rows with extra values give OHLCV only', () => {
    const hints = { exchange: 'kraken', symbol: 'ADA/USD', interval: '15m' } as const;
    const j = parseImportFile('ohlcv.json', json([row]), hints, NOW);
    expect(j.candles).toEqual([{ openTime: row[0], open: '10.5', high: '11', low: '10', close: '10.2', volume: '3', closed: true }]);
    const c = parseImportFile('ohlcv.csv', new TextEncoder().encode(`timestamp,open,high,low,close,volume,x,y\n${row.slice(0, 8).join(',')}\n`), hints, NOW);
    expect(c.candles.map(claimed)).toEqual([[]]);
  });

  it('freqtrade json and jsongz rows with extra values give OHLCV only', () => {
    const j = parseImportFile('data/binance/ETH_USDT-5m.json', json([row]), {}, NOW);
    expect(j.candles.map(claimed)).toEqual([[]]);
    const gz = parseImportFile('data/binance/ETH_USDT-5m.json.gz', gzipSync(json([row])), {}, NOW);
    expect(gz.candles.map(claimed)).toEqual([[]]);
  });
});
