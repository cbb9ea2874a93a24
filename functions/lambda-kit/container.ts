import { SQSClient } from '@aws-sdk/client-sqs';
import { liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { lazyPool, type Db } from '../store/db.ts';
import type { Env } from './env.ts';
import type { Observability } from './powertools.ts';

/** What a queue-facing function gets from its container: the database and SQS. */
export interface QueueDeps extends Observability {
  /** The pool, opened on first use. */
  db: () => Promise<Db>;
  sqs: SQSClient;
}

/** What a function that fetches from exchanges gets as well. */
export interface ExchangeDeps extends QueueDeps {
  /** The governed exchanges over the pool (their budgets live in it); built once, on first use. */
  access: (db: Db) => ExchangeAccess;
}

/** A Lambda container's: the pool from DATABASE_URL or the secret on first use, one SQS client. */
export function liveQueueDeps(env: Env): QueueDeps {
  return { db: lazyPool(env), sqs: new SQSClient({}) };
}

/** As liveQueueDeps, plus exchange access whose base URLs the environment may override. */
export function liveExchangeDeps(env: Env): ExchangeDeps {
  return { ...liveQueueDeps(env), access: (db) => liveExchangeAccess(db, env) };
}
