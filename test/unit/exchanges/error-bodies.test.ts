import { describe, expect, it } from 'vitest';
import type { Exchange } from '../../../functions/candles/candle.ts';
import {
  BadRequestError,
  BannedError,
  ExchangeError,
  RateLimitedError,
  UnknownSymbolError,
  UnsupportedIntervalError,
} from '../../../functions/exchanges/errors.ts';
import { Governor } from '../../../functions/exchanges/governor.ts';
import { adapters } from '../../../functions/exchanges/index.ts';
import { answer, fixture } from './canned.ts';

const NOW = Date.UTC(2024, 0, 1, 12);
const req = { symbol: 'BTC/USDT', interval: '1m' as const, from: NOW - 3_600_000, to: NOW, now: NOW };

type ErrorClass = abstract new (...args: never[]) => ExchangeError;

// Every error body the exchanges document, with the class a caller branches on and the text it must keep.
const DOCUMENTED: [Exchange, string, number, ErrorClass, string][] = [
  ['binance', 'binance-error-invalid-symbol.docs.json', 400, UnknownSymbolError, 'Invalid symbol.'],
  ['binance', 'binance-error-invalid-interval.docs.json', 400, UnsupportedIntervalError, 'Invalid interval.'],
  ['binance', 'binance-error-bad-parameter.docs.json', 400, BadRequestError, "Not all sent parameters were read; read '5' parameter(s)"],
  ['binance', 'binance-error-too-much-weight.docs.json', 429, RateLimitedError, 'Too much request weight used; current limit is 6000'],
  ['binance', 'binance-error-banned.docs.json', 418, BannedError, 'IP banned until 1732147200000'],
  ['okx', 'okx-error-rate-limit.docs.json', 429, RateLimitedError, 'Too Many Requests'],
  ['okx', 'okx-error-unknown-instrument.json', 200, UnknownSymbolError, "Instrument ID doesn't exist."],
  ['okx', 'okx-error-bad-bar.json', 200, UnsupportedIntervalError, 'Parameter bar error'],
  ['okx', 'okx-error-bad-parameter.json', 200, BadRequestError, 'Parameter after error'],
  ['bybit', 'bybit-error-unknown-symbol.json', 200, UnknownSymbolError, 'Not supported symbols'],
  ['bybit', 'bybit-error-rate-limit.json', 200, RateLimitedError, 'Too many visits!'],
  ['bybit', 'bybit-error-params.json', 200, BadRequestError, 'params error: start time is greater than end time'],
  ['coinbase', 'coinbase-error-not-found.json', 404, UnknownSymbolError, 'NotFound'],
  ['coinbase', 'coinbase-error-rate-limit.json', 429, RateLimitedError, 'Public rate limit exceeded'],
  ['coinbase', 'coinbase-error-bad-range.json', 400, BadRequestError, 'Count of aggregations requested exceeds 300'],
  ['kraken', 'kraken-error-unknown-pair.json', 200, UnknownSymbolError, 'EQuery:Unknown asset pair'],
  ['kraken', 'kraken-error-rate-limit.json', 200, RateLimitedError, 'EGeneral:Too many requests'],
  ['kraken', 'kraken-error-invalid-arguments.json', 200, BadRequestError, 'EGeneral:Invalid arguments'],
];

describe('documented error bodies', () => {
  it.each(DOCUMENTED)('%s %s (HTTP %i) is a %o that keeps the exchange\'s text', async (exchange, file, status, kind, text) => {
    const adapter = adapters[exchange];
    const err = await adapter.fetchPage(req, { fetch: answer(fixture(file), { status }).fetch, baseUrl: adapter.baseUrl }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(kind);
    expect((err as ExchangeError).exchange).toBe(exchange);
    expect((err as Error).message).toContain(text);
  });

  it('never classes a refused argument as retryable: Kraken\'s EGeneral:Invalid arguments is a bad request', async () => {
    const err = await adapters.kraken
      .fetchPage(req, { fetch: answer(fixture('kraken-error-invalid-arguments.json')).fetch, baseUrl: adapters.kraken.baseUrl })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ constructor: BadRequestError, status: 200, code: 'EGeneral:Invalid arguments', exchangeMessage: 'EGeneral:Invalid arguments' });
  });
});

describe('errors the governor raises keep the exchange\'s text', () => {
  const governed = (exchange: Exchange, body: string, status: number, headers: Record<string, string> = {}) => {
    const canned = answer(body, { status, headers });
    const governor = new Governor({ now: () => NOW, sleep: async () => {}, fetch: canned.fetch }, { maxAttempts: 1 });
    const adapter = adapters[exchange];
    return adapter.fetchPage(req, { fetch: governor.fetchFor(exchange), baseUrl: adapter.baseUrl }).catch((e: unknown) => e);
  };

  it('a 429 names its status, its attempts and what the exchange said', async () => {
    const err = await governed('okx', fixture('okx-error-rate-limit.docs.json'), 429);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as Error).message).toMatch(/HTTP 429 after 1 attempts: Too Many Requests \(code 50011\)/);
  });

  it('a rate limit sent with HTTP 200 (Kraken) keeps its error string', async () => {
    const err = await governed('kraken', fixture('kraken-error-rate-limit.json'), 200);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as Error).message).toContain('EGeneral:Too many requests');
  });

  it('a ban keeps the message and the end it states', async () => {
    const err = await governed('binance', fixture('binance-error-banned.docs.json'), 418, { 'Retry-After': '60' });
    expect(err).toMatchObject({ constructor: BannedError, untilMs: 1732147200000 });
    expect((err as Error).message).toContain('Way too much request weight used; IP banned until 1732147200000');
  });
});
