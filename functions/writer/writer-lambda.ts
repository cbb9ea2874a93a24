import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import { writeCandleMessages } from '../ingest/write-candles.ts';
import type { QueueDeps } from '../lambda-kit/container.ts';
import { configReader } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { batchResponse, parseSqsEvent } from '../lambda-kit/sqs-event.ts';
import { recordRejections } from '../ingest/dead-letter-ledger.ts';
import { DEAD_LETTER_ID_ATTRIBUTE, sendRejections, type Rejected } from '../queue/dead-letter.ts';
import { CandleStore } from '../store/candles.ts';
import { forgetDeadLetters } from '../store/dead-letters.ts';
import { SeriesRegistry } from '../store/series.ts';

const configSchema = z
  .object({
    DEAD_LETTER_QUEUE_URL: z.url('DEAD_LETTER_QUEUE_URL must be the URL of the candles dead-letter queue'),
  })
  .transform((e) => ({ deadLetterQueueUrl: e.DEAD_LETTER_QUEUE_URL }));
export const readWriterConfig = configReader(configSchema, SERVICES.writer);
export type WriterConfig = ReturnType<typeof readWriterConfig>;

/** The container's clients; a test or a local run may also pass its own candle store. */
export type WriterDeps = QueueDeps & { store?: CandleStore };

/**
 * The writer Lambda: an SQS batch of CandleBatch messages → one upsert; invalid messages go to the
 * dead-letter queue with their reason (and into the dead-letter ledger), and only messages that
 * could not be handled are reported as batch item failures.
 */
export function createWriterHandler(config: WriterConfig, deps: WriterDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.writer, deps);
  const store = deps.store ?? new CandleStore();
  const registry = new SeriesRegistry();

  async function writeBatch(event: unknown): Promise<SQSBatchResponse> {
    const batch = parseSqsEvent(event, 'writer');
    const started = performance.now();
    const db = await deps.db();
    const deadLetter = async (rejected: readonly Rejected[]): Promise<string[]> => {
      const { failed, sent } = await sendRejections(deps.sqs, config.deadLetterQueueUrl, rejected);
      // The messages are safely in the dead-letter queue; recording them is a courtesy the next scan
      // repeats, so a failure here must not fail the batch (a redelivery would dead-letter them twice).
      await recordRejections(db, registry, sent).catch((err: unknown) =>
        logger.warn('could not record dead-lettered messages; the next dead-letter scan will', { error: (err as Error).message }),
      );
      return failed;
    };
    const outcome = await writeCandleMessages(
      batch.Records.map((r) => ({ messageId: r.messageId, body: r.body, receiveCount: r.attributes?.ApproximateReceiveCount })),
      { db, store, deadLetter },
    );
    // Redriven messages have left the dead-letter queue for good (stored now, or rejected again
    // under a new id): their old records go at once, so the counts do not wait for the next scan.
    const redriven = batch.Records.flatMap((r) => r.messageAttributes?.[DEAD_LETTER_ID_ATTRIBUTE]?.stringValue ?? []).filter(Boolean);
    if (redriven.length > 0) {
      await forgetDeadLetters(db, redriven).catch((err: unknown) =>
        logger.warn('could not clear the dead-letter records of redriven messages; the next dead-letter scan will', { error: (err as Error).message }),
      );
    }
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
    return batchResponse(outcome.failedMessageIds);
  }

  return withPowertools(middy(writeBatch), { logger, metrics });
}
