import { Duration, Stack, Validations, type RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { EXPORT_RETENTION_DAYS, EXPORTS_PREFIX } from '../../functions/exports/request.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';
import { ConsumerQueue } from './consumer-queue.ts';

/** Lambda's longest: an export that needs more fails with its reason (ask for a shorter range). */
export const EXPORT_WORKER_TIMEOUT = Duration.minutes(15);
/** Memory is CPU for Parquet encoding; the file itself is held one 8 MiB part at a time. */
export const EXPORT_WORKER_MEMORY_MB = 1024;
/** Exports made at once: each holds a database session and reads a range end to end. */
export const EXPORT_WORKER_MAX_CONCURRENCY = 2;
/** An unfinished multipart upload (a worker that died mid-file) is removed after this many days. */
export const ABORT_UPLOADS_AFTER_DAYS = 1;

export interface ExportsProps {
  readonly databaseSecret: secretsmanager.ISecret;
  /** What happens to the bucket when the stack is deleted (it must be empty to be deleted). */
  readonly removalPolicy: RemovalPolicy;
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * Exports: POST /v1/exports records an export and puts its id on the work queue; the worker Lambda
 * streams the file into the bucket (multipart upload) and the API signs a short-lived GET of it.
 * The bucket is private (all public access blocked, objects owned by the bucket, S3-managed
 * encryption, TLS only) and keeps files EXPORT_RETENTION_DAYS days.
 */
export class Exports extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly worker: CandlekeepFunction;
  public readonly workQueue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ExportsProps) {
    super(scope, id);

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: props.removalPolicy,
      lifecycleRules: [
        { id: 'expire-exports', prefix: EXPORTS_PREFIX, expiration: Duration.days(EXPORT_RETENTION_DAYS) },
        { id: 'abort-unfinished-uploads', abortIncompleteMultipartUploadAfter: Duration.days(ABORT_UPLOADS_AFTER_DAYS) },
      ],
    });

    const work = new ConsumerQueue(this, 'Work', {
      consumerTimeout: EXPORT_WORKER_TIMEOUT,
      deadLetters: 'export requests whose worker failed five times (database or S3 unreachable)',
    });
    this.workQueue = work.queue;
    this.deadLetterQueue = work.deadLetterQueue;

    this.worker = new CandlekeepFunction(this, 'Worker', {
      entry: 'functions/exports/worker-handler.ts',
      handler: 'handler',
      description: 'Writes requested exports (Parquet or csv.gz) into the exports bucket',
      memorySize: EXPORT_WORKER_MEMORY_MB,
      timeout: EXPORT_WORKER_TIMEOUT,
      // parquet-wasm reads its WebAssembly module from beside its code.
      bundleAssets: ['node_modules/parquet-wasm/node/parquet_wasm_bg.wasm'],
      environment: {
        EXPORTS_BUCKET: this.bucket.bucketName,
        EXPORT_RETENTION_DAYS: String(EXPORT_RETENTION_DAYS),
        POWERTOOLS_SERVICE_NAME: 'candlekeep-export-worker',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.worker.bindDatabaseSecret(props.databaseSecret);
    // Writing a file: one PutObject, or the calls of a multipart upload (abort included), under the exports prefix only.
    this.worker.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [this.bucket.arnForObjects(`${EXPORTS_PREFIX}*`)] }),
    );
    this.worker.addEventSource(
      new SqsEventSource(this.workQueue, {
        batchSize: 1,
        maxConcurrency: EXPORT_WORKER_MAX_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );

    // ── cdk-nag: decisions, each with its reason ──
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Export files are written by the worker and read through presigned links the API hands out; every request for one is in the API access log ' +
        'and the worker log. Server access logs would need a second bucket for files that expire in days.',
    });
    Validations.of(this.worker.serviceRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket)}.Arn>/${EXPORTS_PREFIX}*]`,
      reason: 'Each export is a new object named by its id; the worker may write (and abort uploads of) objects under the exports prefix only.',
    });
  }

  /**
   * Lets the API queue exports and sign downloads, and tells it where, in one step: the queue URL
   * and bucket name variables with SendMessage on the queue and GetObject under the exports prefix
   * (a presigned URL carries the signer's permissions).
   */
  bindApi(fn: CandlekeepFunction): void {
    fn.addEnvironment('CANDLEKEEP_EXPORTS_BUCKET', this.bucket.bucketName);
    fn.addEnvironment('CANDLEKEEP_EXPORTS_QUEUE_URL', this.workQueue.queueUrl);
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.workQueue.queueArn] }));
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(`${EXPORTS_PREFIX}*`)] }));
    Validations.of(fn.serviceRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket)}.Arn>/${EXPORTS_PREFIX}*]`,
      reason: 'The API signs download links of finished exports, each a new object named by its id, under the exports prefix only.',
    });
  }
}
