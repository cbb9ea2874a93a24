import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import { EXCHANGES, type Exchange } from '../candles/candle.ts';
import type { Db } from '../store/db.ts';
import { Governor } from './governor.ts';
import { adapters } from './index.ts';
import { PostgresBudgetStore } from './postgres-budget-store.ts';
import type { FetchDeps } from './types.ts';

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

/** The exchanges' public REST hosts, as each declares it; tests and LocalStack runs point these at the fake exchange. */
export const DEFAULT_BASE_URLS: Readonly<Record<Exchange, string>> = Object.fromEntries(
  EXCHANGES.map((e) => [e, adapters[e].baseUrl]),
) as Record<Exchange, string>;

const baseUrlSchema = z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://api.binance.com' });

/** Defaults with overrides applied; an override that is not an http(s) URL fails loudly. */
export function resolveBaseUrls(overrides: Partial<Record<Exchange, string | undefined>> = {}): Record<Exchange, string> {
  const out = { ...DEFAULT_BASE_URLS };
  for (const [exchange, url] of Object.entries(overrides) as [Exchange, string | undefined][]) {
    if (url === undefined || url === '') continue;
    const parsed = baseUrlSchema.safeParse(url);
    if (!parsed.success) throw new Error(`base URL for ${exchange}: ${parsed.error.issues[0]?.message ?? 'invalid'} (got ${JSON.stringify(url)})`);
    out[exchange] = url.replace(/\/+$/, '');
  }
  return out;
}

/** `CANDLEKEEP_BINANCE_URL` etc.: point an exchange at the fake exchange, a proxy or a testnet. */
export function baseUrlsFromEnv(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<Exchange, string | undefined>> = {}): Record<Exchange, string> {
  const fromEnv = Object.fromEntries(EXCHANGES.map((e) => [e, env[`CANDLEKEEP_${e.toUpperCase()}_URL`]]));
  return resolveBaseUrls({ ...fromEnv, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) });
}


/**
 * Exchange access as deployed: the governor keeps its budget in PostgreSQL, so every concurrent
 * pull and backfill worker draws on the same per-exchange budget. Created once per container.
 */
export function liveExchangeAccess(db: Db, env: NodeJS.ProcessEnv = process.env): ExchangeAccess {
  return {
    governor: new Governor({ now: Date.now, sleep }, { store: new PostgresBudgetStore(db) }),
    baseUrls: baseUrlsFromEnv(env),
    now: Date.now,
  };
}

/**
 * Sends the budget's queued settles before an invocation returns: a frozen container sends nothing,
 * and a grant not settled holds its weight in flight for every other function. A failure leaves them
 * queued (the store tries again, and the container's next invocation carries them) and goes to `onError`.
 */
export async function flushBudget(access: ExchangeAccess | undefined, onError: (err: unknown) => void = () => {}): Promise<void> {
  if (!access) return;
  try {
    await access.governor.flush();
  } catch (err) {
    onError(err);
  }
}
