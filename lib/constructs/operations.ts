import { Duration, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, SERVICES } from '../../functions/lambda-kit/powertools.ts';
import { FRESHNESS_LAG_METRIC, SERIES_BEHIND_METRIC } from '../../functions/pull/pull-lambda.ts';

const FIVE_MINUTES = Duration.minutes(5);
/** API answers slower than this at the 99th percentile for 15 minutes mean the database or the function struggles. */
export const API_P99_LATENCY_MS = 5_000;
/** An export waiting this long for a worker means the workers are stuck or too few. */
export const EXPORT_QUEUE_AGE = Duration.minutes(30);
/** 5xx answers in five minutes that are worth waking someone for (one is a blip). */
export const API_5XX_PER_5_MINUTES = 5;
/** Minutes in a row with a series behind (or no tick at all) before the freshness alarm fires. */
export const FRESHNESS_ALARM_MINUTES = 3;

export interface OperationsProps {
  /** Every function of the stack, by the name its alarms and dashboard use. */
  readonly functions: Record<string, lambda.IFunction>;
  /** Functions (by name) that run rarely (daily): their Errors alarm fires on one failed run, not on 2 of 3 periods. */
  readonly alarmOnEveryFailure?: readonly string[];
  readonly candlesQueue: sqs.IQueue;
  readonly candlesDeadLetterQueue: sqs.IQueue;
  readonly backfillDeadLetterQueue: sqs.IQueue;
  /** The pull ticks' shards on their way to the pull workers, and the ones no worker could read. */
  readonly pullWorkQueue: sqs.IQueue;
  readonly pullDeadLetterQueue: sqs.IQueue;
  readonly exportsQueue: sqs.IQueue;
  readonly exportsDeadLetterQueue: sqs.IQueue;
  readonly apiStage: apigw.Stage;
  /** Alarms made elsewhere (the write path's), shown on the dashboard with these. */
  readonly otherAlarms: readonly cloudwatch.IAlarm[];
  /** Where every alarm here sends its ALARM and OK notifications. */
  readonly alarmTopic: sns.ITopic;
}

/** An alarm that notifies the topic both when it fires and when it clears. */
function notify(alarm: cloudwatch.Alarm, topic: sns.ITopic): cloudwatch.Alarm {
  const action = new actions.SnsAction(topic);
  alarm.addAlarmAction(action);
  alarm.addOkAction(action);
  return alarm;
}

const candlekeepMetric = (metricName: string, service: string, statistic: string, label: string) =>
  new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap: { service }, statistic, period: Duration.minutes(1), label });

/**
 * Running it: an Errors and a Throttles alarm per function, freshness (a followed series behind),
 * the backfill and pull dead-letter queues, API 5xx and p99 latency, all sent to the alarm topic,
 * and one dashboard with freshness, the ingest rate, the writer's batch latency, the queues'
 * depth and age, the dead-letter queues, the API and every alarm's state.
 */
export class Operations extends Construct {
  public readonly alarms: cloudwatch.Alarm[] = [];
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly freshnessAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    const stackName = Stack.of(this).stackName;
    const add = (alarm: cloudwatch.Alarm) => this.alarms.push(notify(alarm, props.alarmTopic));

