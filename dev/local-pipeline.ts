/**
 * Runs the stack's Lambda handlers in this process, wired the way the template wires them in AWS:
 *
 * - each function's environment is the template's, with references resolved against the resources
 *   deployed to LocalStack (queue URLs, bus name, secret ARN);
 * - each SQS event source mapping becomes a local event source runner with the template's batch
 *   size, batching window and maximum concurrency;
 * - each EventBridge rule that targets a function delivers to that function's inbox queue (see
 *   localTemplate's `inboxes`), which is polled here and handed to the handler as the event;
 * - each EventBridge Scheduler schedule (which LocalStack creates but never fires) is fired here on
 *   its rate with its input, once at start and then every period.
 *
 * Handlers read their configuration at import, so one process hosts one pipeline.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { lambdaContext, startEventSourceRunner, type EventSourceRunner, type EventSourceRunnerStats } from './event-source-runner.ts';
import { REPO_ROOT } from './paths.ts';
import type { Deployment, FunctionRole, Json, LocalFunction, LocalFunctions } from './template/index.ts';

type AnyHandler = (event: unknown, context: Context) => Promise<unknown>;

/** Variables every function sets to its own value; in one shared process they mean nothing. */
const PER_FUNCTION_VARIABLES = new Set(['NODE_OPTIONS', 'POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_LOG_LEVEL', 'POWERTOOLS_METRICS_NAMESPACE']);

export interface PipelineOptions {
  deployment: Deployment;
  functions: LocalFunctions;
  /** Function logical id → inbox queue logical id (from localTemplate). */
  inboxes: ReadonlyMap<string, string>;
  sqs: SQSClient;
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
}

export interface LocalPipeline {
  /** Fires every schedule now, resolving when the invocations end (a test's "the scheduler ticked"). */
  tick(): Promise<void>;
  /** The runner stats per function fed by a queue. */
  runnerStats(): Partial<Record<FunctionRole, Readonly<EventSourceRunnerStats>>>;
  /** The functions' handlers as imported, e.g. the API's for a local server. */
  handler(role: FunctionRole): AnyHandler;
  readonly ticks: { started: number; failed: number; skipped: number };
  /** Stops ticks, lets in-flight invocations finish (messages not yet handled stay in SQS), closes the shared pool. */
  stop(): Promise<void>;
}

/** Resolves each function's template environment and sets it on this process. */
export function applyEnvironment(functions: readonly LocalFunction[], deployment: Deployment, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const merged: Record<string, string> = {};
  const from: Record<string, string> = {};
  for (const fn of functions) {
    for (const [name, raw] of Object.entries(fn.environment)) {
      if (PER_FUNCTION_VARIABLES.has(name)) continue;
      const value = deployment.resolve(raw as Json);
      if (merged[name] !== undefined && merged[name] !== value) {
        throw new Error(`functions ${from[name]} and ${fn.role} set ${name} to different values; they cannot share one local process`);
      }
      merged[name] = value;
      from[name] = fn.role;
    }
  }
  Object.assign(env, merged);
  return merged;
}

export async function startLocalPipeline(opts: PipelineOptions): Promise<LocalPipeline> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const onError = opts.onError ?? (() => {});
  const { deployment, functions } = opts;
  const skip = new Set(opts.skip ?? []);
  applyEnvironment(functions.functions, deployment);

  // The handlers share the container pool of functions/store/db.ts; the first getPool() call sizes it.
  const { getPool } = await import('../functions/store/db.ts');
  const pool = await getPool({ max: opts.poolMax ?? 8 });

  const byId = new Map(functions.functions.map((f) => [f.logicalId, f]));
  const handlers = new Map<FunctionRole, AnyHandler>();
  for (const fn of functions.functions) {
    const mod = (await import(pathToFileURL(path.join(REPO_ROOT, fn.entry)).href)) as { handler?: AnyHandler };
    if (typeof mod.handler !== 'function') throw new Error(`${fn.entry} exports no handler`);
    handlers.set(fn.role, mod.handler);
  }
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
  const timers: NodeJS.Timeout[] = [];
  if ((opts.schedules ?? 'auto') === 'auto') {
    for (const schedule of functions.schedules) {
      void fire(schedule);
      timers.push(setInterval(() => void fire(schedule), schedule.everyMs));
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
        for (const t of timers) clearInterval(t);
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
