import { sqsModule, type SqsClient } from './send.ts';

export interface QueueCounts {
  /** Waiting to be received. */
  visible: number;
  /** Received and not yet deleted (or back after their visibility timeout). */
  inFlight: number;
}

/** SQS's approximate counts of a queue; visible + in flight = 0 means everything was handled and deleted. */
export async function queueCounts(sqs: SqsClient, queueUrl: string): Promise<QueueCounts> {
  const { GetQueueAttributesCommand } = await sqsModule();
  const out = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return {
    visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}
