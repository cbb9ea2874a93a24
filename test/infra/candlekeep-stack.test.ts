import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AssetStaging, CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { asArray, synthesizeStack, type CfnResource, type SynthesizedStack } from './support.ts';

let synth: SynthesizedStack;

beforeAll(() => {
  synth = synthesizeStack(); // bundles the writer with local esbuild
}, 120_000);

/** Logical id of a construct's CloudFormation resource (`construct.node.defaultChild`). */
function logicalId(defaultChild: IConstruct | undefined): string {
  if (!(defaultChild instanceof CfnElement)) throw new Error('expected an L1 resource');
  return synth.stack.getLogicalId(defaultChild);
}

type Resources = Record<string, CfnResource>;
const resources = (): Resources => synth.template.toJSON().Resources as Resources;
/** The stack holds other functions too (pulls, backfills, API): these tests look at the writer's own. */
const writerId = () => logicalId(synth.stack.writer.node.defaultChild);
const writerFunction = (): CfnResource => resources()[writerId()]!;
const writerRoleId = () => logicalId(synth.stack.writer.serviceRole.node.defaultChild);
/** The writer's event source mapping: the one whose function is the writer. */
function writerMapping(): CfnResource {
  const found = Object.values(synth.template.findResources('AWS::Lambda::EventSourceMapping')).filter(
    (m) => JSON.stringify(m.Properties?.FunctionName) === JSON.stringify({ Ref: writerId() }),
  );
  expect(found).toHaveLength(1);
  return found[0] as CfnResource;
}

describe('writer function', () => {
  it('runs the bundled `handler` export on Node.js 24, ARM64', () => {
    expect(writerFunction().Properties).toMatchObject({
      Handler: 'index.handler',
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 1024,
      Timeout: 60,
    });
    // No X-Ray: no tracing mode, and (below) no xray permission.
    expect(writerFunction().Properties).not.toHaveProperty('TracingConfig');
  });

  it('exports `handler` from the ESM bundle the Lambda handler name points at', () => {
    // Guards against drift between `index.handler` and what functions/writer/handler.ts exports.
    const staging = synth.stack.writer.node.findChild('Code').node.findChild('Stage') as AssetStaging;
    const bundle = readFileSync(join(staging.absoluteStagedPath, 'index.mjs'), 'utf8');
    const exported = [...bundle.matchAll(/export\s*\{([^}]*)\}/g)].flatMap((m) =>
      (m[1] ?? '').split(',').map((part) => part.trim().split(/\s+as\s+/).pop()),
    );
    expect(exported).toContain('handler');
    expect(bundle.startsWith("import { createRequire } from 'node:module';")).toBe(true);
  });

  it('has the environment it reads at start-up', () => {
    expect(writerFunction().Properties?.Environment).toEqual({
      Variables: {
        NODE_OPTIONS: '--enable-source-maps',
        DATABASE_SECRET_ARN: { Ref: logicalId(synth.stack.databaseSecret.node.defaultChild) },
        DEAD_LETTER_QUEUE_URL: { Ref: logicalId(synth.stack.deadLetterQueue.node.defaultChild) },
        POWERTOOLS_SERVICE_NAME: 'candlekeep-writer',
        POWERTOOLS_METRICS_NAMESPACE: 'candlekeep',
      },
    });
  });

  it('logs to its own log group, kept one month', () => {
    const logGroupId = (writerFunction().Properties?.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(resources()[logGroupId]).toMatchObject({ Type: 'AWS::Logs::LogGroup', Properties: { RetentionInDays: 30 } });
  });
});

