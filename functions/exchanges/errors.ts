import type { Exchange } from '../candles/candle.ts';

/** Base class of every failure an exchange adapter or the governor reports; `exchange` says whose answer it was. */
export class ExchangeError extends Error {
  readonly exchange: Exchange;
  constructor(exchange: Exchange, message: string, options?: ErrorOptions) {
    super(`${exchange}: ${message}`, options);
    this.name = new.target.name;
    this.exchange = exchange;
  }
}

/** The exchange has no candles of this interval; callers must aggregate from a finer one rather than guess. */
export class UnsupportedIntervalError extends ExchangeError {
  readonly interval: string;
  constructor(exchange: Exchange, interval: string, detail?: string) {
    super(exchange, `interval ${interval} is not offered by this exchange${detail ? ` (${detail})` : ''}`);
    this.interval = interval;
  }
}

export class UnknownSymbolError extends ExchangeError {
  readonly symbol: string;
  constructor(exchange: Exchange, symbol: string, detail?: string) {
    super(exchange, `unknown symbol ${symbol}${detail ? ` (${detail})` : ''}`);
    this.symbol = symbol;
  }
}

/** Over the exchange's request budget; no call should be made for `retryAfterMs`. */
export class RateLimitedError extends ExchangeError {
  readonly retryAfterMs: number;
  constructor(exchange: Exchange, retryAfterMs: number, detail?: string) {
    super(exchange, `rate limited, retry after ${retryAfterMs} ms${detail ? ` (${detail})` : ''}`);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The exchange banned this IP (Binance 418, Bybit 403); every call fails until `untilMs` (epoch ms). */
export class BannedError extends ExchangeError {
  readonly untilMs: number;
  constructor(exchange: Exchange, untilMs: number, detail?: string) {
    super(exchange, `IP banned until ${new Date(untilMs).toISOString()}${detail ? ` (${detail})` : ''}`);
    this.untilMs = untilMs;
  }
}

/** An error answer in the exchange's own format (any HTTP status, including 200 with an error body). */
export class ExchangeHttpError extends ExchangeError {
  readonly status: number;
  readonly code: string | undefined;
  readonly exchangeMessage: string;
  constructor(exchange: Exchange, status: number, code: string | undefined, exchangeMessage: string, what = '') {
    super(exchange, `${what}HTTP ${status}${code !== undefined ? ` code ${code}` : ''}: ${exchangeMessage}`);
    this.status = status;
    this.code = code;
    this.exchangeMessage = exchangeMessage;
  }
}

/** A body that is not what the endpoint documents: an HTML page, truncated JSON, a shape or value mismatch. */
export class MalformedResponseError extends ExchangeError {
  readonly excerpt: string;
  constructor(exchange: Exchange, problem: string, excerpt: string) {
    super(exchange, `malformed response: ${problem}; body starts ${JSON.stringify(excerpt)}`);
    this.excerpt = excerpt;
  }
}

/** No HTTP answer at all (DNS, connection reset, timeout) after the governor's bounded retries. */
export class ExchangeNetworkError extends ExchangeError {
  constructor(exchange: Exchange, detail: string, options?: ErrorOptions) {
    super(exchange, `network failure: ${detail}`, options);
  }
}

/**
 * The exchange refused the request's arguments (Kraken `EGeneral:Invalid arguments`, OKX 51000,
 * Bybit 10001, Binance -11xx, Coinbase 400): the same request fails the same way, so it is never retried.
 */
export class BadRequestError extends ExchangeHttpError {
  constructor(exchange: Exchange, status: number, code: string | undefined, exchangeMessage: string) {
    super(exchange, status, code, exchangeMessage, 'request refused as invalid, ');
  }
}

/** A body larger than the limit: reading stopped there and the connection was dropped. */
export class BodyTooLargeError extends ExchangeError {
  readonly limitBytes: number;
  constructor(exchange: Exchange, limitBytes: number, detail: string) {
    super(exchange, `response body exceeds the ${limitBytes}-byte limit (${detail}); reading stopped`);
    this.limitBytes = limitBytes;
  }
}
