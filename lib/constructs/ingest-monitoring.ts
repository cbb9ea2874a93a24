import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

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
}

/** Alarms on the write path: anything dead-lettered, and a candles queue that stops draining. */
export class IngestMonitoring extends Construct {
  public readonly deadLetterAlarm: cloudwatch.Alarm;
  public readonly queueAgeAlarm: cloudwatch.Alarm;

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

    if (props.alarmTopic !== undefined) {
      const action = new actions.SnsAction(props.alarmTopic);
      for (const alarm of [this.deadLetterAlarm, this.queueAgeAlarm]) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
  }
}
