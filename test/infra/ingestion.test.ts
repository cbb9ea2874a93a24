import { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { INTERVALS } from '../../functions/candles/intervals.ts';
import {
  asArray,
  exportedNames,
  logicalIdIn,
  resourceIn,
  roleStatementsIn,
  synthesizeStack,
  type CfnResource,
  type Statement,
  type SynthesizedStack,
} from './support.ts';

let synth: SynthesizedStack;

beforeAll(() => {
  synth = synthesizeStack(); // bundles every Lambda with local esbuild
}, 180_000);

const logicalId = (construct: IConstruct): string => logicalIdIn(synth, construct);
const resource = (construct: IConstruct): CfnResource => resourceIn(synth, construct);
const roleStatements = (fnConstruct: { serviceRole: IConstruct }): Statement[] => roleStatementsIn(synth, fnConstruct);

const actionsOn = (statements: Statement[], resourceJson: unknown) =>
  statements.filter((s) => JSON.stringify(asArray(s.Resource as unknown[])).includes(JSON.stringify(resourceJson))).flatMap((s) => asArray(s.Action));

/** The schedules that invoke the pull function (the stack has others). */
function pullSchedules(of: SynthesizedStack): CfnResource[] {
  const pullId = of.stack.getLogicalId(of.stack.ingestion.pull.node.defaultChild as CfnElement);
  return (Object.values(of.template.findResources('AWS::Scheduler::Schedule')) as (CfnResource & { DependsOn?: unknown })[]).filter(
    (s) => JSON.stringify((s.Properties?.Target as { Arn?: unknown } | undefined)?.Arn) === JSON.stringify({ 'Fn::GetAtt': [pullId, 'Arn'] }),
  );
}

describe('pull function and its schedules', () => {
  it('runs the bundled `handler` export with the pull-work queue, worker count and secret it reads at start-up, and no market list', () => {
    const pull = synth.stack.ingestion.pull;
    expect(exportedNames(pull)).toContain('handler');
    const fn = resource(pull);
    expect(fn.Properties).toMatchObject({ Handler: 'index.handler', Runtime: 'nodejs24.x', Timeout: 50 });
    const vars = (fn.Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars.PULL_WORK_QUEUE_URL).toEqual({ Ref: logicalId(synth.stack.ingestion.workQueue) });
    // Shards are planned for as many workers as the event source lets run.
    expect(vars.PULL_WORKERS).toBe('10');
    // The followed markets live in PostgreSQL: no environment size limit on how many.
    expect(vars.MARKETS).toBeUndefined();
    expect(vars.DATABASE_SECRET_ARN).toEqual({ Ref: logicalId(synth.stack.databaseSecret) });
  });

  it('fires just after each boundary: one UTC cron per group of intervals, flexible window off, the delay in the environment', () => {
    // Markets are added at runtime at any interval, so no schedule depends on cdk.json's seed list.
    const schedules = pullSchedules(synth);
    const byCron = Object.fromEntries(schedules.map((s) => [s.Properties?.ScheduleExpression as string, s.Properties]));
    expect(Object.keys(byCron).sort()).toEqual(['cron(* * * * ? *)', 'cron(0 * * * ? *)', 'cron(0 0 * * ? *)', 'cron(0/15 * * * ? *)']);
    const pullArn = { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.pull), 'Arn'] };
    for (const s of schedules) {
      expect(s.Properties).toMatchObject({
        State: 'ENABLED',
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        GroupName: synth.stack.resolve(synth.stack.ingestion.scheduleGroup.scheduleGroupName),
        Target: {
          Arn: pullArn,
          RoleArn: { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.schedulerRole), 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
        },
      });
    }
    const inputOf = (cron: string) => JSON.parse((byCron[cron]?.Target as { Input: string }).Input).intervals;
    expect(inputOf('cron(* * * * ? *)')).toEqual(['1m', '3m', '5m']);
    expect(inputOf('cron(0/15 * * * ? *)')).toEqual(['15m', '30m']);
    expect(inputOf('cron(0 * * * ? *)')).toEqual(['1h', '2h', '4h', '6h', '12h']);
    expect(inputOf('cron(0 0 * * ? *)')).toEqual(['1d', '1w']);
    // Every interval is pulled by exactly one schedule.
    expect(schedules.flatMap((s) => JSON.parse((s.Properties?.Target as { Input: string }).Input).intervals).sort()).toEqual([...INTERVALS].sort());
    const vars = (resource(synth.stack.ingestion.pull).Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars.PULL_DELAY_MS).toBe('2000');
  });

  it('lets the schedules invoke the pull function itself and nothing else', () => {
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalId(synth.stack.ingestion.schedulerRole) }],
      PolicyDocument: { Statement: [{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.pull), 'Arn'] } }] },
    });
  });

  it('creates the schedule group before the schedules that name it', () => {
    const groupId = logicalId(synth.stack.ingestion.scheduleGroup);
    const schedules = pullSchedules(synth) as { DependsOn?: string | string[] }[];
    expect(schedules.length).toBeGreaterThan(0);
    for (const schedule of schedules) expect(asArray(schedule.DependsOn as string | string[] | undefined)).toContain(groupId);
  });

  it('does not retry a failed tick (the next one fetches from the watermark anyway)', () => {
    synth.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: logicalId(synth.stack.ingestion.pull) },
      MaximumRetryAttempts: 0,
    });
  });

  it('may only send shards to the pull-work queue and read the database secret', () => {
    const statements = roleStatements(synth.stack.ingestion.pull);
    expect(actionsOn(statements, { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.workQueue), 'Arn'] })).toEqual(['sqs:SendMessage']);
    expect(actionsOn(statements, { 'Fn::GetAtt': [logicalId(synth.stack.candlesQueue), 'Arn'] })).toEqual([]);
    expect(actionsOn(statements, { Ref: logicalId(synth.stack.databaseSecret) })).toEqual(['secretsmanager:GetSecretValue']);
    const all = statements.flatMap((s) => asArray(s.Action));
    expect(all.filter((a) => a.startsWith('sqs:'))).toEqual(['sqs:SendMessage']);
    expect(all.filter((a) => a.startsWith('events:'))).toEqual([]);
  });

  it('synthesizes a seed list far larger than a function environment could carry, keeping it out of every environment', () => {
    const many = Array.from({ length: 400 }, (_, i) => ({ exchange: 'binance', symbol: `COIN${i}/USDT`, intervals: ['1m', '5m', '1h'], start: '2024-01-01' }));
    const other = synthesizeStack({ 'candlekeep:markets': many });
    expect(other.stack.markets).toHaveLength(400);
    expect(JSON.stringify(other.template.toJSON())).not.toContain('COIN399/USDT');
  }, 180_000);
});

