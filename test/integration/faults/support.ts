import type { SQSClient } from '@aws-sdk/client-sqs';
import { startEventSourceRunner, type EventSourceRunner } from '../../../dev/event-source-runner.ts';
import type { Candle, SeriesKey } from '../../../functions/candles/candle.ts';
import { Governor, MemoryBudgetStore, type GovernorOptions } from '../../../functions/exchanges/governor.ts';
import type { CandleSink, SinkResult } from '../../../functions/ingest/candle-sink.ts';
import type { ExchangeAccess } from '../../../functions/exchanges/access.ts';
import { encodeCandleBatches, type BatchRange } from '../../../functions/candles/candle-batch.ts';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { configureLocalRelay, createPool, type Db } from '../../../functions/store/db.ts';
import { hostPort } from '../../../dev/postgres.ts';
import { startRelay, type Relay } from '../../../dev/ws-relay.ts';
import { startFakeExchange, type FakeExchange, type FakeExchangeOptions } from '../../../dev/fake-exchange/server.ts';
import { testWriter, type SqsHandler } from '../../support/handlers.ts';
import { createQueues, testSqs, type TestQueues } from '../../support/sqs.ts';
import { scratchDatabase, type ScratchDatabase } from '../e2e/support.ts';

export const MIN = 60_000;
export const HOUR = 3_600_000;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The real writer Lambda handler on the test's DLQ and database, with a pool of its own that closes when the test ends. */
export function writerHandler(opts: { sqs: SQSClient; dlqUrl: string; databaseUrl: string }): SqsHandler {
  const writer = testWriter(opts);
  onTestFinished(writer.close);
  return writer.handler;
}

/** The writer behind a local event source mapping on the test's queue. */
export function startWriter(
  sqs: SQSClient,
  queues: TestQueues,
  handler: SqsHandler,
  opts: { batchSize?: number; windowMs?: number; concurrency?: number; visibilityTimeoutSeconds?: number } = {},
): EventSourceRunner {
  return startEventSourceRunner({
    sqs,
    queueUrl: queues.queueUrl,
    queueArn: queues.queueArn,
    handler,
    batchSize: opts.batchSize ?? 10,
    maxBatchingWindowMs: opts.windowMs ?? 300,
    concurrency: opts.concurrency ?? 2,
    waitTimeSeconds: 1,
    functionName: 'writer',
    ...(opts.visibilityTimeoutSeconds !== undefined ? { visibilityTimeoutSeconds: opts.visibilityTimeoutSeconds } : {}),
    // Failures are what these tests provoke; the runner's stats count them.
    log: () => {},
  });
}

/** Exchange access pointed at the fake, with an in-memory budget; `fetch` can wrap the network. */
export function fakeAccess(fake: FakeExchange, opts: { governor?: GovernorOptions; fetch?: typeof fetch; now?: () => number } = {}): ExchangeAccess {
  return {
    governor: new Governor({ now: Date.now, sleep, ...(opts.fetch ? { fetch: opts.fetch } : {}) }, { store: new MemoryBudgetStore(), ...opts.governor }),
    baseUrls: fake.baseUrls,
    now: opts.now ?? (() => fake.now()),
  };
}

/** Records the messages a pull would send, without sending them (the test decides how they arrive). */
export class CaptureSink implements CandleSink {
  readonly kind = 'queue';
  readonly bodies: string[] = [];
  readonly #maxBytes: number;
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }
  async write(series: SeriesKey, candles: readonly Candle[], fetchedAt: number, range?: BatchRange): Promise<SinkResult> {
    const bodies = candles.length || range ? encodeCandleBatches(series, candles, fetchedAt, range, this.#maxBytes) : [];
    this.bodies.push(...bodies);
    return { candles: candles.length, messages: bodies.length };
  }
}

/** Messages of `perMessage` candles each. */
export function messagesOf(series: SeriesKey, candles: readonly Candle[], perMessage: number, fetchedAt: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < candles.length; i += perMessage) out.push(...encodeCandleBatches(series, candles.slice(i, i + perMessage), fetchedAt));
  return out;
}

/** mulberry32: a seeded PRNG, so a failing random test can be rerun with the same draws. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface FaultEnvironment {
  fake: FakeExchange;
  db: ScratchDatabase;
  pool: Db;
  sqs: SQSClient;
  queues: TestQueues;
  /**
   * With `outages`: the database goes away for every pool of this file (new connections refused,
   * open ones cut), as when PostgreSQL is down, until restoreDatabase().
   */
  cutDatabase(): Promise<void>;
  restoreDatabase(): Promise<void>;
}

/**
 * What a fault test file starts from: a fake exchange, a scratch database with a pool, and fresh
 * queues with a dead-letter queue. Set up before the file's tests and torn down after them; the
 * fields are filled in by then.
 */
export function faultEnvironment(opts: {
  database: string;
  fake?: FakeExchangeOptions;
  poolSize?: number;
  queues: { maxReceiveCount: number; visibilityTimeout: number };
  /**
   * The file's driver reaches PostgreSQL only through a relay of its own, so a test can take the
   * database away (a test cannot stop the shared server): the relay closed and later reopened on
   * the same port.
   */
  outages?: boolean;
}): FaultEnvironment {
  const env = {} as FaultEnvironment;
  let relay: Relay | undefined;
  let port: number | undefined;
  env.cutDatabase = async () => {
    if (!relay) throw new Error('the fault environment was set up without outages');
    port = relay.port;
    await relay.close();
    relay = undefined;
  };
  env.restoreDatabase = async () => {
    if (port === undefined) throw new Error('the database was not cut');
    relay = await startRelay({ port, allow: [hostPort(env.db.url)] });
  };
  beforeAll(async () => {
    env.fake = await startFakeExchange(opts.fake ?? { enforceLimits: false });
    env.db = await scratchDatabase(opts.database);
    if (opts.outages) {
      relay = await startRelay({ allow: [hostPort(env.db.url)] });
      configureLocalRelay(relay.address);
    }
    env.pool = createPool(env.db.url, { max: opts.poolSize ?? 2 });
    env.sqs = testSqs();
    env.queues = await createQueues(env.sqs, opts.queues);
  });
  afterAll(async () => {
    await env.pool?.end();
    await env.db?.drop();
    await relay?.close();
    await env.queues?.delete();
    await env.fake?.close();
  });
  return env;
}
