import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { BACKFILL_DETAIL_TYPE, BACKFILL_EVENT_SOURCE } from '../../functions/ingest/backfill-request.ts';
import { ConsumerQueue } from './consumer-queue.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';

export const PLANNER_TIMEOUT = Duration.seconds(60);
export const WORKER_TIMEOUT = Duration.minutes(5);
export const WORKER_MEMORY_MB = 1024;
/** Concurrent workers: bounds database connections and how hard one backfill leans on an exchange's budget. */
export const WORKER_MAX_CONCURRENCY = 2;
/** A claimed chunk stays a worker's this long; a dead worker's chunk is claimable again after it. */
export const WORKER_LEASE = Duration.minutes(2);
/** Workers stop claiming when less than this remains, so a chunk started always finishes in time. */
export const WORKER_STOP_MARGIN = Duration.seconds(90);

export interface BackfillProps {
  /** Where workers send fetched candles (the writer stores them). */
  readonly candlesQueue: sqs.IQueue;
  readonly databaseSecret: secretsmanager.ISecret;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The backfill path: requests arrive as events on a dedicated bus (PutEvents for "now", or a
 * one-time EventBridge Scheduler schedule in this construct's group for "run at"); a rule hands
 * each to the planner, which records chunks in the ledger and queues work tokens; workers consume
 * tokens, claim chunks with SKIP LOCKED and send the candles to the candles queue.
 */
export class Backfill extends Construct {
  public readonly bus: events.EventBus;
  public readonly rule: events.Rule;
  public readonly planner: CandlekeepFunction;
  public readonly worker: CandlekeepFunction;
  public readonly workQueue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  /** Holds the one-time schedules users create for "run at". */
  public readonly scheduleGroup: scheduler.ScheduleGroup;
  /** Assumed by EventBridge Scheduler to put a scheduled request on the bus. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: BackfillProps) {
    super(scope, id);

    this.bus = new events.EventBus(this, 'Bus', { description: 'candlekeep backfill requests' });

    // A token in flight is a worker at work; if the worker dies the token comes back after six
    // worker timeouts. The dead-letter queue also takes requests the bus could not deliver.
    const work = new ConsumerQueue(this, 'Work', {
      consumerTimeout: WORKER_TIMEOUT,
      deadLetters: 'backfill work tokens and backfill requests that could not be delivered',
    });
    this.workQueue = work.queue;
    this.deadLetterQueue = work.deadLetterQueue;

    this.planner = new CandlekeepFunction(this, 'Planner', {
      entry: 'functions/backfill/planner-handler.ts',
      handler: 'handler',
      description: 'Plans backfill requests from the bus into chunks in the coverage ledger',
      timeout: PLANNER_TIMEOUT,
      environment: {
        BACKFILL_WORK_QUEUE_URL: this.workQueue.queueUrl,
        BACKFILL_PARALLELISM: String(WORKER_MAX_CONCURRENCY),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-backfill-planner',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    // No reserved concurrency (accounts with the default quota of 10 refuse any reservation):
    // planners of one series take turns on a PostgreSQL advisory lock instead, so two requests for
    // the same series never plan the same range twice.
    this.planner.bindDatabaseSecret(props.databaseSecret);
    allowSend(this.planner, this.workQueue);

    this.rule = new events.Rule(this, 'Requested', {
      eventBus: this.bus,
      description: 'A backfill request goes to the planner',
      eventPattern: { source: [BACKFILL_EVENT_SOURCE], detailType: [BACKFILL_DETAIL_TYPE] },
      targets: [
        new targets.LambdaFunction(this.planner, {
          retryAttempts: 4,
          maxEventAge: Duration.hours(2),
          deadLetterQueue: this.deadLetterQueue,
        }),
      ],
    });

    this.worker = new CandlekeepFunction(this, 'Worker', {
      entry: 'functions/backfill/worker-handler.ts',
      handler: 'handler',
      description: 'Claims backfill chunks from the ledger and fetches them into the candles queue',
      memorySize: WORKER_MEMORY_MB,
      timeout: WORKER_TIMEOUT,
      environment: {
        CANDLES_QUEUE_URL: props.candlesQueue.queueUrl,
        BACKFILL_WORK_QUEUE_URL: this.workQueue.queueUrl,
        LEASE_MS: String(WORKER_LEASE.toMilliseconds()),
        STOP_MARGIN_MS: String(WORKER_STOP_MARGIN.toMilliseconds()),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-backfill-worker',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.worker.bindDatabaseSecret(props.databaseSecret);
    allowSend(this.worker, props.candlesQueue);
    // Passing the token on (or back, delayed) is how a worker hands over unfinished work.
    allowSend(this.worker, this.workQueue);
    this.worker.addEventSource(
      new SqsEventSource(this.workQueue, {
        batchSize: 1,
        maxConcurrency: WORKER_MAX_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Schedules', {});
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'Lets one-time EventBridge Scheduler schedules put backfill requests on the candlekeep backfill bus',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    });
    this.bus.grantPutEventsTo(this.schedulerRole);
  }
}

/** Only SendMessage: none of these functions reads, deletes or purges another's queue. */
export function allowSend(fn: lambda.Function, queue: sqs.IQueue): void {
  fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
}
