import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_RETENTION_DAYS } from '../../functions/exports/request.ts';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { MAX_RECEIVE_COUNT } from '../../lib/constructs/consumer-queue.ts';
import { EXPORT_WORKER_TIMEOUT } from '../../lib/constructs/exports.ts';
import { createApp, type CfnResource } from './support.ts';

type Resources = Record<string, CfnResource>;
let stack: CandlekeepStack;
let template: Template;
const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

beforeAll(() => {
  stack = new CandlekeepStack(createApp({ 'aws:cdk:bundling-stacks': [] }), 'Candlekeep-dev');
  template = Template.fromStack(stack);
}, 120_000);

/** Every IAM statement attached to a function's role. */
function statementsOf(fn: { serviceRole: { node: { defaultChild?: unknown } } }): { Action: string | string[]; Resource: unknown; Effect: string }[] {
  const role = id(fn.serviceRole);
  return Object.values(template.findResources('AWS::IAM::Policy') as Resources)
    .filter((p) => JSON.stringify(p.Properties!.Roles) === JSON.stringify([{ Ref: role }]))
    .flatMap((p) => (p.Properties!.PolicyDocument as { Statement: never[] }).Statement);
}

describe('the exports bucket', () => {
  it('is private, encrypted, TLS-only and expires files and unfinished uploads', () => {
    const bucket = (template.findResources('AWS::S3::Bucket') as Resources)[id(stack.exports.bucket)]!;
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LifecycleConfiguration: {
        Rules: [
          { Id: 'expire-exports', Prefix: 'exports/', ExpirationInDays: EXPORT_RETENTION_DAYS, Status: 'Enabled' },
          { Id: 'abort-unfinished-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        ],
      },
    });
    const policy = Object.values(template.findResources('AWS::S3::BucketPolicy') as Resources).find(
      (p) => JSON.stringify(p.Properties!.Bucket) === JSON.stringify({ Ref: id(stack.exports.bucket) }),
    )!;
    expect((policy.Properties!.PolicyDocument as { Statement: unknown[] }).Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('is kept when a prod stack is deleted and removed with a dev stack', () => {
    template.hasResource('AWS::S3::Bucket', { Properties: { LifecycleConfiguration: { Rules: [{ Id: 'expire-exports' }, {}] } }, DeletionPolicy: 'Delete' });
    const prod = new CandlekeepStack(createApp({ 'aws:cdk:bundling-stacks': [], 'candlekeep:stage': 'prod' }), 'Candlekeep-prod');
    const bucket = (Template.fromStack(prod).findResources('AWS::S3::Bucket') as Record<string, { DeletionPolicy?: string }>)[prod.getLogicalId(prod.exports.bucket.node.defaultChild as never)];
    expect(bucket?.DeletionPolicy).toBe('Retain');
  });
});

describe('the export worker and its queue', () => {
  it('consumes the work queue one export at a time with partial batch responses, two at most at once', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: id(stack.exports.worker) },
      EventSourceArn: { 'Fn::GetAtt': [id(stack.exports.workQueue), 'Arn'] },
      BatchSize: 1,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Timeout: EXPORT_WORKER_TIMEOUT.toSeconds(),
      MemorySize: 1024,
      Environment: { Variables: { EXPORTS_BUCKET: { Ref: id(stack.exports.bucket) }, EXPORT_RETENTION_DAYS: String(EXPORT_RETENTION_DAYS), POWERTOOLS_SERVICE_NAME: 'candlekeep-export-worker' } },
    });
  });

  it('has a dead-letter queue and a visibility timeout of six worker timeouts, TLS only', () => {
    const queue = (template.findResources('AWS::SQS::Queue') as Resources)[id(stack.exports.workQueue)]!;
    expect(queue.Properties).toMatchObject({
      VisibilityTimeout: 6 * EXPORT_WORKER_TIMEOUT.toSeconds(),
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [id(stack.exports.deadLetterQueue), 'Arn'] }, maxReceiveCount: MAX_RECEIVE_COUNT },
      SqsManagedSseEnabled: true,
    });
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy') as Resources).filter((p) =>
      JSON.stringify(p.Properties!.Queues).includes(id(stack.exports.workQueue)),
    );
    expect(JSON.stringify(policies)).toContain('"aws:SecureTransport":"false"');
  });

  it('may only write (and abort uploads) under the exports prefix; the API may only queue exports and read them there', () => {
    const objects = { 'Fn::Join': ['', [{ 'Fn::GetAtt': [id(stack.exports.bucket), 'Arn'] }, '/exports/*']] };
    const worker = statementsOf(stack.exports.worker).filter((s) => JSON.stringify(s.Action).includes('s3:'));
    expect(worker).toEqual([expect.objectContaining({ Effect: 'Allow', Action: ['s3:AbortMultipartUpload', 's3:PutObject'], Resource: objects })]);
    const api = statementsOf(stack.api.handler);
    expect(api.filter((s) => JSON.stringify(s.Action).includes('s3:'))).toEqual([expect.objectContaining({ Action: 's3:GetObject', Resource: objects })]);
    expect(api).toContainEqual(expect.objectContaining({ Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [id(stack.exports.workQueue), 'Arn'] } }));
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          CANDLEKEEP_EXPORTS_BUCKET: { Ref: id(stack.exports.bucket) },
          CANDLEKEEP_EXPORTS_QUEUE_URL: { Ref: id(stack.exports.workQueue) },
          POWERTOOLS_SERVICE_NAME: 'candlekeep-api',
        },
      },
    });
  });
});

describe('export alarms', () => {
  const alarms = () => Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources).map((a) => a.Properties!);
  const topic = () => [{ Ref: id(stack.alarmTopic.topic) }];

  it('alarm on anything in the exports dead-letter queue and on an export waiting 30 minutes, to the alarm topic', () => {
    const dlq = JSON.stringify({ 'Fn::GetAtt': [id(stack.exports.deadLetterQueue), 'QueueName'] });
    const dead = alarms().filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && JSON.stringify(a.Dimensions).includes(dlq));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', AlarmActions: topic(), OKActions: topic() });
    const queue = JSON.stringify({ 'Fn::GetAtt': [id(stack.exports.workQueue), 'QueueName'] });
    const age = alarms().filter((a) => a.MetricName === 'ApproximateAgeOfOldestMessage' && JSON.stringify(a.Dimensions).includes(queue));
    expect(age).toHaveLength(1);
    expect(age[0]).toMatchObject({ Threshold: 1800, Statistic: 'Maximum', ComparisonOperator: 'GreaterThanThreshold', AlarmActions: topic(), OKActions: topic() });
  });

  it('alarm on the worker\'s errors and throttles', () => {
    const fn = JSON.stringify([{ Name: 'FunctionName', Value: { Ref: id(stack.exports.worker) } }]);
    for (const metric of ['Errors', 'Throttles']) {
      expect(alarms().filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === metric && JSON.stringify(a.Dimensions) === fn), metric).toHaveLength(1);
    }
  });
});
