/**
 * Runs the stack's Lambda handlers in this process, wired the way the template wires them in AWS:
 *
 * - each handler is built from its factory with the configuration its function's template
 *   environment gives, resolved against the resources deployed to LocalStack (queue URLs, bus name,
 *   secret ARN), and with clients pointed at LocalStack;
 * - each SQS event source mapping becomes a local event source runner with the template's batch
 *   size, batching window and maximum concurrency;
 * - each EventBridge rule that targets a function delivers to that function's inbox queue (see
 *   localTemplate's `inboxes`), which is polled here and handed to the handler as the event;
 * - each EventBridge Scheduler schedule (which LocalStack creates but never fires) is fired here on
 *   its rate with its input, once at start and then every period.
 *
 * Nothing is read from or written to this process's environment, so one process can host several
 * pipelines (each with its own stack, database and exchanges).
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { createApiHandler, readApiConfig } from '../functions/api/api-lambda.ts';
import { createAuthorizerHandler } from '../functions/auth/authorizer-lambda.ts';
import { createPlannerHandler, readPlannerConfig } from '../functions/backfill/planner-lambda.ts';
import { createDeadLetterScanHandler, readDeadLetterScanConfig } from '../functions/dead-letters/scan-lambda.ts';
import { createWorkerHandler, readWorkerConfig } from '../functions/backfill/worker-lambda.ts';
import type { Exchange } from '../functions/candles/candle.ts';
import { liveExchangeAccess } from '../functions/exchanges/access.ts';
import { once, type Env } from '../functions/lambda-kit/env.ts';
import { createMigrateHandler, readMigrateConfig } from '../functions/migrate/migrate-lambda.ts';
import { createPullHandler, readPullConfig } from '../functions/pull/pull-lambda.ts';
import { createPullWorkerHandler, readPullWorkerConfig } from '../functions/pull/worker-lambda.ts';
import { createRetentionHandler, readRetentionConfig } from '../functions/retention/retention-lambda.ts';
import { createExportWorkerHandler, readExportWorkerConfig } from '../functions/exports/worker-lambda.ts';
import { lazyS3Client } from '../functions/exports/s3-client.ts';
import { createPool, readDatabaseConfig, resolveDatabaseUrl, type Db } from '../functions/store/db.ts';
import { MIGRATIONS_DIR } from '../functions/store/migrate.ts';
import { createWriterHandler, readWriterConfig } from '../functions/writer/writer-lambda.ts';
import { lambdaContext, startEventSourceRunner, type EventSourceRunner, type EventSourceRunnerStats } from './event-source-runner.ts';
import { awsClientConfig } from './localstack/index.ts';
import type { Deployment, FunctionRole, Json, LocalFunction, LocalFunctions } from './template/index.ts';

type AnyHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface PipelineOptions {
  deployment: Deployment;
  functions: LocalFunctions;
  /** Function logical id → inbox queue logical id (from localTemplate). */
  inboxes: ReadonlyMap<string, string>;
  sqs: SQSClient;
  /** LocalStack's endpoint, for the clients the handlers get besides `sqs` (EventBridge, Secrets Manager). */
  endpoint: string;
  /** Where the handlers reach each exchange (e.g. the fake exchange); the others are the real ones. */
  exchangeUrls?: Partial<Record<Exchange, string>>;
  /** The clock the handlers judge candles by (which are closed, what is due); default the real one. A test's fake exchange may stand still. */
  exchangeClock?: () => number;
  log?: (msg: string) => void;
  /** Every handler failure (thrown tick, failed batch), for a status line or a test. */
  onError?: (role: FunctionRole, err: unknown) => void;
  /** Fire the schedules on their rates (default). 'manual': only when `tick()` is called. */
  schedules?: 'auto' | 'manual';
  /**
   * ReceiveMessage long-poll seconds of the local runners. Lambda's pollers wait 20 s; a shorter
   * wait keeps Ctrl-C quick, since stopping waits for the receive in progress. Default 2.
   */
  waitTimeSeconds?: number;
  /** Overrides the queues' visibility timeout on receive (tests that must see redeliveries soon). */
  visibilityTimeoutSeconds?: Partial<Record<FunctionRole, number>>;
  /** Connections of the pool the handlers share (one process hosts them all). Default 8. */
  poolMax?: number;
  /**
   * Remaining time functions see once stopping began; below the backfill worker's stop margin
   * (90 s) so it returns after its current chunk. Default 30000.
   */
  stopRemainingMs?: number;
  /** Roles not to run (e.g. a test that drives the writer itself). */
  skip?: readonly FunctionRole[];
  /**
   * The configured admin key of the API authorizer. In AWS it is the value of the stack's API
   * Gateway key, which LocalStack does not hold; locally it is CANDLEKEEP_API_KEY.
   */
  apiKey?: string;
}

