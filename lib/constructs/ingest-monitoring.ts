import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, SERVICES } from '../../functions/lambda-kit/powertools.ts';
import { DATABASE_NOT_CONFIGURED_METRIC } from '../../functions/pull/pull-lambda.ts';

/** Oldest candles message age that means the writer is not keeping up (or not running). */
export const MAX_QUEUE_AGE = Duration.minutes(15);

export interface AlarmTopicProps {
  /** Subscribed by email when set (the recipient must confirm the subscription). */
  readonly email?: string | undefined;
  /** Applies to the topic's KMS key. */
  readonly removalPolicy?: RemovalPolicy;
}

/** An encrypted SNS topic CloudWatch alarms can publish to. */
export class AlarmTopic extends Construct {
  public readonly topic: sns.Topic;
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    // A customer managed key, because CloudWatch cannot publish to a topic under the AWS managed SNS key.
    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the candlekeep alarm topic',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy,
    });
    this.key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'candlekeep alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    if (props.email !== undefined) this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
  }
}

export interface IngestMonitoringProps {
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  /** Receives ALARM and OK notifications; without it the alarms only show in the console. */
  readonly alarmTopic?: sns.ITopic;
  /** Named in the "database not configured" alarm, so its reader knows where the URL goes. */
  readonly databaseSecretArn?: string;
}

/** Alarms on the write path: anything dead-lettered, and a candles queue that stops draining. */
export class IngestMonitoring extends Construct {
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly queueAgeAlarm: cloudwatch.Alarm;
  public readonly databaseNotConfiguredAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: IngestMonitoringProps) {
    super(scope, id);

    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterMessages', {
      alarmDescription:
        'Candle batches reached the dead-letter queue. Read their "reason" attribute, fix the cause, then redrive.',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      // An idle queue publishes no metric; that is not a problem.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.queueAgeAlarm = new cloudwatch.Alarm(this, 'QueueBacklogAge', {
      alarmDescription: `The oldest message in the candles queue is older than ${MAX_QUEUE_AGE.toMinutes()} minutes: the writer is failing or cannot keep up (database down?).`,
      metric: props.queue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: MAX_QUEUE_AGE.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // A pull that finds no URL in the secret sends nothing, so no queue alarm could notice it.
    this.databaseNotConfiguredAlarm = new cloudwatch.Alarm(this, 'DatabaseNotConfigured', {
      alarmName: `${Stack.of(this).stackName}-database-not-configured`,
      alarmDescription:
        'Database not configured: the pull found no postgres:// URL in the database secret' +
        `${props.databaseSecretArn ? ` (${props.databaseSecretArn})` : ''} and skipped its tick. Store {"url":"postgres://..."} in the ` +
        'secret, then invoke the function named by the MigrateFunctionName output to apply the migrations.',
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: DATABASE_NOT_CONFIGURED_METRIC,
        dimensionsMap: { service: SERVICES.pull },
        period: Duration.minutes(5),
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      // Published only by a tick that skipped: silence means configured.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    if (props.alarmTopic !== undefined) {
      const action = new actions.SnsAction(props.alarmTopic);
      for (const alarm of [this.deadLetterAlarm, this.queueAgeAlarm, this.databaseNotConfiguredAlarm]) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
  }
}
