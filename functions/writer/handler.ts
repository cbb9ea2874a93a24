import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import { writeCandleMessages } from '../ingest/write-candles.ts';
import { sendToDeadLetter } from '../queue/dead-letter.ts';
import { CandleStore } from '../store/candles.ts';
import { getPool } from '../store/db.ts';

/** Read once per container; a missing or malformed setting fails the cold start loudly. */
const config = z
  .object({
    DEAD_LETTER_QUEUE_URL: z.url('DEAD_LETTER_QUEUE_URL must be the URL of the candles dead-letter queue'),
  })
  .parse(process.env);

/** The part of an SQS event the writer relies on, checked instead of assumed. */
const sqsEventSchema = z.object({
  Records: z.array(
    z.object({
      messageId: z.string().min(1),
      body: z.string(),
      attributes: z.object({ ApproximateReceiveCount: z.string().optional() }).partial().optional(),
    }),
  ),
});
export type WriterEvent = z.infer<typeof sqsEventSchema>;

const logger = new Logger({ serviceName: 'candlekeep-writer' });
const metrics = new Metrics({ namespace: 'candlekeep', serviceName: 'candlekeep-writer' });
const sqs = new SQSClient({});
const store = new CandleStore();

async function writeBatch(event: unknown): Promise<SQSBatchResponse> {
  const parsed = sqsEventSchema.safeParse(event);
  if (!parsed.success) throw new Error(`writer received an event that is not an SQS batch: ${parsed.error.issues[0]?.message}`);
  const started = performance.now();
  const db = await getPool();
  const outcome = await writeCandleMessages(
    parsed.data.Records.map((r) => ({ messageId: r.messageId, body: r.body, receiveCount: r.attributes?.ApproximateReceiveCount })),
    { db, store, deadLetter: (rejected) => sendToDeadLetter(sqs, config.DEAD_LETTER_QUEUE_URL, rejected) },
  );
  for (const r of outcome.rejected) {
    logger.warn('message rejected to the dead-letter queue', { messageId: r.messageId, reason: r.reason });
  }
  metrics.addMetric('CandlesWritten', MetricUnit.Count, outcome.written);
  metrics.addMetric('CandlesUnchanged', MetricUnit.Count, outcome.unchanged);
  metrics.addMetric('MessagesRejected', MetricUnit.Count, outcome.rejected.length);
  metrics.addMetric('BatchLatency', MetricUnit.Milliseconds, performance.now() - started);
  logger.info('batch written', {
    messages: outcome.messages,
    candles: outcome.received,
    written: outcome.written,
    unchanged: outcome.unchanged,
    rejected: outcome.rejected.length,
  });
  return { batchItemFailures: outcome.failedMessageIds.map((itemIdentifier) => ({ itemIdentifier })) };
}

export const handler = middy(writeBatch)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
