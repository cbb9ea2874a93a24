import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import * as z from 'zod';
import { configReader, type Env } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools, type Observability } from '../lambda-kit/powertools.ts';
import { batchResponse, parseSqsEvent, readRecordBody } from '../lambda-kit/sqs-event.ts';
import { lazyPool, type Db } from '../store/db.ts';
import { EXPORT_RETENTION_DAYS } from './request.ts';
import { lazyS3Client } from './s3-client.ts';

/** What the API puts on the exports queue: the id of a row in `exports`. */
export const exportMessageSchema = z.object({ exportId: z.uuid() }).strict();
export type ExportMessage = z.infer<typeof exportMessageSchema>;

const configSchema = z
  .object({
    EXPORTS_BUCKET: z.string().min(3, 'EXPORTS_BUCKET must name the exports bucket'),
    EXPORT_RETENTION_DAYS: z.coerce.number().int().min(1).max(365).default(EXPORT_RETENTION_DAYS),
    /** Stop and fail the export when less than this remains of the invocation, so the answer is written in time. */
    STOP_MARGIN_MS: z.coerce.number().int().positive().default(30_000),
  })
  .transform((e) => ({ bucket: e.EXPORTS_BUCKET, retentionDays: e.EXPORT_RETENTION_DAYS, stopMarginMs: e.STOP_MARGIN_MS }));
export const readExportWorkerConfig = configReader(configSchema, SERVICES.exportWorker);
export type ExportWorkerConfig = ReturnType<typeof readExportWorkerConfig>;

export interface ExportWorkerDeps extends Observability {
  db: () => Promise<Db>;
  s3: () => Promise<S3Client>;
  now?: () => number;
}

export function liveExportWorkerDeps(env: Env): ExportWorkerDeps {
  return { db: lazyPool(env), s3: lazyS3Client(env) };
}

/**
 * Exports queue consumer, one message at a time: runs the export the message names. An export that
 * cannot be made (no such series, too many digits, out of time) ends failed in its row and the
 * message is done; one that met a passing failure (database or S3 unreachable) is reported as a
 * batch item failure, so SQS delivers it again after the visibility timeout.
 */
export function createExportWorkerHandler(config: ExportWorkerConfig, deps: ExportWorkerDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.exportWorker, deps);
  const now = deps.now ?? Date.now;

  async function work(event: unknown, context: Context): Promise<SQSBatchResponse> {
    const batch = parseSqsEvent(event, 'export worker');
    const failures: string[] = [];
    for (const record of batch.Records) {
      const read = readRecordBody(record, exportMessageSchema, 'an export message');
      if (!read.ok) {
        // Retrying cannot make it readable: it is dropped, and said so.
        logger.error('dropping a message that names no export', { messageId: read.messageId, reason: read.reason });
        continue;
      }
      const { exportId } = read.message;
      try {
        // Loaded with the first export rather than at init: Parquet encoding compiles a WebAssembly module.
        const { runExportJob } = await import('./export-job.ts');
        const result = await runExportJob(
          {
            db: await deps.db(),
            s3: await deps.s3(),
            bucket: config.bucket,
            retentionDays: config.retentionDays,
            now,
            shouldStop: () => context.getRemainingTimeInMillis() < config.stopMarginMs,
          },
          exportId,
        );
        if (result.outcome === 'done') {
          metrics.addMetric('ExportRows', MetricUnit.Count, result.rows);
          metrics.addMetric('ExportBytes', MetricUnit.Bytes, result.bytes);
          logger.info('export done', { exportId, rows: result.rows, bytes: result.bytes });
        } else if (result.outcome === 'failed') {
          metrics.addMetric('ExportsFailed', MetricUnit.Count, 1);
          logger.warn('export failed', { exportId, error: result.error });
        } else logger.info('export already finished; message ignored', { exportId });
      } catch (err) {
        logger.error('export interrupted; SQS will deliver it again', { exportId, error: err as Error });
        failures.push(record.messageId);
      }
    }
    return batchResponse(failures);
  }

  return withPowertools(middy(work), { logger, metrics });
}
