import {
  CreateEventBusCommand,
  DeleteEventBusCommand,
  DeleteRuleCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { awsClientConfig } from '../../dev/localstack/index.ts';
import { uniqueName } from './db.ts';
import { pollUntil } from './poll.ts';
import { testSqs } from './sqs.ts';

export interface WatchedBus {
  /** The bus name (what CANDLEKEEP_BACKFILL_BUS holds). */
  name: string;
  /** The bus ARN (what a schedule targets). */
  arn: string;
  events: EventBridgeClient;
  /** The next event a rule for source `candlekeep` delivered, parsed; fails after the deadline. */
  nextEvent(timeoutMs?: number): Promise<{ id: string; source: string; 'detail-type': string; detail: Record<string, unknown> }>;
  delete(): Promise<void>;
}

/** A uniquely named EventBridge bus on LocalStack whose `candlekeep` events a rule copies into an SQS queue, so a test can read them. */
export async function watchedBus(prefix: string): Promise<WatchedBus> {
  const events = new EventBridgeClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
  const sqs = testSqs();
  const name = uniqueName(prefix);
  const arn = (await events.send(new CreateEventBusCommand({ Name: name }))).EventBusArn!;
  const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
  const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  const policy = { Statement: [{ Effect: 'Allow', Principal: '*', Action: 'sqs:SendMessage', Resource: queueArn }] };
  await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { Policy: JSON.stringify(policy) } }));
  await events.send(new PutRuleCommand({ Name: 'all', EventBusName: name, EventPattern: JSON.stringify({ source: ['candlekeep'] }) }));
  await events.send(new PutTargetsCommand({ Rule: 'all', EventBusName: name, Targets: [{ Id: 'q', Arn: queueArn }] }));
  return {
    name,
    arn,
    events,
    async nextEvent(timeoutMs = 15_000) {
      const m = await pollUntil(async () => (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1 }))).Messages?.[0], {
        timeoutMs,
        description: `an event on ${name}`,
      });
      return JSON.parse(m.Body!);
    },
    async delete() {
      await events.send(new RemoveTargetsCommand({ Rule: 'all', EventBusName: name, Ids: ['q'] }));
      await events.send(new DeleteRuleCommand({ Name: 'all', EventBusName: name }));
      await events.send(new DeleteEventBusCommand({ Name: name }));
      await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    },
  };
}