describe('pull fan-out: pull-work queue and pull workers', () => {
  it('feeds the pull workers one shard per invocation, at most ten at once, with no batching window and no reserved concurrency', () => {
    const worker = synth.stack.ingestion.worker;
    expect(exportedNames(worker)).toContain('handler');
    expect(resource(worker).Properties).toMatchObject({ Handler: 'index.handler', Runtime: 'nodejs24.x', Timeout: 60 });
    // New accounts refuse any reservation: the event source's maximum concurrency is the bound.
    expect(resource(worker).Properties).not.toHaveProperty('ReservedConcurrentExecutions');
    const mappings = Object.values(synth.template.findResources('AWS::Lambda::EventSourceMapping')).filter(
      (m) => JSON.stringify((m as CfnResource).Properties?.FunctionName) === JSON.stringify({ Ref: logicalId(worker) }),
    ) as CfnResource[];
    expect(mappings).toHaveLength(1);
    expect(mappings[0]!.Properties).toMatchObject({
      EventSourceArn: { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.workQueue), 'Arn'] },
      BatchSize: 1,
      ScalingConfig: { MaximumConcurrency: 10 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(mappings[0]!.Properties).not.toHaveProperty('MaximumBatchingWindowInSeconds');
  });

  it('keeps a shard invisible for six worker timeouts and dead-letters one no worker could read after five receives', () => {
    expect(resource(synth.stack.ingestion.workQueue).Properties).toMatchObject({
      VisibilityTimeout: 360,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.workDeadLetterQueue), 'Arn'] }, maxReceiveCount: 5 },
    });
  });

  it('gives the worker the candles queue, bus and secret it reads at start-up, and only the sends and events it makes', () => {
    const vars = (resource(synth.stack.ingestion.worker).Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars).toMatchObject({
      CANDLES_QUEUE_URL: { Ref: logicalId(synth.stack.candlesQueue) },
      BACKFILL_BUS_NAME: { Ref: logicalId(synth.stack.backfill.bus) },
      DATABASE_SECRET_ARN: { Ref: logicalId(synth.stack.databaseSecret) },
    });
    const statements = roleStatements(synth.stack.ingestion.worker);
    expect(actionsOn(statements, { 'Fn::GetAtt': [logicalId(synth.stack.candlesQueue), 'Arn'] })).toEqual(['sqs:SendMessage']);
    expect(actionsOn(statements, { 'Fn::GetAtt': [logicalId(synth.stack.backfill.bus), 'Arn'] })).toEqual(['events:PutEvents']);
    const work = actionsOn(statements, { 'Fn::GetAtt': [logicalId(synth.stack.ingestion.workQueue), 'Arn'] });
    expect(work).toEqual(expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage']));
    expect(work).not.toContain('sqs:SendMessage');
    expect(work).not.toContain('sqs:PurgeQueue');
  });

  it("keeps the writer's batching window on the live path to one second", () => {
    synth.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: logicalId(synth.stack.writer) },
      EventSourceArn: { 'Fn::GetAtt': [logicalId(synth.stack.candlesQueue), 'Arn'] },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
    });
    // The window is added to the candles queue's visibility timeout, so a batch being gathered cannot reappear.
    expect(resource(synth.stack.candlesQueue).Properties).toMatchObject({ VisibilityTimeout: 361 });
  });
});