export interface LocalPipeline {
  /** Fires every schedule now, resolving when the invocations end (a test's "the scheduler ticked"). */
  tick(): Promise<void>;
  /** The runner stats per function fed by a queue. */
  runnerStats(): Partial<Record<FunctionRole, Readonly<EventSourceRunnerStats>>>;
  /** The functions' handlers as built, e.g. the API's for a local server. */
  handler(role: FunctionRole): AnyHandler;
  readonly ticks: { started: number; failed: number; skipped: number };
  /** Stops ticks, lets in-flight invocations finish (messages not yet handled stay in SQS), closes the shared pool. */
  stop(): Promise<void>;
}

/** A function's template environment with its references resolved against the deployment. */
export function functionEnvironment(fn: LocalFunction, deployment: Deployment): Record<string, string> {
  return Object.fromEntries(Object.entries(fn.environment).map(([name, raw]) => [name, deployment.resolve(raw as Json)]));
}

/** What the handlers share in one pipeline: its pool, its LocalStack clients, its exchanges. */
interface SharedDeps {
  db: () => Promise<Db>;
  databaseUrl: string;
  sqs: SQSClient;
  events: EventBridgeClient;
  exchangeEnv: Env;
  exchangeClock: (() => number) | undefined;
  apiKey: string | undefined;
  /** S3 on LocalStack (path-style, so presigned links point at it). */
  s3: ReturnType<typeof lazyS3Client>;
}

/** Each role's handler from its factory, as its entry builds it in AWS but with this pipeline's clients. */
function buildHandler(role: FunctionRole, env: Env, shared: SharedDeps): AnyHandler {
  const { db, sqs } = shared;
  const access = (pool: Db) => {
    const live = liveExchangeAccess(pool, { ...env, ...shared.exchangeEnv });
    return shared.exchangeClock ? { ...live, now: shared.exchangeClock } : live;
  };
  switch (role) {
    case 'writer':
      return createWriterHandler(readWriterConfig(env), { db, sqs }) as AnyHandler;
    case 'pull':
      return createPullHandler(readPullConfig(env), { db, sqs, access }) as AnyHandler;
    case 'pullWorker':
      return createPullWorkerHandler(readPullWorkerConfig(env), { db, sqs, access, events: async () => shared.events }) as AnyHandler;
    case 'planner':
      return createPlannerHandler(readPlannerConfig(env), { db, sqs, access }) as AnyHandler;
    case 'worker':
      return createWorkerHandler(readWorkerConfig(env), { db, sqs, access }) as AnyHandler;
    case 'api':
      // Its market routes ask the exchanges whether they list a symbol: the pipeline's exchanges, as the pulls reach them.
      return createApiHandler(readApiConfig(env), {
        db,
        events: async () => shared.events,
        exchanges: once(async () => access(await db())),
        sqs: async () => sqs,
        s3: shared.s3,
      }) as unknown as AnyHandler;
    case 'deadLetterScan':
      return createDeadLetterScanHandler(readDeadLetterScanConfig(env), { db, sqs }) as AnyHandler;
    case 'retention':
      return createRetentionHandler(readRetentionConfig(env), { db }) as AnyHandler;
    case 'authorizer': {
      const apiKey = shared.apiKey;
      return createAuthorizerHandler({ meterWithConfiguredKey: false }, { db, configuredKey: async () => apiKey }) as unknown as AnyHandler;
    }
    case 'migrate':
      // The repository's migrations, where the bundle would carry them next to the code.
      return createMigrateHandler(readMigrateConfig({ ...env, MIGRATIONS_DIR }), { databaseUrl: async () => shared.databaseUrl }) as AnyHandler;
    case 'exportWorker':
      return createExportWorkerHandler(readExportWorkerConfig(env), { db, s3: shared.s3 }) as AnyHandler;
  }
}

