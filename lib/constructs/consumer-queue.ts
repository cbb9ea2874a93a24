import { Duration, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Deliveries before SQS moves a message to the dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;

/** AWS guidance: the source queue's visibility timeout is at least six times the consumer's timeout. */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface ConsumerQueueProps {
  /** Timeout of the consumer function; the visibility timeout is derived from it. */
  readonly consumerTimeout: Duration;
  /** The event source mapping's batching window, added on top so a batch being gathered cannot reappear. */
  readonly consumerBatchingWindow?: Duration;
  /** What lands in the dead-letter queue, for the reason it has no dead-letter queue of its own. */
  readonly deadLetters: string;
}

/**
 * A queue feeding a Lambda consumer, with its dead-letter queue: the candles queue (CandleBatch v1
 * messages from the pulls to the writer) and the backfill work queue. Both queues are encrypted
 * with SQS-managed keys, refuse non-TLS requests, and keep a message invisible for six consumer
 * timeouts.
 */
export class ConsumerQueue extends Construct {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly visibilityTimeout: Duration;

  constructor(scope: Construct, id: string, props: ConsumerQueueProps) {
    super(scope, id);

    this.visibilityTimeout = Duration.seconds(
      props.consumerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR +
        (props.consumerBatchingWindow?.toSeconds() ?? 0),
    );

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // The longest SQS allows: time to read the reason, fix the cause and redrive.
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: `This is a dead-letter queue (${props.deadLetters}); a DLQ of a DLQ would only hide them.`,
    });

    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: this.visibilityTimeout,
      // Shorter than the DLQ's: a dead-lettered message keeps its original enqueue time, so a DLQ
      // with the same retention would let it expire almost at once.
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
  }
}
