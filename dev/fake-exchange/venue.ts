import type { Candle } from '../../functions/candles/candle.ts';
import type { Interval } from '../../functions/candles/intervals.ts';
import type { FakeMarket, SeriesGenerator } from './series.ts';

export type FaultKind = '429' | '418' | '500' | 'html' | 'truncated' | 'huge';
export interface FaultOptions {
  /** How many of the next responses get the fault (default 1). */
  count?: number;
  /** Retry-After for '429'/'418' (default 1 s / 120 s). */
  retryAfterSec?: number;
  /** Status for 'html' (default 502, a Cloudflare error page; 200 makes it an HTML page where JSON was due). */
  status?: number;
  /** Size of a 'huge' body (default 400 MB), generated while it is sent, never held whole. */
  bytes?: number;
  /** Send a 'huge' body with its Content-Length (default: chunked, so only reading reveals its size). */
  declareLength?: boolean;
}

export interface ExchangeStats {
  requests: number;
  /** 200 answers with data. */
  ok: number;
  /** 429s and the exchange's other "slow down" answers (OKX 50011, Kraken EGeneral:Too many requests, Bybit 10006). */
  rateLimited: number;
  /** Ban answers: Binance 418, Bybit 403. */
  banned: number;
  /** Validation errors (unknown symbol, bad interval, bad parameter). */
  errors: number;
  /** Injected faults served. */
  faults: number;
}

export interface Answer {
  status: number;
  body: string;
  headers?: Record<string, string>;
  outcome: keyof Omit<ExchangeStats, 'requests'>;
}

export const json = (status: number, value: unknown, outcome: Answer['outcome'], headers?: Record<string, string>): Answer => ({
  status, body: JSON.stringify(value), outcome, ...(headers ? { headers } : {}),
});

/** What every venue shares from the server: the price series, the clock's scale and the listing of each market. */
export interface VenueContext {
  gen: SeriesGenerator;
  /** False: nothing is rate-limited. */
  enforce: boolean;
  /** Rate-limit windows and bans run this many times faster than the real ones. */
  timeScale: number;
  /** Retry-After text for a wait of `ms` on the fake's clock. */
  retryAfter(ms: number): string;
  /** Open times of the first and the forming bucket of a series right now. */
  span(m: FakeMarket, interval: Interval, now: number): { first: number; last: number };
  /** A bucket without trades. */
  isHole(m: FakeMarket, interval: Interval, t: number): boolean;
}

/** One exchange as the fake serves it. */
export interface Venue {
  /** The answer to GET `path`, or undefined for a path this exchange does not serve. */
  answer(path: string, q: URLSearchParams, now: number): Answer | undefined;
  /** This exchange's own form of an injected '429', '418' or '500'. */
  fault(kind: '429' | '418' | '500', options: FaultOptions, now: number): Answer;
  /** The candle an adapter should make of bucket `t` as served now; undefined where none is served. */
  expected(m: FakeMarket, interval: Interval, t: number, now: number): Candle | undefined;
  /** How many of the newest rows are served, when not the whole history. */
  servedRows?: number;
  /** Forgets rate-limit state and bans. */
  reset(): void;
}

/** The Retry-After header of an injected fault. */
export const faultRetryAfter = (o: FaultOptions, defaultSec: number): Record<string, string> => ({ 'Retry-After': String(o.retryAfterSec ?? defaultSec) });

export const banMessage = (untilMs: number) =>
  `Way too much request weight used; IP banned until ${Math.round(untilMs)}. Please use WebSocket Streams for live updates to avoid bans.`;

/** An injected ban in Binance's words: 418 from Binance, a firewall's 403 from exchanges with no ban answer of their own. */
export function injectedBan(status: 418 | 403, o: FaultOptions, now: number): Answer {
  return json(status, { code: -1003, msg: banMessage(now + (o.retryAfterSec ?? 120) * 1000) }, 'faults', faultRetryAfter(o, 120));
}
