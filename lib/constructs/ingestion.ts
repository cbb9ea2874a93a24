import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_PULL_DELAY_MS, pullGroups, type PullGroup } from '../../functions/ingest/pull-schedule.ts';
import { allowSend } from './backfill.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';

export const PULL_TIMEOUT = Duration.seconds(50);

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
 * Live pulls: one function, invoked by one EventBridge Scheduler cron schedule per group of
 * intervals, firing in UTC at the group's boundaries (every minute for 1m/3m/5m, every 15 minutes,
 * hourly, daily) with the flexible window off; each passes the intervals it covers. The pull waits
 * the configured delay after the boundary, then fetches the due series (boundary passed, closed
 * candle not stored yet), read from PostgreSQL on every tick: a market added at runtime, at any
 * interval, is pulled on the next tick without a redeploy.
 */
export class Ingestion extends Construct {
  public readonly pull: CandlekeepFunction;
  public readonly scheduleGroup: scheduler.ScheduleGroup;
  public readonly schedules: { group: PullGroup; schedule: scheduler.CfnSchedule }[];
  /** Assumed by EventBridge Scheduler to invoke the pull function. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: IngestionProps) {
    super(scope, id);

    this.pull = new CandlekeepFunction(this, 'Pull', {
      entry: 'functions/pull/handler.ts',
      handler: 'handler',
      description: 'Pulls followed markets from the watermark to now into the candles queue',
      timeout: PULL_TIMEOUT,
      environment: {
        CANDLES_QUEUE_URL: props.candlesQueue.queueUrl,
        BACKFILL_BUS_NAME: props.backfillBus.eventBusName,
        PULL_DELAY_MS: String((props.pullDelay ?? Duration.millis(DEFAULT_PULL_DELAY_MS)).toMilliseconds()),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-pull',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.pull.bindDatabaseSecret(props.databaseSecret);
    allowSend(this.pull, props.candlesQueue);
    props.backfillBus.grantPutEventsTo(this.pull);
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
