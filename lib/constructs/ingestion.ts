import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_PULL_DELAY_MS, DEFAULT_PULL_WORKERS, pullGroups, type PullGroup } from '../../functions/ingest/pull-schedule.ts';
import { allowSend } from './backfill.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';
import { ConsumerQueue } from './consumer-queue.ts';

export const PULL_TIMEOUT = Duration.seconds(50);
/** A shard is sized to take about 5 s at its exchange's budget; the margin covers a slow exchange. */
export const PULL_WORKER_TIMEOUT = Duration.seconds(60);
/** Pull workers at once: bounds database connections and how many shards run in parallel. */
export const PULL_WORKER_MAX_CONCURRENCY = DEFAULT_PULL_WORKERS;
/** One shard per invocation, so each shard (one exchange) has a worker of its own. */
export const PULL_WORKER_BATCH_SIZE = 1;

export interface IngestionProps {
  readonly candlesQueue: sqs.IQueue;
  /** Where the pull hands holes too long for one tick. */
  readonly backfillBus: events.IEventBus;
  readonly databaseSecret: secretsmanager.ISecret;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Wait after each boundary before fetching, so the exchange has closed the candle. @default 2 s */
  readonly pullDelay?: Duration;
}

/**
 * Live pulls. The tick function is invoked by one EventBridge Scheduler cron schedule per group of
 * intervals, firing in UTC at the group's boundaries (every minute for 1m/3m/5m, every 15 minutes,
 * hourly, daily) with the flexible window off; each passes the intervals it covers. The tick waits
 * the configured delay after the boundary, reads the due series (boundary passed, closed candle not
 * stored yet) from PostgreSQL, so a market added at runtime, at any interval, is pulled on the next
 * tick without a redeploy, and sends them as shards (one exchange each, sized to its budget) to the
 * pull-work queue. Pull workers, at most PULL_WORKER_MAX_CONCURRENCY at once (the event source's
 * maximum concurrency, not a reservation), pull one shard each into the candles queue.
 */
export class Ingestion extends Construct {
  /** The tick: plans the due series into shards on the pull-work queue. */
  public readonly pull: CandlekeepFunction;
  /** Pulls one shard per invocation into the candles queue. */
  public readonly worker: CandlekeepFunction;
  public readonly workQueue: sqs.Queue;
  public readonly workDeadLetterQueue: sqs.Queue;
  public readonly scheduleGroup: scheduler.ScheduleGroup;
  public readonly schedules: { group: PullGroup; schedule: scheduler.CfnSchedule }[];
  /** Assumed by EventBridge Scheduler to invoke the pull function. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: IngestionProps) {
    super(scope, id);

    // A shard in flight is a worker at work; a worker that dies leaves it to reappear after six
    // worker timeouts, by when a newer tick has superseded it (the worker then skips it).
    const work = new ConsumerQueue(this, 'Work', {
      consumerTimeout: PULL_WORKER_TIMEOUT,
      deadLetters: 'pull shards no worker could read',
    });
    this.workQueue = work.queue;
    this.workDeadLetterQueue = work.deadLetterQueue;

    this.pull = new CandlekeepFunction(this, 'Pull', {
      entry: 'functions/pull/handler.ts',
      handler: 'handler',
      description: 'On each boundary, sends the due series of followed markets as shards to the pull-work queue',
      timeout: PULL_TIMEOUT,
      environment: {
        PULL_WORK_QUEUE_URL: this.workQueue.queueUrl,
        PULL_WORKERS: String(PULL_WORKER_MAX_CONCURRENCY),
        PULL_DELAY_MS: String((props.pullDelay ?? Duration.millis(DEFAULT_PULL_DELAY_MS)).toMilliseconds()),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-pull',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.pull.bindDatabaseSecret(props.databaseSecret);
    allowSend(this.pull, this.workQueue);

    this.worker = new CandlekeepFunction(this, 'PullWorker', {
      entry: 'functions/pull/worker-handler.ts',
      handler: 'handler',
      description: 'Pulls one shard of due series from its exchange, from the watermark to now, into the candles queue',
      timeout: PULL_WORKER_TIMEOUT,
      environment: {
        CANDLES_QUEUE_URL: props.candlesQueue.queueUrl,
        BACKFILL_BUS_NAME: props.backfillBus.eventBusName,
        POWERTOOLS_SERVICE_NAME: 'candlekeep-pull-worker',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.worker.bindDatabaseSecret(props.databaseSecret);
    allowSend(this.worker, props.candlesQueue);
    props.backfillBus.grantPutEventsTo(this.worker);
    this.worker.addEventSource(
      new SqsEventSource(this.workQueue, {
        batchSize: PULL_WORKER_BATCH_SIZE,
        // No batching window: a shard waits for nothing but a free worker.
        maxConcurrency: PULL_WORKER_MAX_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );
    // A retried tick would only repeat what the next tick does anyway (fetch from the watermark).
    this.pull.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(2) });

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Schedules', {});
    // Our own role rather than the scheduler target's: that one also allows every version and alias
    // (`<arn>:*`), and the schedules only ever invoke the function itself.
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'Lets the candlekeep pull schedules invoke the pull function',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    });
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.pull.functionArn] }));

    this.schedules = pullGroups().map((group) => {
      const schedule = new scheduler.CfnSchedule(this, `Pull-${group.name}`, {
        description: `candlekeep pull of ${group.intervals.join(', ')} series, just after each boundary (${group.name.replace(/-/g, ' ')}, UTC)`,
        groupName: this.scheduleGroup.scheduleGroupName,
        scheduleExpression: group.cron,
        scheduleExpressionTimezone: 'UTC',
        // Off: a flexible window would let the tick fire minutes after the boundary.
        flexibleTimeWindow: { mode: 'OFF' },
        state: 'ENABLED',
        target: {
          arn: this.pull.functionArn,
          roleArn: this.schedulerRole.roleArn,
          input: JSON.stringify({ intervals: group.intervals }),
          // A late or failed tick is not worth repeating: the next one starts from the watermark.
          retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
        },
      });
      // The group is named by a plain string, so CloudFormation would not know to create it first.
      schedule.node.addDependency(this.scheduleGroup);
      return { group, schedule };
    });
  }
}
