import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { CandlekeepFunction } from './candlekeep-function.ts';
import { type ConsumerQueue, VISIBILITY_TIMEOUT_FACTOR } from './consumer-queue.ts';

export const WRITER_TIMEOUT = Duration.seconds(60);
export const WRITER_MEMORY_MB = 1024;
export const WRITER_BATCH_SIZE = 100;
/**
 * How long the event source gathers messages after the first before invoking the writer: the least
 * SQS allows with batches above 10, so a live candle spends at most a second waiting in the queue
 * (a busy queue fills the batch of 100 sooner).
 */
export const WRITER_BATCHING_WINDOW = Duration.seconds(1);
export const WRITER_MAX_CONCURRENCY = 5;

export interface StorageWriterProps {
  /** The candles queue the writer consumes and the dead-letter queue it sends poison messages to. */
  readonly ingest: ConsumerQueue;
  /** JSON secret `{"url":"postgres://..."}` holding the database connection string. */
  readonly databaseSecret: secretsmanager.ISecret;
  /**
   * Upper bound of concurrent writer invocations, hence of database connections (SQS allows 2..1000).
   * @default 5
   */
  readonly maxConcurrency?: number;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The writer Lambda: takes CandleBatch v1 messages from the candles queue in batches and upserts
 * each batch into PostgreSQL with one statement. Failed records are reported individually
 * (ReportBatchItemFailures); messages it can never store it sends to the DLQ itself, with a reason.
 */
export class StorageWriter extends CandlekeepFunction {
  constructor(scope: Construct, id: string, props: StorageWriterProps) {
    super(scope, id, {
      entry: 'functions/writer/handler.ts',
      handler: 'handler',
      description: 'Upserts CandleBatch messages from the candles queue into PostgreSQL',
      memorySize: WRITER_MEMORY_MB,
      timeout: WRITER_TIMEOUT,
      environment: {
        DEAD_LETTER_QUEUE_URL: props.ingest.deadLetterQueue.queueUrl,
        POWERTOOLS_SERVICE_NAME: 'candlekeep-writer',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });

    const minimum = WRITER_TIMEOUT.toSeconds() * VISIBILITY_TIMEOUT_FACTOR;
    if (props.ingest.visibilityTimeout.toSeconds() < minimum) {
      // A shorter visibility timeout redelivers a batch while the first invocation still writes it.
      throw new Error(
        `candles queue visibility timeout ${props.ingest.visibilityTimeout.toSeconds()} s is below ` +
          `${VISIBILITY_TIMEOUT_FACTOR} x writer timeout (${minimum} s)`,
      );
    }

    this.bindDatabaseSecret(props.databaseSecret);

    // Only SendMessage: the writer forwards poison messages, it never reads or purges the DLQ.
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sqs:SendMessage'],
        resources: [props.ingest.deadLetterQueue.queueArn],
      }),
    );

    this.addEventSource(
      new SqsEventSource(props.ingest.queue, {
        batchSize: WRITER_BATCH_SIZE,
        maxBatchingWindow: WRITER_BATCHING_WINDOW,
        reportBatchItemFailures: true,
        maxConcurrency: props.maxConcurrency ?? WRITER_MAX_CONCURRENCY,
      }),
    );
  }
}
