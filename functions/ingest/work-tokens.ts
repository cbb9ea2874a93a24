import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import * as z from 'zod';

/**
 * A message on the backfill work queue: "there may be chunks to claim". It carries no chunk: workers
 * claim from the ledger, so a duplicate token costs one empty claim, and a worker that dies keeps its
 * token invisible only until the visibility timeout, after which another worker resumes.
 */
export const workTokenSchema = z.object({ backfillId: z.number().int().positive().optional() });
export type WorkToken = z.infer<typeof workTokenSchema>;

/** SQS caps a message delay at 15 minutes. */
export const MAX_DELAY_SECONDS = 900;

export async function sendWorkTokens(sqs: SQSClient, queueUrl: string, count: number, token: WorkToken = {}, delaySeconds = 0): Promise<void> {
  const body = JSON.stringify(token);
  const delay = Math.max(0, Math.min(MAX_DELAY_SECONDS, Math.ceil(delaySeconds)));
  for (let sent = 0; sent < count; sent += 10) {
    const n = Math.min(10, count - sent);
    const out = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: Array.from({ length: n }, (_, i) => ({ Id: String(i), MessageBody: body, DelaySeconds: delay })),
      }),
    );
    if (out.Failed?.length) throw new Error(`could not queue ${out.Failed.length} backfill work token(s): ${out.Failed[0]?.Message ?? out.Failed[0]?.Code}`);
  }
}
