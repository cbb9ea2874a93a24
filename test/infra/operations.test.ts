import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { CandlekeepFunction } from '../../lib/constructs/candlekeep-function.ts';
import { createApp, type CfnResource } from './support.ts';

type Resources = Record<string, CfnResource>;
let stack: CandlekeepStack;
let template: Template;
let topicRef: { Ref: string };

beforeAll(() => {
  // The template only: no need to bundle the functions.
  stack = new CandlekeepStack(createApp({ 'aws:cdk:bundling-stacks': [] }), 'Candlekeep-dev');
  template = Template.fromStack(stack);
  topicRef = { Ref: stack.getLogicalId(stack.alarmTopic.topic.node.defaultChild as never) };
}, 120_000);

const alarms = () => Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources).map((a) => a.Properties!);

describe('alarms', () => {
  it('has an Errors and a Throttles alarm on every function of candlekeep (not CDK\'s deploy-time copier)', () => {
    const functionIds = stack.node.findAll().filter((c) => c instanceof CandlekeepFunction).map((f) => stack.getLogicalId(f.node.defaultChild as never));
    expect(functionIds.length).toBe(11);
    for (const id of functionIds) {
      for (const metric of ['Errors', 'Throttles']) {
        const found = alarms().filter(
          (a) => a.Namespace === 'AWS/Lambda' && a.MetricName === metric && JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: { Ref: id } }]),
        );
        expect(found, `${metric} of ${id}`).toHaveLength(1);
        expect(found[0]).toMatchObject({ Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
      }
    }
  });

  it('alarms on anything in the backfill dead-letter queue', () => {
    const dlq = { 'Fn::GetAtt': [stack.getLogicalId(stack.backfill.deadLetterQueue.node.defaultChild as never), 'QueueName'] };
    const found = alarms().filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && JSON.stringify(a.Dimensions).includes(JSON.stringify(dlq)));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
  });

  it('alarms on anything in the pull dead-letter queue', () => {
    const dlq = { 'Fn::GetAtt': [stack.getLogicalId(stack.ingestion.workDeadLetterQueue.node.defaultChild as never), 'QueueName'] };
    const found = alarms().filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && JSON.stringify(a.Dimensions).includes(JSON.stringify(dlq)));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
  });

  it('fires when a followed series stays behind for three minutes, or when no tick publishes freshness at all', () => {
    const found = alarms().filter((a) => a.Namespace === 'candlekeep' && a.MetricName === 'SeriesBehind');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      Dimensions: [{ Name: 'service', Value: 'candlekeep-pull' }],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      // The every-minute schedule always ticks: silence means the pulls stopped.
      TreatMissingData: 'breaching',
    });
    expect(String(found[0]!.AlarmDescription)).toMatch(/candlekeep markets/);
  });

  it('alarms on API 5xx answers and on p99 latency of the stage', () => {
    const five = alarms().find((a) => a.Namespace === 'AWS/ApiGateway' && a.MetricName === '5XXError');
    expect(five).toMatchObject({ Statistic: 'Sum', Threshold: 5, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
    expect(JSON.stringify(five?.Dimensions)).toContain('"Name":"Stage"');
    const p99 = alarms().find((a) => a.Namespace === 'AWS/ApiGateway' && a.MetricName === 'Latency');
    expect(p99).toMatchObject({ ExtendedStatistic: 'p99', Threshold: 5000, EvaluationPeriods: 3 });
  });

  it('sends every alarm, firing and clearing, to the alarm topic', () => {
    expect(alarms().length).toBeGreaterThanOrEqual(10 * 2 + 10);
    for (const a of alarms()) {
      expect(a.AlarmActions, String(a.AlarmDescription)).toEqual([topicRef]);
      expect(a.OKActions).toEqual([topicRef]);
      expect(JSON.stringify(a.AlarmDescription).length).toBeGreaterThan(40); // says what it means and what to do
    }
  });

  it('mails the topic only when candlekeep:alarmEmail is set', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });
});

describe('dashboard', () => {
  it('is one dashboard named after the stack, with the pipeline from ingest to API and every alarm', () => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard') as Resources);
    expect(dashboards).toHaveLength(1);
    expect(dashboards[0]!.Properties?.DashboardName).toBe('Candlekeep-dev');
    const body = JSON.stringify(dashboards[0]!.Properties?.DashboardBody);
    for (const title of ['Freshness', 'Pull fan-out', 'Ingest rate', 'Writer batch latency', 'Candles queue', 'Dead-letter queues', 'API latency', 'API errors', 'Function errors', 'Function throttles', 'Alarms']) {
      expect(body, title).toContain(`\\"title\\":\\"${title}`);
    }
    for (const metric of ['FreshnessLagMax', 'SeriesBehind', 'PullFreshness', 'SeriesDue', 'SeriesFailed', 'CandlesWritten', 'CandlesFetched', 'BatchLatency', 'ApproximateAgeOfOldestMessage', '5XXError', 'Latency']) {
      expect(body, metric).toContain(metric);
    }
    // The freshness alarm shows among the others.
    const freshness = stack.getLogicalId(stack.operations.freshnessAlarm.node.defaultChild as never);
    expect(body).toContain(freshness);
  });
});
