import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DescribeEventBusCommand, EventBridgeClient, ListRulesCommand, ListTargetsByRuleCommand } from '@aws-sdk/client-eventbridge';
import { GetScheduleCommand, ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { DescribeSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, localStackServices } from '../../dev/localstack/index.ts';
import {
  deleteLocalStack,
  deployLocalTemplate,
  describeStack,
  localFunctions,
  localTemplate,
  synthesizeCandlekeep,
  type CfnResource,
  type Deployment,
  type LocalTemplate,
  type SynthesizedCandlekeep,
} from '../../dev/template/index.ts';
import { MAX_RECEIVE_COUNT } from '../../lib/constructs/consumer-queue.ts';
import { testSqs } from '../support/sqs.ts';

/**
 * What CI can check without Docker: the synthesized stack's non-Lambda resources, deployed to the
 * host LocalStack through CloudFormation by the same code `npm run dev` uses, are there and carry
 * the settings the template gives them. The stack is deleted afterwards.
 */
const execFileAsync = promisify(execFile);
const CLI = fileURLToPath(new URL('../../bin/candlekeep.js', import.meta.url));

let cfn: CloudFormationClient;
let sqs: SQSClient;
let synth: SynthesizedCandlekeep;
let local: LocalTemplate;
let deployment: Deployment;

beforeAll(async () => {
  const endpoint = process.env.AWS_ENDPOINT_URL!;
  cfn = new CloudFormationClient(awsClientConfig(endpoint));
  sqs = testSqs();
  synth = await synthesizeCandlekeep({ stackName: `CandlekeepDeployTest-${randomBytes(4).toString('hex')}` });
  local = localTemplate(synth, { services: await localStackServices(endpoint), inboxes: true });
  deployment = await deployLocalTemplate(cfn, synth.stackName, local, { endpoint });
}, 120_000);

afterAll(async () => {
  if (synth) await deleteLocalStack(cfn, synth.stackName);
});

function resource(id: string): CfnResource {
  const r = synth.template.Resources[id];
  if (!r) throw new Error(`no ${id} in the template`);
  return r;
}

async function queueAttributes(url: string): Promise<Record<string, string>> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }));
  return out.Attributes ?? {};
}

