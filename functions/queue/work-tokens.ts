import * as z from 'zod';
import { sendBatches, type SqsClient } from './send.ts';

/**
 * A message on the backfill work queue: "there may be chunks to claim". It carries no chunk: workers
 * claim from the ledger, so a duplicate token costs one empty claim, and a worker that dies keeps its
 * token invisible only until the visibility timeout, after which another worker resumes.
 */
export const workTokenSchema = z.object({ backfillId: z.number().int().positive().optional() });
export type WorkToken = z.infer<typeof workTokenSchema>;

/** SQS caps a message delay at 15 minutes. */
export const MAX_DELAY_SECONDS = 900;

export async function sendWorkTokens(sqs: SqsClient, queueUrl: string, count: number, token: WorkToken = {}, delaySeconds = 0): Promise<void> {
  const body = JSON.stringify(token);
  const delay = Math.max(0, Math.min(MAX_DELAY_SECONDS, Math.ceil(delaySeconds)));
  const tokens = Array.from({ length: count }, (_, i) => ({ id: String(i), body, delaySeconds: delay }));
  const { failed } = await sendBatches(sqs, queueUrl, tokens);
  if (failed.length > 0) throw new Error(`could not queue ${failed.length} backfill work token(s): ${failed[0]?.reason}`);
}