describe('event source mapping', () => {
  it('batches, reports item failures and caps concurrency', () => {
    expect(writerMapping().Properties).toMatchObject({
      EventSourceArn: { 'Fn::GetAtt': [logicalId(synth.stack.candlesQueue.node.defaultChild), 'Arn'] },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
  });

  it('gives the queue a visibility timeout of at least six writer timeouts', () => {
    const mapping = writerMapping();
    const queueId = (mapping.Properties?.EventSourceArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const functionId = (mapping.Properties?.FunctionName as { Ref: string }).Ref;
    const resources = synth.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> }>;
    const visibility = resources[queueId]?.Properties.VisibilityTimeout;
    const timeout = resources[functionId]?.Properties.Timeout;
    expect(typeof visibility).toBe('number');
    expect(typeof timeout).toBe('number');
    expect(visibility as number).toBeGreaterThanOrEqual(6 * (timeout as number));
  });
});

describe('queues', () => {
  it('moves a message to the dead-letter queue after 5 receives', () => {
    synth.template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(synth.stack.deadLetterQueue.node.defaultChild), 'Arn'] },
        maxReceiveCount: 5,
      },
    });
  });

  it('keeps dead letters 14 days, longer than the candles queue keeps messages', () => {
    const resources = synth.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> }>;
    const dlq = resources[logicalId(synth.stack.deadLetterQueue.node.defaultChild)]?.Properties;
    const queue = resources[logicalId(synth.stack.candlesQueue.node.defaultChild)]?.Properties;
    expect(dlq?.MessageRetentionPeriod).toBe(14 * 24 * 3600);
    expect(queue?.MessageRetentionPeriod as number).toBeLessThan(dlq?.MessageRetentionPeriod as number);
  });

  it('encrypts every queue with SQS-managed keys', () => {
    const queues = Object.values(synth.template.findResources('AWS::SQS::Queue'));
    expect(queues.length).toBeGreaterThanOrEqual(2);
    for (const queue of queues) expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
  });

  it('denies non-TLS requests to both queues', () => {
    for (const queue of [synth.stack.candlesQueue, synth.stack.deadLetterQueue]) {
      synth.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalId(queue.node.defaultChild) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: 'sqs:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });
});

describe('writer permissions', () => {
  type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
  /** Statements of the policies attached to the writer's role. */
  const statements = (): Statement[] =>
    Object.values(synth.template.findResources('AWS::IAM::Policy'))
      .filter((policy) => JSON.stringify(policy.Properties.Roles).includes(JSON.stringify({ Ref: writerRoleId() })))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[]);

  it('may read the database secret and nothing more on it', () => {
    const secretRef = { Ref: logicalId(synth.stack.databaseSecret.node.defaultChild) };
    const onSecret = statements().filter((s) => JSON.stringify(s.Resource) === JSON.stringify(secretRef));
    expect(onSecret).toEqual([{ Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: secretRef }]);
  });

  it('may only send to the dead-letter queue', () => {
    const dlqArn = { 'Fn::GetAtt': [logicalId(synth.stack.deadLetterQueue.node.defaultChild), 'Arn'] };
    const onDlq = statements().filter((s) => JSON.stringify(s.Resource) === JSON.stringify(dlqArn));
    expect(onDlq).toEqual([{ Effect: 'Allow', Action: 'sqs:SendMessage', Resource: dlqArn }]);
  });

  it('grants no wildcard action or resource, and nothing for X-Ray (tracing is off)', () => {
    for (const statement of statements()) {
      for (const action of asArray(statement.Action)) {
        expect(action).not.toContain('*');
        expect(action).not.toMatch(/^xray:/);
      }
      for (const r of asArray(statement.Resource)) expect(JSON.stringify(r)).not.toContain('*');
    }
  });

  it('uses no AWS managed policy (log writes are scoped to the function log group)', () => {
    expect(resources()[writerRoleId()]?.Properties?.ManagedPolicyArns).toBeUndefined();
  });
});

describe('monitoring', () => {
  const topicRef = () => ({ Ref: logicalId(synth.stack.alarmTopic.topic.node.defaultChild) });

  const queueAlarms = [
    {
      behaviour: 'alarms as soon as anything reaches the dead-letter queue',
      metric: 'ApproximateNumberOfMessagesVisible',
      queue: () => synth.stack.deadLetterQueue,
      threshold: 0,
    },
    {
      behaviour: 'alarms when the oldest candles message is older than 15 minutes',
      metric: 'ApproximateAgeOfOldestMessage',
      queue: () => synth.stack.candlesQueue,
      threshold: 15 * 60,
    },
  ];
  it.each(queueAlarms)('$behaviour', ({ metric, queue, threshold }) => {
    synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: metric,
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(queue().node.defaultChild), 'QueueName'] } }],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: threshold,
      AlarmActions: [topicRef()],
    });
  });

  it('publishes to a KMS-encrypted topic that refuses non-TLS publishers', () => {
    synth.template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: Match.anyValue(),
    });
    synth.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [topicRef()],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    synth.template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
  });
});

describe('outputs', () => {
  it('exports the queue URLs and the secret ARN', () => {
    const outputs = synth.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.CandlesQueueUrl?.Value).toEqual({ Ref: logicalId(synth.stack.candlesQueue.node.defaultChild) });
    expect(outputs.DeadLetterQueueUrl?.Value).toEqual({ Ref: logicalId(synth.stack.deadLetterQueue.node.defaultChild) });
    expect(outputs.DatabaseSecretArn?.Value).toEqual({ Ref: logicalId(synth.stack.databaseSecret.node.defaultChild) });
  });
});

describe('stage', () => {
  it('destroys the secret, log group and alarm key with a dev stack', () => {
    synth.template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Delete' });
    synth.template.hasResource('AWS::Logs::LogGroup', { DeletionPolicy: 'Delete' });
    synth.template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Delete' });
  });

  it('reads the validated markets from context', () => {
    expect(synth.stack.stage).toBe('dev');
    expect(synth.stack.markets).toContainEqual({
      exchange: 'binance',
      symbol: 'BTC/USDT',
      intervals: ['1m', '1h'],
      start: '2024-01-01',
    });
  });
});