describe('backfill path', () => {
  it('routes "Backfill Requested" events on its own bus to the planner, with retries and a dead-letter queue', () => {
    const rule = resource(synth.stack.backfill.rule);
    expect(rule.Properties).toMatchObject({
      EventBusName: { Ref: logicalId(synth.stack.backfill.bus) },
      EventPattern: { source: ['candlekeep'], 'detail-type': ['Backfill Requested'] },
      State: 'ENABLED',
    });
    const [target] = rule.Properties?.Targets as Record<string, unknown>[];
    expect(target).toMatchObject({
      Arn: { 'Fn::GetAtt': [logicalId(synth.stack.backfill.planner), 'Arn'] },
      RetryPolicy: { MaximumRetryAttempts: 4 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(synth.stack.backfill.deadLetterQueue), 'Arn'] } },
    });
  });

  it('reserves no concurrency for the planner (planners of a series take turns in PostgreSQL) and runs at most two workers, each token a batch of one', () => {
    expect(resource(synth.stack.backfill.planner).Properties).toMatchObject({ Handler: 'index.handler', Timeout: 60 });
    expect(resource(synth.stack.backfill.planner).Properties).not.toHaveProperty('ReservedConcurrentExecutions');
    expect(resource(synth.stack.backfill.worker).Properties).toMatchObject({ Handler: 'index.handler', Timeout: 300, MemorySize: 1024 });
    synth.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: logicalId(synth.stack.backfill.worker) },
      EventSourceArn: { 'Fn::GetAtt': [logicalId(synth.stack.backfill.workQueue), 'Arn'] },
      BatchSize: 1,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(exportedNames(synth.stack.backfill.planner)).toContain('handler');
    expect(exportedNames(synth.stack.backfill.worker)).toContain('handler');
  });

  it('keeps a work token invisible for six worker timeouts and dead-letters it after five receives', () => {
    expect(resource(synth.stack.backfill.workQueue).Properties).toMatchObject({
      VisibilityTimeout: 1800,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(synth.stack.backfill.deadLetterQueue), 'Arn'] }, maxReceiveCount: 5 },
    });
  });

  it('gives the worker the queues, lease and stop margin it reads at start-up', () => {
    const vars = (resource(synth.stack.backfill.worker).Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars).toMatchObject({
      CANDLES_QUEUE_URL: { Ref: logicalId(synth.stack.candlesQueue) },
      BACKFILL_WORK_QUEUE_URL: { Ref: logicalId(synth.stack.backfill.workQueue) },
      LEASE_MS: '120000',
      STOP_MARGIN_MS: '90000',
      DATABASE_SECRET_ARN: { Ref: logicalId(synth.stack.databaseSecret) },
    });
  });

  it('grants the planner and worker only the sends they make', () => {
    const workQueue = { 'Fn::GetAtt': [logicalId(synth.stack.backfill.workQueue), 'Arn'] };
    const candles = { 'Fn::GetAtt': [logicalId(synth.stack.candlesQueue), 'Arn'] };
    const planner = roleStatements(synth.stack.backfill.planner);
    expect(actionsOn(planner, workQueue)).toEqual(['sqs:SendMessage']);
    expect(actionsOn(planner, candles)).toEqual([]);
    const worker = roleStatements(synth.stack.backfill.worker);
    expect(actionsOn(worker, candles)).toEqual(['sqs:SendMessage']);
    // Its own queue: consuming (the event source mapping) plus passing tokens on.
    expect(actionsOn(worker, workQueue)).toEqual(expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:SendMessage']));
    expect(actionsOn(worker, workQueue)).not.toContain('sqs:PurgeQueue');
  });

  it('lets EventBridge Scheduler, and nothing else, put scheduled requests on the bus', () => {
    const role = resource(synth.stack.backfill.schedulerRole);
    expect(role.Properties?.AssumeRolePolicyDocument).toMatchObject({
      Statement: [{ Action: 'sts:AssumeRole', Principal: { Service: 'scheduler.amazonaws.com' }, Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } } }],
    });
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalId(synth.stack.backfill.schedulerRole) }],
      PolicyDocument: { Statement: [Match.objectLike({ Action: 'events:PutEvents', Resource: { 'Fn::GetAtt': [logicalId(synth.stack.backfill.bus), 'Arn'] } })] },
    });
    synth.template.hasResourceProperties('AWS::Scheduler::ScheduleGroup', {});
  });

  it('publishes what `candlekeep backfill` needs as stack outputs', () => {
    const outputs = synth.template.toJSON().Outputs as Record<string, unknown>;
    for (const name of ['BackfillBusName', 'BackfillBusArn', 'BackfillScheduleGroup', 'BackfillSchedulerRoleArn']) expect(outputs).toHaveProperty(name);
  });
});

