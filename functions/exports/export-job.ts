import { finished } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { DomainError } from '../errors.ts';
import { redactSecrets } from '../lambda-kit/redact.ts';
import type { Queryable } from '../store/db.ts';
import { failExportJob, finishExportJob, recordExportProgress, startExportJob, type ExportJobProgress } from '../store/export-jobs.ts';
import { writeExport } from './export.ts';
import { planExport } from './plan.ts';
import { CONTENT_TYPES, exportKey, exportRequestSchema } from './request.ts';
import { S3Upload } from './s3-upload.ts';

/** An export whose worker stopped this many times without an answer is failed instead of started again. */
export const MAX_ATTEMPTS = 3;

/** The worker's time is running out: the export is failed with what it managed, not retried (it would run out again). */
class OutOfTime extends Error {}

export interface ExportJobDeps {
  db: Queryable;
  s3: S3Client;
  bucket: string;
  now: () => number;
  /** Days the bucket keeps a file (its lifecycle rule): the answer's expiry. */
  retentionDays: number;
  /** True when the worker must stop now to answer in time. Default: never. */
  shouldStop?: () => boolean;
  /** Least time between two progress writes, ms. Default 1000. */
  progressEveryMs?: number;
  /** Bytes per multipart part (default S3Upload's). */
  partBytes?: number;
}

export type ExportJobOutcome =
  | { outcome: 'done'; rows: number; bytes: number; key: string }
  | { outcome: 'failed'; error: string }
  /** Already finished or not there: a redelivered message. */
  | { outcome: 'skipped' };

/** S3 answers that a retry will not change. */
const PERMANENT_S3 = new Set(['NoSuchBucket', 'AccessDenied', 'InvalidBucketName', 'AllAccessDisabled', 'InvalidAccessKeyId']);

/**
 * Runs one export: plans it, streams the file into the bucket by multipart upload (one part held
 * at a time, one page of candles read ahead), records progress as it goes and ends the row done
 * with its object key, or failed with a reason a user can act on. A failure that may pass (the
 * database or S3 unreachable) is thrown, so the queue delivers the export again, up to
 * MAX_ATTEMPTS starts.
 */
export async function runExportJob(deps: ExportJobDeps, id: string): Promise<ExportJobOutcome> {
  const { db, now } = deps;
  const job = await startExportJob(db, id);
  if (!job) return { outcome: 'skipped' };
  const attempt = job.attempts;
  const fail = async (error: string): Promise<ExportJobOutcome> => {
    await failExportJob(db, id, error, attempt);
    return { outcome: 'failed', error };
  };
  if (attempt > MAX_ATTEMPTS) {
    return fail(`the export worker stopped ${MAX_ATTEMPTS} times before finishing this export; ask for a shorter range or fewer series`);
  }
  const parsed = exportRequestSchema.safeParse(job.request);
  if (!parsed.success) return fail(`the stored request is not a valid export request: ${parsed.error.issues[0]?.message}`);
  const request = parsed.data;

  const key = exportKey(id, request.format);
  let upload: S3Upload | undefined;
  let progress: ExportJobProgress = { sourceCandles: 0, totalSourceCandles: 0, rows: 0, bytes: 0 };
  let lastWrite = 0;
  let writing: Promise<void> = Promise.resolve();
  const every = deps.progressEveryMs ?? 1000;
  try {
    const plan = await planExport(db, request);
    progress = { ...progress, totalSourceCandles: plan.sourceCandles };
    await recordExportProgress(db, id, attempt, progress);
    upload = new S3Upload({ s3: deps.s3, bucket: deps.bucket, key, contentType: CONTENT_TYPES[request.format], ...(deps.partBytes ? { partBytes: deps.partBytes } : {}) });
    const out = upload;
    const result = await writeExport(db, plan, out, {
      onProgress: (p) => {
        if (deps.shouldStop?.()) {
          throw new OutOfTime(
            `the export did not finish in the worker's time (${p.sourceCandles} of ${p.totalSourceCandles} stored candles read); ` +
              'ask for a shorter range or fewer series',
          );
        }
        progress = { sourceCandles: p.sourceCandles, totalSourceCandles: p.totalSourceCandles, rows: p.rows, bytes: out.bytes };
        if (now() - lastWrite < every) return;
        lastWrite = now();
        const snapshot = progress;
        writing = writing.then(() => recordExportProgress(db, id, attempt, snapshot));
      },
    });
    out.end();
    await finished(out);
    await writing;
    const done = { sourceCandles: result.sourceCandles, totalSourceCandles: plan.sourceCandles, rows: result.rows, bytes: out.bytes };
    await finishExportJob(db, id, attempt, { ...done, resultKey: key, expiresAt: now() + deps.retentionDays * 86_400_000 });
    return { outcome: 'done', rows: result.rows, bytes: out.bytes, key };
  } catch (err) {
    upload?.destroy();
    if (upload) await finished(upload).catch(() => {});
    await writing.catch(() => {});
    if (err instanceof DomainError || err instanceof OutOfTime) return fail(err.message);
    const name = (err as { name?: string }).name ?? '';
    if ((err as { $metadata?: unknown }).$metadata !== undefined && PERMANENT_S3.has(name)) {
      return fail(`the exports bucket ${deps.bucket} refused the file (${name}): ${redactSecrets((err as Error).message)}`);
    }
    // Perhaps passing: the message comes back and the export starts again, unless this was its last try.
    if (attempt >= MAX_ATTEMPTS) return fail(`the export failed on each of its ${MAX_ATTEMPTS} attempts; the last said: ${redactSecrets((err as Error).message)}`);
    throw err;
  }
}