    for (const [name, fn] of Object.entries(props.functions)) {
      const rare = props.alarmOnEveryFailure?.includes(name) ?? false;
      add(
        new cloudwatch.Alarm(this, `${name}Errors`, {
          alarmDescription: rare
            ? `The ${name} function, which runs once a day, failed. Its log group says why (look for level ERROR); ` +
              'the next run starts where this one stopped, or run it by hand (candlekeep retention apply) once the cause is fixed.'
            : `The ${name} function failed in 2 of the last 3 five-minute periods. Its log group says why ` +
              '(look for level ERROR); a failed pull or scan is repeated by the next tick, a failed writer batch is redelivered.',
          metric: fn.metricErrors({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: rare ? 1 : 3,
          datapointsToAlarm: rare ? 1 : 2,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      add(
        new cloudwatch.Alarm(this, `${name}Throttles`, {
          alarmDescription:
            `Lambda refused to run the ${name} function (throttled): the account's concurrency is used up. ` +
            'Raise the account quota (Service Quotas, Lambda concurrent executions) or find what else uses it.',
          metric: fn.metricThrottles({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    add(
      new cloudwatch.Alarm(this, 'BackfillDeadLetters', {
        alarmDescription:
          'Backfill work tokens or backfill requests reached the backfill dead-letter queue: a request the planner kept failing on, ' +
          'or a worker that died five times. Read the messages, fix the cause, then send the backfill request again (it resumes).',
        metric: props.backfillDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    add(
      new cloudwatch.Alarm(this, 'PullDeadLetters', {
        alarmDescription:
          'Pull shards reached the pull dead-letter queue: messages on the pull-work queue no pull worker could read (a bug, or a ' +
          'mismatched deploy). Nothing is lost: every tick plans the due series again. Read the messages and the pull worker log.',
        metric: props.pullDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, 'ExportDeadLetters', {
        alarmDescription:
          'Export requests reached the exports dead-letter queue: the export worker failed five times on them (database or S3 unreachable). ' +
          'Their exports stay queued or running; the ExportWorker log says why. Fix the cause, then redrive the queue.',
        metric: props.exportsDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    // Every tick publishes how many followed series are more than one interval behind; the
    // every-minute schedule always ticks, so a minute without the metric means pulls stopped.
    const seriesBehind = candlekeepMetric(SERIES_BEHIND_METRIC, SERVICES.pull, cloudwatch.Stats.MAXIMUM, 'series behind');
    this.freshnessAlarm = new cloudwatch.Alarm(this, 'SeriesBehind', {
      alarmDescription:
        `A followed series has been more than one interval behind for ${FRESHNESS_ALARM_MINUTES} minutes (or no pull tick ran): its newest ` +
        'closed candle is not stored. `candlekeep markets` (or GET /v1/markets) shows which series lag and their last pull error; the ' +
        'pull worker log says why (exchange refusing or banning, unknown symbol, database down). The pull log names the worst series.',
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: SERIES_BEHIND_METRIC,
        dimensionsMap: { service: SERVICES.pull },
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(1),
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: FRESHNESS_ALARM_MINUTES,
      datapointsToAlarm: FRESHNESS_ALARM_MINUTES,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    add(this.freshnessAlarm);
    add(
      new cloudwatch.Alarm(this, 'ExportQueueAge', {
        alarmDescription:
          `An export has waited more than ${EXPORT_QUEUE_AGE.toMinutes()} minutes for a worker: the workers are throttled, failing, or busy with ` +
          'long exports. The ExportWorker errors and throttles alarms and its log say which.',
        metric: props.exportsQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: EXPORT_QUEUE_AGE.toSeconds(),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 5,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    // Unlabelled for the alarms (a label would turn them into metric-math alarms); labelled on the dashboard.
    const api5xx = props.apiStage.metricServerError({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM });
    const api4xx = props.apiStage.metricClientError({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM, label: '4xx' });
    const apiP99 = props.apiStage.metricLatency({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.p(99) });
    const apiP50 = props.apiStage.metricLatency({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.p(50), label: 'p50' });
    add(
      new cloudwatch.Alarm(this, 'Api5xx', {
        alarmDescription:
          `The API answered ${API_5XX_PER_5_MINUTES} or more 5xx in five minutes. 503 means the database is unreachable or busy ` +
          '(check the secret and Neon), 500 a bug (the API function log has the stack), 504 requests that ran too long.',
        metric: api5xx,
        threshold: API_5XX_PER_5_MINUTES,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, 'ApiLatencyP99', {
        alarmDescription:
          `The API's p99 latency stayed above ${API_P99_LATENCY_MS} ms for 15 minutes: large pages or resamples, a slow database, ` +
          'or cold starts. The dashboard shows which routes and when; narrower requests or a larger Neon compute help.',
        metric: apiP99,
        threshold: API_P99_LATENCY_MS,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    const fns = Object.entries(props.functions);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: stackName,
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Freshness',
        left: [
          candlekeepMetric(FRESHNESS_LAG_METRIC, SERVICES.pull, cloudwatch.Stats.MAXIMUM, 'largest lag of a series (ms)'),
          candlekeepMetric('PullFreshness', SERVICES.pullWorker, cloudwatch.Stats.MAXIMUM, 'candle close to queued (ms)'),
        ],
        right: [seriesBehind],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Pull fan-out',
        left: [
          candlekeepMetric('SeriesDue', SERVICES.pull, cloudwatch.Stats.SUM, 'series due'),
          candlekeepMetric('SeriesPulled', SERVICES.pullWorker, cloudwatch.Stats.SUM, 'pulled'),
          candlekeepMetric('SeriesFailed', SERVICES.pullWorker, cloudwatch.Stats.SUM, 'failed'),
          candlekeepMetric('SeriesSkipped', SERVICES.pullWorker, cloudwatch.Stats.SUM, 'skipped'),
        ],
        right: [
          props.pullWorkQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'shards waiting' }),
          props.pullWorkQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'oldest shard age (s)' }),
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Ingest rate (candles per minute)',
        left: [
          candlekeepMetric('CandlesFetched', SERVICES.pullWorker, cloudwatch.Stats.SUM, 'fetched by pulls'),
          candlekeepMetric('CandlesWritten', SERVICES.writer, cloudwatch.Stats.SUM, 'written'),
          candlekeepMetric('CandlesUnchanged', SERVICES.writer, cloudwatch.Stats.SUM, 'unchanged (redelivered)'),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Writer batch latency (ms)',
        left: [
          candlekeepMetric('BatchLatency', SERVICES.writer, cloudwatch.Stats.p(50), 'p50'),
          candlekeepMetric('BatchLatency', SERVICES.writer, cloudwatch.Stats.p(99), 'p99'),
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Candles queue',
        left: [props.candlesQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'depth' })],
        right: [props.candlesQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'oldest message age (s)' })],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queues',
        left: [
          props.candlesDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'candles' }),
          props.backfillDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'backfill' }),
          props.pullDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'pull' }),
          props.exportsDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'exports' }),
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'API latency (ms)', left: [apiP50, apiP99.with({ label: 'p99' })], width: 12 }),
      new cloudwatch.GraphWidget({ title: 'API errors', left: [api4xx, api5xx.with({ label: '5xx' })], width: 12 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Exports queue',
        left: [props.exportsQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'waiting' })],
        right: [props.exportsQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'oldest wait (s)' })],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Exports written',
        left: [
          candlekeepMetric('ExportRows', SERVICES.exportWorker, cloudwatch.Stats.SUM, 'rows'),
        ],
        right: [candlekeepMetric('ExportsFailed', SERVICES.exportWorker, cloudwatch.Stats.SUM, 'failed exports')],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: fns.map(([name, fn]) => fn.metricErrors({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM, label: name })),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function throttles',
        left: fns.map(([name, fn]) => fn.metricThrottles({ period: FIVE_MINUTES, statistic: cloudwatch.Stats.SUM, label: name })),
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...props.otherAlarms, ...this.alarms], width: 24, height: 8 }),
    );
  }
}
