import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { RETENTION_BUDGET, RETENTION_TIMEOUT } from '../../lib/constructs/retention.ts';
import { createApp, type CfnResource } from './support.ts';

type Resources = Record<string, CfnResource>;
let stack: CandlekeepStack;
let template: Template;
const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

beforeAll(() => {
  stack = new CandlekeepStack(createApp({ 'aws:cdk:bundling-stacks': [] }), 'Candlekeep-dev');
  template = Template.fromStack(stack);
}, 120_000);

describe('retention job', () => {
  it('is scheduled daily at 02:30 UTC with its JSON object as the event, not retried (the next day resumes)', () => {
    const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule') as Resources).filter(
      (s) => JSON.stringify(s.Properties?.Target).includes(id(stack.retention.function)),
    );
    expect(schedules).toHaveLength(1);
    expect(schedules[0]!.Properties).toMatchObject({
      ScheduleExpression: 'cron(30 2 * * ? *)',
      ScheduleExpressionTimezone: 'UTC',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: { Arn: { 'Fn::GetAtt': [id(stack.retention.function), 'Arn'] }, Input: '{}', RetryPolicy: { MaximumRetryAttempts: 0 } },
    });
    const role = template.toJSON().Resources[id(stack.retention.schedulerRole)] as CfnResource;
    expect(JSON.stringify(role.Properties?.AssumeRolePolicyDocument)).toContain('scheduler.amazonaws.com');
  });

  it('runs the retention handler with a budget inside its timeout, and only the job\'s bounds in its environment', () => {
    const fn = (template.toJSON().Resources as Resources)[id(stack.retention.function)]!;
    expect(fn.Properties).toMatchObject({ Handler: 'index.handler', Timeout: RETENTION_TIMEOUT.toSeconds() });
    const env = (fn.Properties!.Environment as { Variables: Record<string, string> }).Variables;
    expect(Number(env.RETENTION_BUDGET_MS)).toBe(RETENTION_BUDGET.toMilliseconds());
    expect(RETENTION_BUDGET.toMilliseconds()).toBeLessThan(RETENTION_TIMEOUT.toMilliseconds() - 30_000);
    expect(Number(env.RETENTION_BATCH_SIZE)).toBeGreaterThan(0);
    // Which series keep how long is read from the markets tables, never passed in the environment.
    expect(Object.keys(env).sort()).toEqual([
      'DATABASE_SECRET_ARN',
      'NODE_OPTIONS',
      'POWERTOOLS_METRICS_NAMESPACE',
      'POWERTOOLS_SERVICE_NAME',
      'RETENTION_BATCH_SIZE',
      'RETENTION_BUDGET_MS',
    ]);
    expect(JSON.stringify(env)).not.toMatch(/binance|USDT|retentionDays/);
  });

  it('keeps the same environment however many markets the seed list holds, with retention', () => {
    const many = Array.from({ length: 600 }, (_, i) => ({
      exchange: 'binance',
      symbol: `C${i}/USDT`,
      intervals: ['1m', '1h', '1d'],
      start: '2024-01-01',
      retentionDays: { default: 30, '1m': 365, '1d': null },
    }));
    const big = new CandlekeepStack(createApp({ 'aws:cdk:bundling-stacks': [], 'candlekeep:markets': many }), 'Candlekeep-big');
    const bigFn = (Template.fromStack(big).toJSON().Resources as Resources)[big.getLogicalId(big.retention.function.node.defaultChild as never)]!;
    const fn = (template.toJSON().Resources as Resources)[id(stack.retention.function)]!;
    expect(bigFn.Properties!.Environment).toEqual(fn.Properties!.Environment);
  });

  it('alarms on a single failed run (a daily job has no next tick minutes later)', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources).map((a) => a.Properties!);
    const errors = alarms.filter(
      (a) => a.MetricName === 'Errors' && JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: { Ref: id(stack.retention.function) } }]),
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ Threshold: 1, EvaluationPeriods: 1, DatapointsToAlarm: 1 });
    expect(String(errors[0]!.AlarmDescription)).toContain('candlekeep retention apply');
  });
});
