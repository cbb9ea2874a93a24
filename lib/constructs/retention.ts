import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { CandlekeepFunction } from './candlekeep-function.ts';

export const RETENTION_TIMEOUT = Duration.minutes(5);
/** A run starts no batch after this: well inside the timeout, so a batch in progress always commits. */
export const RETENTION_BUDGET = Duration.minutes(4);
/** Candles one batch deletes at most, in its own short transaction. */
export const RETENTION_BATCH_SIZE = 10_000;
/** Daily, at 02:30 UTC: clear of the midnight boundary, when every pull schedule fires at once. */
export const RETENTION_SCHEDULE = 'cron(30 2 * * ? *)';

export interface RetentionProps {
  readonly databaseSecret: secretsmanager.ISecret;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * Retention: a daily function that deletes the candles each followed series keeps no longer, as its
 * market's settings in the database say, in bounded batches within a time budget; what one run
 * leaves, the next one takes.
 */
export class Retention extends Construct {
  public readonly function: CandlekeepFunction;
  public readonly schedule: scheduler.CfnSchedule;
  /** Assumed by EventBridge Scheduler to invoke the function. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: RetentionProps) {
    super(scope, id);

    this.function = new CandlekeepFunction(this, 'Function', {
      entry: 'functions/retention/handler.ts',
      handler: 'handler',
      description: 'Deletes the candles older than each followed series keeps, in bounded batches (settings are read from the markets tables)',
      timeout: RETENTION_TIMEOUT,
      environment: {
        // The job's own bounds only: which series keep how long lives in the database.
        RETENTION_BATCH_SIZE: String(RETENTION_BATCH_SIZE),
        RETENTION_BUDGET_MS: String(RETENTION_BUDGET.toMilliseconds()),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-retention',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.function.bindDatabaseSecret(props.databaseSecret);
    // A failed run is not retried: the next day's run deletes what this one left.
    this.function.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.hours(1) });

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'Lets the candlekeep retention schedule invoke the retention function',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    });
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.function.functionArn] }));

    this.schedule = new scheduler.CfnSchedule(this, 'Schedule', {
      description: 'candlekeep retention, daily at 02:30 UTC',
      scheduleExpression: RETENTION_SCHEDULE,
      scheduleExpressionTimezone: 'UTC',
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: this.function.functionArn,
        roleArn: this.schedulerRole.roleArn,
        input: '{}',
        retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 3600 },
      },
    });
  }
}