describe('dead-letter scan', () => {
  it('runs the bundled `handler` export with the dead-letter queue and secret it reads at start-up, with no reserved concurrency', () => {
    const scan = synth.stack.deadLetters.scan;
    expect(exportedNames(scan)).toContain('handler');
    const fn = resource(scan);
    expect(fn.Properties).toMatchObject({ Handler: 'index.handler', Runtime: 'nodejs24.x', Timeout: 90 });
    expect(fn.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
    const vars = (fn.Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars).toMatchObject({
      DEAD_LETTER_QUEUE_URL: { Ref: logicalId(synth.stack.deadLetterQueue) },
      DEAD_LETTER_SCAN_VISIBILITY: '120',
      DATABASE_SECRET_ARN: { Ref: logicalId(synth.stack.databaseSecret) },
    });
  });

  it('may read the dead-letter queue and hand messages back, never delete, send or purge', () => {
    const statements = roleStatements(synth.stack.deadLetters.scan);
    const dlq = { 'Fn::GetAtt': [logicalId(synth.stack.deadLetterQueue), 'Arn'] };
    expect(actionsOn(statements, dlq).sort()).toEqual(['sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage']);
    const sqsActions = statements.flatMap((s) => asArray(s.Action)).filter((a) => a.startsWith('sqs:'));
    expect(sqsActions.sort()).toEqual(['sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage']);
    expect(actionsOn(statements, { Ref: logicalId(synth.stack.databaseSecret) })).toEqual(['secretsmanager:GetSecretValue']);
  });

  it('is invoked every 5 minutes by a schedule whose role may invoke it and nothing else, without retries', () => {
    const scanArn = { 'Fn::GetAtt': [logicalId(synth.stack.deadLetters.scan), 'Arn'] };
    const schedule = synth.template.toJSON().Resources[synth.stack.getLogicalId(synth.stack.deadLetters.schedule)] as CfnResource;
    expect(schedule.Properties).toMatchObject({
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      Target: { Arn: scanArn, RoleArn: { 'Fn::GetAtt': [logicalId(synth.stack.deadLetters.schedulerRole), 'Arn'] }, Input: '{}', RetryPolicy: { MaximumRetryAttempts: 0 } },
    });
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalId(synth.stack.deadLetters.schedulerRole) }],
      PolicyDocument: { Statement: [{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: scanArn }] },
    });
  });
});
