import { Governor } from '../exchanges/governor.ts';
import type { Db } from '../store/db.ts';
import { baseUrlsFromEnv, type ExchangeAccess } from './exchange-access.ts';
import { PostgresBudgetStore } from './postgres-budget-store.ts';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Exchange access for a Lambda: the governor keeps its budget in PostgreSQL, so every concurrent
 * pull and backfill worker draws on the same per-exchange budget. Created once per container.
 */
export function lambdaExchangeAccess(db: Db, env: NodeJS.ProcessEnv = process.env): ExchangeAccess {
  return {
    governor: new Governor({ now: Date.now, sleep }, { store: new PostgresBudgetStore(db) }),
    baseUrls: baseUrlsFromEnv(env),
    now: Date.now,
  };
}
