import { describe, expect, it } from 'vitest';
import { parseMarkets } from '../../functions/config/markets.ts';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { cdkJsonContext, createApp } from './support.ts';

const btc = { exchange: 'binance', symbol: 'BTC/USDT', intervals: ['1m', '1h'], start: '2024-01-01' };

describe('parseMarkets', () => {
  it('accepts the markets in cdk.json', () => {
    const markets = parseMarkets(cdkJsonContext['candlekeep:markets']);
    expect(markets.map((m) => `${m.exchange} ${m.symbol}`)).toEqual([
      'binance BTC/USDT',
      'okx ETH/USDT',
      'coinbase BTC/USD',
    ]);
  });

  it('accepts a full ISO timestamp as start and JSON text from `cdk -c`', () => {
    const text = JSON.stringify([{ ...btc, start: '2024-01-01T00:00:00Z' }]);
    expect(parseMarkets(text)).toEqual([{ ...btc, start: '2024-01-01T00:00:00Z' }]);
  });

  it.each([
    [{ ...btc, intervals: ['1m', '2m'] }, 'candlekeep:markets[1].intervals[1]: unknown interval "2m"'],
    [{ ...btc, exchange: 'ftx' }, 'candlekeep:markets[1].exchange: unknown exchange "ftx"'],
    [{ ...btc, symbol: 'btcusdt' }, 'candlekeep:markets[1].symbol: expected a unified symbol BASE/QUOTE'],
    [{ ...btc, intervals: [] }, 'candlekeep:markets[1].intervals: list at least one interval'],
    [{ ...btc, intervals: ['1m', '1m'] }, 'candlekeep:markets[1].intervals: intervals must not repeat'],
    [{ ...btc, start: '01/02/2024' }, 'candlekeep:markets[1].start: "01/02/2024" is neither an ISO 8601 time (2024-03-01T00:00:00Z) nor epoch milliseconds'],
    [{ ...btc, start: '1999-12-31' }, 'candlekeep:markets[1].start: 1999-12-31 is outside the supported range: times must be between 2000-01-01 and 2100-01-01'],
    [{ ...btc, start: '1704067200' }, 'candlekeep:markets[1].start: 1704067200 looks like epoch seconds'],
    [{ ...btc, interval: '1m' }, 'candlekeep:markets[1]: Unrecognized key: "interval"'],
    [{ ...btc, retentionDays: { '1m': 0 } }, 'candlekeep:markets[1].retentionDays.1m: retention must keep at least 1 day'],
    [{ ...btc, retentionDays: { '1m': '365d' } }, 'candlekeep:markets[1].retentionDays.1m: expected a whole number of days from 1 to 36500, or null for forever; got "365d"'],
    [{ ...btc, retentionDays: { '1d': 30 } }, "candlekeep:markets[1].retentionDays.1d: 1d is not among this market's intervals (1m 1h)"],
    [{ ...btc, retentionDays: { '2m': 30 } }, 'candlekeep:markets[1].retentionDays: Unrecognized key: "2m"'],
  ])('names the entry and field of a bad market: %j', (bad, message) => {
    const good = { ...btc, exchange: 'okx' };
    expect(() => parseMarkets([good, bad])).toThrow(message);
  });

  it('accepts retention per interval and a default, null for forever', () => {
    const withRetention = { ...btc, retentionDays: { default: 30, '1m': 365, '1h': null } };
    expect(parseMarkets([withRetention])).toEqual([withRetention]);
  });

  it('rejects the same market listed twice', () => {
    expect(() => parseMarkets([btc, { ...btc, intervals: ['1d'] }])).toThrow(
      'candlekeep:markets[1].symbol: binance BTC/USDT is already listed at index 0',
    );
  });

  it('fails clearly when the key is missing or not JSON', () => {
    expect(() => parseMarkets(undefined)).toThrow('candlekeep:markets is missing');
    expect(() => parseMarkets('[{')).toThrow('candlekeep:markets is not valid JSON');
  });
});

describe('synth with bad context', () => {
  const markets = cdkJsonContext['candlekeep:markets'] as object[];

  it('throws naming the bad market entry', () => {
    const app = createApp({ 'candlekeep:markets': [...markets, { ...btc, symbol: 'ETH/USDT', intervals: ['2m'] }] });
    expect(() => new CandlekeepStack(app, 'Bad')).toThrow(
      `candlekeep:markets[${markets.length}].intervals[0]: unknown interval "2m"; expected one of 1m 3m 5m`,
    );
  });

  it('throws on an unknown stage', () => {
    const app = createApp({ 'candlekeep:stage': 'staging' });
    expect(() => new CandlekeepStack(app, 'Bad')).toThrow('candlekeep:stage: unknown stage "staging"; expected dev or prod');
  });

  it('throws on a malformed alarm email', () => {
    const app = createApp({ 'candlekeep:alarmEmail': 'ops-at-example' });
    expect(() => new CandlekeepStack(app, 'Bad')).toThrow('candlekeep:alarmEmail: "ops-at-example" is not an email address');
  });
});
