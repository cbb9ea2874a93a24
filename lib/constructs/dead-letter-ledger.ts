import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { CandlekeepFunction } from './candlekeep-function.ts';

export const DEAD_LETTER_SCAN_TIMEOUT = Duration.seconds(90);
/** How often the ledger catches up with the queue; a redrive shows in `gaps` at once, in the counts by the next scan. */
export const DEAD_LETTER_SCAN_MINUTES = 5;
/** Longer than a scan may run, so a message is not received twice by one scan; handed back as soon as it ends. */
export const DEAD_LETTER_SCAN_VISIBILITY = Duration.seconds(120);

export interface DeadLetterLedgerProps {
  /** The candles dead-letter queue the scan reads (and never consumes). */
  readonly deadLetterQueue: sqs.IQueue;
  readonly databaseSecret: secretsmanager.ISecret;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The dead-letter ledger: a scheduled function that reads the candles dead-letter queue without
 * consuming it and records, per series and range, what waits there, for gaps and the markets list.
 */
export class DeadLetterLedger extends Construct {
  public readonly scan: CandlekeepFunction;
  public readonly schedule: scheduler.CfnSchedule;
  /** Assumed by EventBridge Scheduler to invoke the scan. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: DeadLetterLedgerProps) {
    super(scope, id);

    this.scan = new CandlekeepFunction(this, 'Scan', {
      entry: 'functions/dead-letters/handler.ts',
      handler: 'handler',
      description: 'Records what waits in the candles dead-letter queue, per series and range, without consuming it',
      timeout: DEAD_LETTER_SCAN_TIMEOUT,
      environment: {
        DEAD_LETTER_QUEUE_URL: props.deadLetterQueue.queueUrl,
        DEAD_LETTER_SCAN_VISIBILITY: String(DEAD_LETTER_SCAN_VISIBILITY.toSeconds()),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-dead-letter-scan',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.scan.bindDatabaseSecret(props.databaseSecret);
    // Read and hand back only: never delete (that is the redrive's) and never send.
    this.scan.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
        resources: [props.deadLetterQueue.queueArn],
      }),
    );
    // No reserved concurrency: accounts with the default quota of 10 refuse any reservation. Scans
    // rarely overlap (90 s of work every 5 minutes), and when they do each sees the other's hidden
    // messages as in flight, counts its scan incomplete and removes no record.
    // A missed scan is repeated by the next one anyway.
    this.scan.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(DEAD_LETTER_SCAN_MINUTES) });

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'Lets the candlekeep dead-letter scan schedule invoke the scan function',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    });
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.scan.functionArn] }));

    this.schedule = new scheduler.CfnSchedule(this, 'Schedule', {
      description: `candlekeep dead-letter scan, every ${DEAD_LETTER_SCAN_MINUTES} minutes`,
      scheduleExpression: `rate(${DEAD_LETTER_SCAN_MINUTES} minutes)`,
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: this.scan.functionArn,
        roleArn: this.schedulerRole.roleArn,
        input: '{}',
        retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: DEAD_LETTER_SCAN_MINUTES * 60 },
      },
    });
  }
}
