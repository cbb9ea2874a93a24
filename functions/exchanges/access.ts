import type { Exchange } from '../candles/candle.ts';
import type { Governor } from '../exchanges/governor.ts';
import { resolveBaseUrls } from '../exchanges/index.ts';
import type { FetchDeps } from '../exchanges/types.ts';

/** What every exchange call needs: the governor (budgets, bans, retries), where each exchange lives, and a clock. */
export interface ExchangeAccess {
  governor: Governor;
  baseUrls: Record<Exchange, string>;
  now(): number;
}

export function pageDeps(access: ExchangeAccess, exchange: Exchange, signal?: AbortSignal): FetchDeps {
  const governed = access.governor.fetchFor(exchange);
  return {
    baseUrl: access.baseUrls[exchange],
    // The signal lets a worker be stopped mid-chunk (a deadline, a test killing it) without waiting for its pages.
    fetch: signal ? (input, init) => governed(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal }) : governed,
  };
}

const EXCHANGES: readonly Exchange[] = ['binance', 'okx', 'bybit', 'coinbase', 'kraken'];

/** `CANDLEKEEP_BINANCE_URL` etc.: point an exchange at the fake exchange, a proxy or a testnet. */
export function baseUrlsFromEnv(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<Exchange, string | undefined>> = {}): Record<Exchange, string> {
  const fromEnv = Object.fromEntries(EXCHANGES.map((e) => [e, env[`CANDLEKEEP_${e.toUpperCase()}_URL`]]));
  return resolveBaseUrls({ ...fromEnv, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
}
