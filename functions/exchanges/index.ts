import type { Exchange } from '../candles/candle.ts';
import { binance } from './binance.ts';
import { bybit } from './bybit.ts';
import { coinbase } from './coinbase.ts';
import { kraken } from './kraken.ts';
import { okx } from './okx.ts';
import type { ExchangeAdapter } from './types.ts';

export const adapters: Readonly<Record<Exchange, ExchangeAdapter>> = { binance, okx, bybit, coinbase, kraken };

export { binance, bybit, coinbase, kraken, okx };
export * from './errors.ts';
export type { ExchangeAdapter, FetchDeps, PageRequest, PageResult } from './types.ts';
export { fetchRange } from './paging.ts';
