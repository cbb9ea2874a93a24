import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { once } from '../../functions/lambda-kit/env.ts';
import { createPool, type Db } from '../../functions/store/db.ts';
import { createWriterHandler } from '../../functions/writer/writer-lambda.ts';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/** A Lambda container's pool for a test's handler: opened on first use, as in AWS, and closed by the test. */
export function containerPool(databaseUrl: string, max = 2): { db: () => Promise<Db>; close(): Promise<void> } {
  const db = once(async () => createPool(databaseUrl, { max }));
  let used = false;
  return {
    db: () => {
      used = true;
      return db();
    },
    async close() {
      if (used) await (await db()).end();
    },
  };
}

/** The real writer Lambda handler with the test's dead-letter queue, database and SQS client. */
export function testWriter(opts: { sqs: SQSClient; dlqUrl: string; databaseUrl: string }): { handler: SqsHandler; close(): Promise<void> } {
  const pool = containerPool(opts.databaseUrl);
  const handler = createWriterHandler({ deadLetterQueueUrl: opts.dlqUrl }, { db: pool.db, sqs: opts.sqs }) as unknown as SqsHandler;
  return { handler, close: pool.close };
}
