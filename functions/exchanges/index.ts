import * as z from 'zod';
import type { Exchange } from '../candles/candle.ts';
import { binance } from './binance.ts';
import { bybit } from './bybit.ts';
import { coinbase } from './coinbase.ts';
import { kraken } from './kraken.ts';
import { okx } from './okx.ts';
import type { ExchangeAdapter } from './types.ts';

export const adapters: Record<Exchange, ExchangeAdapter> = { binance, okx, bybit, coinbase, kraken };

/** The exchanges' public REST hosts; tests and LocalStack runs point these at the fake exchange. */
export const DEFAULT_BASE_URLS: Readonly<Record<Exchange, string>> = {
  binance: 'https://api.binance.com',
  okx: 'https://www.okx.com',
  bybit: 'https://api.bybit.com',
  coinbase: 'https://api.exchange.coinbase.com',
  kraken: 'https://api.kraken.com',
};

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

export { binance, bybit, coinbase, kraken, okx };
export * from './errors.ts';
export type { ExchangeAdapter, FetchDeps, PageRequest, PageResult } from './types.ts';
export { fetchRange } from './paging.ts';