describe('the synthesized template deployed to LocalStack through CloudFormation', () => {
  it('leaves out only the Lambda side and keeps every queue, the secret, the bus and the schedules', () => {
    const types = (resources: Record<string, CfnResource>) => Object.values(resources).map((r) => r.Type);
    const deployed = types(local.template.Resources);
    expect(deployed.filter((t) => t.startsWith('AWS::Lambda') || t.startsWith('AWS::ApiGateway'))).toEqual([]);
    for (const type of ['AWS::SQS::Queue', 'AWS::SecretsManager::Secret', 'AWS::Events::EventBus', 'AWS::Events::Rule', 'AWS::Scheduler::ScheduleGroup', 'AWS::Scheduler::Schedule']) {
      // Every resource of these types in the stack is deployed (the inbox queues come on top).
      const inStack = types(synth.template.Resources).filter((t) => t === type).length;
      expect(deployed.filter((t) => t === type).length, type).toBeGreaterThanOrEqual(inStack);
    }
    // Nothing in the deployed template still points at a resource that is not deployed.
    const text = JSON.stringify(local.template);
    for (const id of local.removed.keys()) expect(text, id).not.toMatch(new RegExp(`"(Ref|Fn::GetAtt)":\\s*\\[?"${id}"`));
  });

  it('created the candles queue and its dead-letter queue with the redrive policy and timeouts of the template', async () => {
    const queue = await queueAttributes(deployment.outputs.CandlesQueueUrl!);
    const dlq = await queueAttributes(deployment.outputs.DeadLetterQueueUrl!);
    const props = resource(synth.ids.candlesQueue).Properties!;

    const redrive = JSON.parse(queue.RedrivePolicy ?? '{}') as { deadLetterTargetArn?: string; maxReceiveCount?: number | string };
    expect(Number(redrive.maxReceiveCount)).toBe(MAX_RECEIVE_COUNT);
    expect(Number(redrive.maxReceiveCount)).toBe((props.RedrivePolicy as { maxReceiveCount: number }).maxReceiveCount);
    expect(redrive.deadLetterTargetArn).toBe(dlq.QueueArn);
    expect(Number(queue.VisibilityTimeout)).toBe(props.VisibilityTimeout);
    expect(Number(queue.MessageRetentionPeriod)).toBe(props.MessageRetentionPeriod);
    expect(Number(dlq.MessageRetentionPeriod)).toBe(resource(synth.ids.deadLetterQueue).Properties!.MessageRetentionPeriod);

    // The backfill work queue has its own DLQ the same way.
    const work = local.template.Resources;
    const workId = Object.keys(work).find((id) => id.startsWith('BackfillWorkQueue') && work[id]!.Type === 'AWS::SQS::Queue')!;
    const workAttrs = await queueAttributes(deployment.ref(workId));
    expect(Number((JSON.parse(workAttrs.RedrivePolicy ?? '{}') as { maxReceiveCount?: number }).maxReceiveCount)).toBe(
      (resource(workId).Properties!.RedrivePolicy as { maxReceiveCount: number }).maxReceiveCount,
    );
  });

  it('created the database secret', async () => {
    const secrets = new SecretsManagerClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
    const secret = await secrets.send(new DescribeSecretCommand({ SecretId: deployment.outputs.DatabaseSecretArn! }));
    expect(secret.ARN).toBe(deployment.outputs.DatabaseSecretArn);
    expect(secret.Description).toBe(resource(synth.ids.databaseSecret).Properties!.Description);
  });

  it('created the pull schedules with their rates and inputs, and the backfill bus with its rule', async () => {
    const endpoint = process.env.AWS_ENDPOINT_URL!;
    const scheduler = new SchedulerClient(awsClientConfig(endpoint));
    const planned = localFunctions(synth).schedules;
    expect(planned.length).toBeGreaterThan(0);
    for (const s of planned) {
      const group = resource(s.logicalId).Properties!.GroupName as string;
      const got = await scheduler.send(new GetScheduleCommand({ GroupName: group, Name: deployment.ref(s.logicalId) }));
      expect(got.ScheduleExpression).toBe(s.expression);
      expect(JSON.parse(got.Target?.Input ?? 'null')).toEqual(s.input);
      expect(got.State).toBe('ENABLED');
      expect(got.FlexibleTimeWindow?.Mode).toBe('OFF');
      const listed = await scheduler.send(new ListSchedulesCommand({ GroupName: group }));
      expect(listed.Schedules?.map((x) => x.Name)).toContain(deployment.ref(s.logicalId));
    }

    const events = new EventBridgeClient(awsClientConfig(endpoint));
    const bus = deployment.outputs.BackfillBusName!;
    expect((await events.send(new DescribeEventBusCommand({ Name: bus }))).Arn).toBe(deployment.outputs.BackfillBusArn);
    const rules = (await events.send(new ListRulesCommand({ EventBusName: bus }))).Rules ?? [];
    expect(rules).toHaveLength(1);
    expect(JSON.parse(rules[0]!.EventPattern!)).toEqual({ source: ['candlekeep'], 'detail-type': ['Backfill Requested'] });
    // The planner's place as the target is taken by its inbox queue locally.
    const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: rules[0]!.Name!, EventBusName: bus }))).Targets ?? [];
    expect(targets.map((t) => t.Arn)).toEqual([deployment.arn(local.inboxes.get(synth.ids.functions.planner)!)]);
  });

  it('gives `candlekeep redrive --stack` the queue URLs from the stack outputs', async () => {
    const { stdout } = await execFileAsync(process.execPath, [CLI, 'redrive', '--stack', synth.stackName, '--dry-run', '--json'], { env: process.env });
    expect(JSON.parse(stdout)).toMatchObject({ dryRun: true, moved: 0, from: deployment.outputs.DeadLetterQueueUrl, to: deployment.outputs.CandlesQueueUrl });
  });

  it('a second deploy of the same template is a no-op update, and deleting the stack removes its resources', async () => {
    await deployLocalTemplate(cfn, synth.stackName, local, { endpoint: process.env.AWS_ENDPOINT_URL! });
    const queueName = deployment.outputs.CandlesQueueUrl!.split('/').at(-1)!;
    await deleteLocalStack(cfn, synth.stackName);
    expect(await describeStack(cfn, synth.stackName)).toBeUndefined();
    await expect(sqs.send(new GetQueueUrlCommand({ QueueName: queueName }))).rejects.toThrow(/does not exist|NonExistentQueue/i);
  });
});
