import { liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { sqsModule, type SqsClient } from '../queue/send.ts';
import { lazyPool, type Db } from '../store/db.ts';
import { once, type Env } from './env.ts';
import type { Observability } from './powertools.ts';

/** What a queue-facing function gets from its container: the database and SQS. */
export interface QueueDeps extends Observability {
  /** The pool, opened on first use. */
  db: () => Promise<Db>;
  sqs: SqsClient;
}

/** What a function that fetches from exchanges gets as well. */
export interface ExchangeDeps extends QueueDeps {
  /** The governed exchanges over the pool (their budgets live in it); built once, on first use. */
  access: (db: Db) => ExchangeAccess;
}

/**
 * An SQS client made, with its SDK module, on the first send rather than at import: the module
 * costs about 80 ms of cold start, and a writer, for one, sends only to dead-letter a bad message.
 */
export function lazySqsClient(): SqsClient {
  const client = once(async () => new (await sqsModule()).SQSClient({}));
  return { send: (async (command: never) => (await client()).send(command)) as SqsClient['send'] };
}

/** A Lambda container's: the pool from DATABASE_URL or the secret on first use, an SQS client on first send. */
export function liveQueueDeps(env: Env): QueueDeps {
  return { db: lazyPool(env), sqs: lazySqsClient() };
}

/** As liveQueueDeps, plus exchange access whose base URLs the environment may override. */
export function liveExchangeDeps(env: Env): ExchangeDeps {
  return { ...liveQueueDeps(env), access: (db) => liveExchangeAccess(db, env) };
}