export async function startLocalPipeline(opts: PipelineOptions): Promise<LocalPipeline> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const onError = opts.onError ?? (() => {});
  const { deployment, functions } = opts;
  const skip = new Set(opts.skip ?? []);
  // The authorizer's one setting names the stack's API Gateway key, which is not deployed locally
  // (its configured key is opts.apiKey instead).
  const environments = new Map(functions.functions.map((fn) => [fn.role, fn.role === 'authorizer' ? {} : functionEnvironment(fn, deployment)]));

  // One pool for every handler of this pipeline, found as the functions find it in AWS: through
  // the stack's database secret (read from LocalStack).
  const first = functions.functions.find((f) => f.role !== 'authorizer');
  if (!first) throw new Error('the template has no functions to run');
  const databaseUrl = await resolveDatabaseUrl(readDatabaseConfig(environments.get(first.role)!), new SecretsManagerClient(awsClientConfig(opts.endpoint)));
  const pool = createPool(databaseUrl, { max: opts.poolMax ?? 8 });
  const shared: SharedDeps = {
    db: async () => pool,
    databaseUrl,
    sqs: opts.sqs,
    events: new EventBridgeClient(awsClientConfig(opts.endpoint)),
    exchangeEnv: Object.fromEntries(Object.entries(opts.exchangeUrls ?? {}).map(([ex, url]) => [`CANDLEKEEP_${ex.toUpperCase()}_URL`, url])),
    exchangeClock: opts.exchangeClock,
    apiKey: opts.apiKey,
    s3: lazyS3Client({ AWS_ENDPOINT_URL: opts.endpoint }, awsClientConfig(opts.endpoint)),
  };

  const byId = new Map(functions.functions.map((f) => [f.logicalId, f]));
  const handlers = new Map<FunctionRole, AnyHandler>();
  for (const fn of functions.functions) handlers.set(fn.role, buildHandler(fn.role, environments.get(fn.role)!, shared));
  const handlerOf = (role: FunctionRole): AnyHandler => {
    const h = handlers.get(role);
    if (!h) throw new Error(`no ${role} function in the template`);
    return h;
  };

  let stopping = false;
  // While stopping, functions are told little time remains, so a long one (the backfill worker,
  // which claims chunk after chunk until less than its stop margin is left) hands its work back at
  // the next chunk boundary instead of holding Ctrl-C for minutes. Not zero: middy arms its
  // timeout from the remaining time when an invocation starts, and would abort one at once.
  const stopRemainingMs = opts.stopRemainingMs ?? 30_000;
  const stoppable = (ctx: Context): Context => ({
    ...ctx,
    getRemainingTimeInMillis: () => (stopping ? Math.min(stopRemainingMs, ctx.getRemainingTimeInMillis()) : ctx.getRemainingTimeInMillis()),
  });

  const runners = new Map<FunctionRole, EventSourceRunner>();
  const extraRunners: EventSourceRunner[] = [];
  const waitTimeSeconds = opts.waitTimeSeconds ?? 2;

  for (const source of functions.eventSources) {
    const fn = byId.get(source.functionId);
    if (!fn || skip.has(fn.role)) continue;
    const handler = handlerOf(fn.role);
    const visibility = opts.visibilityTimeoutSeconds?.[fn.role];
    runners.set(
      fn.role,
      startEventSourceRunner({
        sqs: opts.sqs,
        queueUrl: deployment.ref(source.queueId),
        queueArn: deployment.arn(source.queueId),
        handler: (event, ctx) => handler(event, stoppable(ctx)) as Promise<SQSBatchResponse>,
        batchSize: source.batchSize,
        maxBatchingWindowMs: source.maxBatchingWindowMs,
        concurrency: source.maxConcurrency,
        reportBatchItemFailures: source.reportBatchItemFailures,
        functionName: fn.role,
        functionTimeoutMs: fn.timeoutSeconds * 1000,
        waitTimeSeconds,
        ...(visibility !== undefined ? { visibilityTimeoutSeconds: visibility } : {}),
        log: (m) => log(`[${fn.role}] ${m}`),
        onBatch: (info) => {
          if (info.error !== undefined) onError(fn.role, info.error);
        },
      }),
    );
  }

  for (const [functionId, inbox] of opts.inboxes) {
    const fn = byId.get(functionId);
    if (!fn || skip.has(fn.role)) continue;
    const handler = handlerOf(fn.role);
    const visibility = opts.visibilityTimeoutSeconds?.[fn.role];
    // The inbox stands in for EventBridge invoking the function: each message is one event.
    const deliver = async (event: SQSEvent, ctx: Context): Promise<SQSBatchResponse> => {
      const failures: SQSBatchResponse['batchItemFailures'] = [];
      for (const record of event.Records) {
        try {
          await handler(JSON.parse(record.body) as unknown, stoppable(ctx));
        } catch (err) {
          onError(fn.role, err);
          log(`[${fn.role}] event failed, EventBridge would retry it: ${(err as Error).message}`);
          failures.push({ itemIdentifier: record.messageId });
        }
      }
      return { batchItemFailures: failures };
    };
    extraRunners.push(
      startEventSourceRunner({
        sqs: opts.sqs,
        queueUrl: deployment.ref(inbox),
        queueArn: deployment.arn(inbox),
        handler: deliver,
        batchSize: 1,
        concurrency: fn.reservedConcurrency ?? 1,
        functionName: fn.role,
        functionTimeoutMs: fn.timeoutSeconds * 1000,
        waitTimeSeconds,
        ...(visibility !== undefined ? { visibilityTimeoutSeconds: visibility } : {}),
        log: (m) => log(`[${fn.role}] ${m}`),
      }),
    );
  }

  const ticks = { started: 0, failed: 0, skipped: 0 };
  const running = new Map<string, Promise<void>>();
  const fire = (schedule: LocalFunctions['schedules'][number]): Promise<void> => {
    const fn = byId.get(schedule.functionId);
    if (!fn || skip.has(fn.role) || stopping) return Promise.resolve();
    const inFlight = running.get(schedule.logicalId);
    if (inFlight) {
      // The previous tick of this schedule is still fetching; the next one starts from the
      // watermark anyway, so a skipped tick loses nothing.
      ticks.skipped += 1;
      return inFlight;
    }
    ticks.started += 1;
    const run = handlerOf(fn.role)(schedule.input, stoppable(lambdaContext(fn.role, fn.timeoutSeconds * 1000, deployment.region)))
      .then(() => undefined)
      .catch((err: unknown) => {
        ticks.failed += 1;
        onError(fn.role, err);
      })
      .finally(() => running.delete(schedule.logicalId));
    running.set(schedule.logicalId, run);
    return run;
  };
  const timers = new Set<NodeJS.Timeout>();
  if ((opts.schedules ?? 'auto') === 'auto') {
    // Each schedule fires once at start, then at its own times: a cron at its UTC minute, as
    // EventBridge Scheduler fires it (the pull itself waits its delay after the boundary).
    const arm = (schedule: LocalFunctions['schedules'][number], after: number) => {
      const at = schedule.next(after);
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (stopping) return;
        void fire(schedule);
        arm(schedule, at);
      }, Math.max(0, at - Date.now()));
      timers.add(timer);
    };
    for (const schedule of functions.schedules) {
      void fire(schedule);
      arm(schedule, Date.now());
    }
  }

  let stopped: Promise<void> | undefined;
  return {
    tick: async () => {
      await Promise.all(functions.schedules.map(fire));
    },
    runnerStats: () => Object.fromEntries([...runners].map(([role, r]) => [role, r.stats])),
    handler: handlerOf,
    ticks,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        for (const t of timers) clearTimeout(t);
        await Promise.all(running.values());
        // All at once: a runner still polling while another stops would start new invocations
        // (a worker handing its token back would receive it again at once). Each finishes the
        // batch it holds; what the last invocations sent stays in SQS for the next run.
        await Promise.all([...extraRunners, ...runners.values()].map((r) => r.stop()));
        await pool.end().catch(() => {});
      })();
      return stopped;
    },
  };
}
