import { CfnOutput, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { Market } from '../functions/config/markets.ts';
import { readConfig, type Stage } from './config.ts';
import { ConsumerQueue } from './constructs/consumer-queue.ts';
import { CandlekeepHttpApi, readApiConfig } from './constructs/http-api.ts';
import { Backfill } from './constructs/backfill.ts';
import { CandlekeepConsole } from './constructs/console.ts';
import { DeadLetterLedger } from './constructs/dead-letter-ledger.ts';
import { Exports } from './constructs/exports.ts';
import { Migrations } from './constructs/migrations.ts';
import { Ingestion } from './constructs/ingestion.ts';
import { AlarmTopic, IngestMonitoring } from './constructs/ingest-monitoring.ts';
import { Operations } from './constructs/operations.ts';
import { Retention } from './constructs/retention.ts';
import { StorageWriter, WRITER_BATCHING_WINDOW, WRITER_TIMEOUT } from './constructs/storage-writer.ts';

export interface CandlekeepStackProps extends StackProps {
  /** Overrides `candlekeep:stage` from the context, so one app can hold two stages side by side. */
  readonly stage?: Stage;
}

/**
 * candlekeep's write path: candles queue (+ DLQ) → writer Lambda → PostgreSQL (Neon), with alarms.
 * Pull Lambdas and the API attach to the public members.
 */
export class CandlekeepStack extends Stack {
  public readonly stage: Stage;
  /** cdk.json's seed list: applied to the database when migrations run; the markets followed live there. */
  public readonly markets: readonly Market[];
  public readonly databaseSecret: secretsmanager.ISecret;
  public readonly candlesQueue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly migrations: Migrations;
  public readonly writer: StorageWriter;
  public readonly deadLetters: DeadLetterLedger;
  public readonly alarmTopic: AlarmTopic;
  public readonly ingestMonitoring: IngestMonitoring;
  public readonly ingestion: Ingestion;
  public readonly backfill: Backfill;
  public readonly api: CandlekeepHttpApi;
  public readonly exports: Exports;
  public readonly console: CandlekeepConsole;
  public readonly operations: Operations;
  public readonly retention: Retention;

  constructor(scope: Construct, id: string, props: CandlekeepStackProps = {}) {
    super(scope, id, props);

    // ── Config ────────────────────────────────────────────────────────────────
    // Context is validated here, so a bad entry in cdk.json fails synth, not a deployed Lambda.
    const config = readConfig(this);
    this.stage = props.stage ?? config.stage;
    this.markets = config.markets;
    // prod keeps data-bearing resources when the stack is deleted; dev cleans up after itself.
    const keepOrDestroy = this.stage === 'prod' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    // ── Storage ───────────────────────────────────────────────────────────────
    // The database itself is Neon, outside AWS; the stack holds only its connection string.
    // `-c candlekeep:databaseUrlSecret=<arn or name>` points at a secret that already holds the URL,
    // so the first deploy migrates and data flows at once; otherwise the stack makes its own.
    this.databaseSecret = config.databaseUrlSecret === undefined ? this.ownDatabaseSecret(keepOrDestroy) : existingSecret(this, config.databaseUrlSecret);

    // Deploy-time migrations: every deploy that ships new migrations applies them (once the secret
    // holds a URL); a failed one fails the deploy.
    this.migrations = new Migrations(this, 'Migrations', { databaseSecret: this.databaseSecret, seedMarkets: config.markets, logRemovalPolicy: keepOrDestroy });

    // ── Ingestion queue ───────────────────────────────────────────────────────
    const ingest = new ConsumerQueue(this, 'Candles', {
      deadLetters: 'candle messages the writer rejected, with their reason',
      consumerTimeout: WRITER_TIMEOUT,
      consumerBatchingWindow: WRITER_BATCHING_WINDOW,
    });
    this.candlesQueue = ingest.queue;
    this.deadLetterQueue = ingest.deadLetterQueue;

    // ── Writer ────────────────────────────────────────────────────────────────
    this.writer = new StorageWriter(this, 'Writer', {
      ingest,
      databaseSecret: this.databaseSecret,
      logRemovalPolicy: keepOrDestroy,
    });

    // What waits in the dead-letter queue, per series and range, recorded where gaps and the
    // markets list read it, so a hole a redrive would fill is not mistaken for one to backfill.
    this.deadLetters = new DeadLetterLedger(this, 'DeadLetters', {
      deadLetterQueue: this.deadLetterQueue,
      databaseSecret: this.databaseSecret,
      logRemovalPolicy: keepOrDestroy,
    });

    // ── Ingestion and backfills ───────────────────────────────────────────────
    // Backfill requests (bus, or a one-time schedule) → planner → chunks in the ledger → workers;
    // scheduled pulls fetch from the watermark and hand holes too long for one tick to the bus.
    this.backfill = new Backfill(this, 'Backfill', {
      candlesQueue: this.candlesQueue,
      databaseSecret: this.databaseSecret,
      logRemovalPolicy: keepOrDestroy,
    });
    this.ingestion = new Ingestion(this, 'Ingestion', {
      candlesQueue: this.candlesQueue,
      backfillBus: this.backfill.bus,
      databaseSecret: this.databaseSecret,
      logRemovalPolicy: keepOrDestroy,
    });
    // ── Retention ─────────────────────────────────────────────────────────────
    // Daily: deletes what each followed series keeps no longer (settings in the markets tables), in
    // bounded batches; gaps read the deleted range as expired and no backfill fetches it again.
    this.retention = new Retention(this, 'Retention', { databaseSecret: this.databaseSecret, logRemovalPolicy: keepOrDestroy });

    new CfnOutput(this, 'BackfillBusName', { value: this.backfill.bus.eventBusName, description: 'CANDLEKEEP_BACKFILL_BUS for `candlekeep backfill`' });
    new CfnOutput(this, 'BackfillBusArn', { value: this.backfill.bus.eventBusArn, description: 'CANDLEKEEP_BACKFILL_BUS for `candlekeep backfill --at`' });
    new CfnOutput(this, 'BackfillScheduleGroup', { value: this.backfill.scheduleGroup.scheduleGroupName, description: 'CANDLEKEEP_BACKFILL_SCHEDULE_GROUP' });
    new CfnOutput(this, 'BackfillSchedulerRoleArn', { value: this.backfill.schedulerRole.roleArn, description: 'CANDLEKEEP_BACKFILL_SCHEDULER_ROLE_ARN' });

    // ── Monitoring ────────────────────────────────────────────────────────────
    this.alarmTopic = new AlarmTopic(this, 'Alarms', {
      email: config.alarmEmail,
      removalPolicy: keepOrDestroy,
    });
    this.ingestMonitoring = new IngestMonitoring(this, 'IngestMonitoring', {
      queue: this.candlesQueue,
      deadLetterQueue: this.deadLetterQueue,
      alarmTopic: this.alarmTopic.topic,
      databaseSecretArn: this.databaseSecret.secretArn,
    });

    // ── API ───────────────────────────────────────────────────────────────────
    // REST API → one route-dispatching Lambda; API key + usage plan on every route but health.
    this.api = new CandlekeepHttpApi(this, 'Api', {
      databaseSecret: this.databaseSecret,
      stageName: this.stage,
      logs: config.apiGatewayLogs,
      config: readApiConfig(this),
      logRemovalPolicy: keepOrDestroy,
      backfillBus: this.backfill.bus,
    });
    new CfnOutput(this, 'ApiUrl', { value: this.api.api.url, description: 'Base URL: set CANDLEKEEP_URL to it' });
    new CfnOutput(this, 'ApiKeyId', {
      value: this.api.apiKey.keyId,
      description: 'aws apigateway get-api-key --include-value --api-key <id> gives CANDLEKEEP_API_KEY',
    });
    new CfnOutput(this, 'OpenApiUrl', { value: `${this.api.api.url}v1/openapi.json` });

    // ── Exports ───────────────────────────────────────────────────────────────
    // POST /v1/exports → work queue (+ DLQ) → worker Lambda → private bucket (files expire);
    // GET /v1/exports/{id} signs a short-lived download link.
    this.exports = new Exports(this, 'Exports', { databaseSecret: this.databaseSecret, removalPolicy: keepOrDestroy, logRemovalPolicy: keepOrDestroy });
    this.exports.bindApi(this.api.handler);
    new CfnOutput(this, 'ExportsBucketName', { value: this.exports.bucket.bucketName, description: 'Where export files go (they expire after 7 days)' });

    // ── Console ───────────────────────────────────────────────────────────────
    // Static files in S3 behind CloudFront (origin access control), the API under the same host.
    this.console = new CandlekeepConsole(this, 'Console', { api: this.api.api, removalPolicy: keepOrDestroy });
    new CfnOutput(this, 'ConsoleUrl', { value: this.console.url, description: 'The web console; it asks for the API key once per browser tab' });

    // ── Operations ────────────────────────────────────────────────────────────
    // Errors and Throttles alarms on every function, the backfill dead letters, API 5xx and p99
    // latency, all to the alarm topic; one dashboard over the whole pipeline.
    this.operations = new Operations(this, 'Operations', {
      functions: {
        Writer: this.writer,
        Pull: this.ingestion.pull,
        PullWorker: this.ingestion.worker,
        BackfillPlanner: this.backfill.planner,
        BackfillWorker: this.backfill.worker,
        DeadLetterScan: this.deadLetters.scan,
        Retention: this.retention.function,
        ExportWorker: this.exports.worker,
        Api: this.api.handler,
        ApiAuthorizer: this.api.authorizerFunction,
        Migrate: this.migrations.function,
      },
      // Runs once a day: one failure is a missed day, not a blip the next tick repeats.
      alarmOnEveryFailure: ['Retention'],
      candlesQueue: this.candlesQueue,
      candlesDeadLetterQueue: this.deadLetterQueue,
      backfillDeadLetterQueue: this.backfill.deadLetterQueue,
      pullWorkQueue: this.ingestion.workQueue,
      pullDeadLetterQueue: this.ingestion.workDeadLetterQueue,
      exportsQueue: this.exports.workQueue,
      exportsDeadLetterQueue: this.exports.deadLetterQueue,
      apiStage: this.api.api.deploymentStage,
      otherAlarms: [this.ingestMonitoring.deadLetterAlarm, this.ingestMonitoring.queueAgeAlarm, this.ingestMonitoring.databaseNotConfiguredAlarm],
      alarmTopic: this.alarmTopic.topic,
    });
    new CfnOutput(this, 'PullLogGroupName', { value: this.ingestion.pull.logGroup.logGroupName, description: 'aws logs tail <this> shows the ticks' });
    new CfnOutput(this, 'PullWorkerLogGroupName', { value: this.ingestion.worker.logGroup.logGroupName, description: 'aws logs tail <this> shows the pulls of each shard' });
    new CfnOutput(this, 'DashboardName', { value: this.operations.dashboard.dashboardName, description: 'CloudWatch dashboard of this stage' });

    // ── Outputs ───────────────────────────────────────────────────────────────
    new CfnOutput(this, 'CandlesQueueUrl', { value: this.candlesQueue.queueUrl });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'DatabaseSecretArn', { value: this.databaseSecret.secretArn });
    new CfnOutput(this, 'MigrateFunctionName', {
      value: this.migrations.function.functionName,
      description: 'aws lambda invoke --function-name <this> applies the migrations (e.g. after storing the URL in the secret)',
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topic.topicArn });
  }

  private ownDatabaseSecret(removalPolicy: RemovalPolicy): secretsmanager.Secret {
    // Its value starts as generated text, which the functions read as "database not configured"
    // (GenerateSecretString stays as it was: changing it would make CloudFormation generate a new
    // value over the URL a user stored).
    const secret = new secretsmanager.Secret(this, 'DatabaseSecret', {
      description:
        'candlekeep PostgreSQL connection. After the first deploy, set the value to JSON ' +
        '{"url":"postgres://USER:PASSWORD@HOST/DB?sslmode=require"} with the Neon pooled connection string.',
      removalPolicy,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The value is a Neon connection string issued and rotated in Neon; Secrets Manager has no rotation ' +
        'function for it. Rotate the password in Neon, then update the secret.',
    });
    return secret;
  }
}

/** A secret the user made, by full ARN, partial ARN (no random suffix) or name. */
function existingSecret(scope: Construct, ref: string): secretsmanager.ISecret {
  if (!ref.startsWith('arn:')) return secretsmanager.Secret.fromSecretNameV2(scope, 'DatabaseSecret', ref);
  // A full ARN ends in '-' and six random characters that Secrets Manager appended to the name.
  return /-[A-Za-z0-9]{6}$/.test(ref)
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, 'DatabaseSecret', ref)
    : secretsmanager.Secret.fromSecretPartialArn(scope, 'DatabaseSecret', ref);
}
