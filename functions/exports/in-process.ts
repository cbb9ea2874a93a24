import type { Db } from '../store/db.ts';
import { failExportJob } from '../store/export-jobs.ts';
import { redactSecrets } from '../lambda-kit/redact.ts';
import { runExportJob, type ExportJobOutcome } from './export-job.ts';
import { presign, type ExportService, type ExportServiceOptions } from './service.ts';

export interface InProcessExports extends ExportService {
  /** Waits for the exports running now (a server stopping lets them end). */
  drain(): Promise<void>;
}

/**
 * `candlekeep serve`'s path, with no queue: the same export job runs in this process, one at a
 * time in the order asked, writing to the bucket (LocalStack's, locally). A failure that the queue
 * would retry is recorded as the export's failure instead.
 */
export function inProcessExportService(
  opts: ExportServiceOptions & { db: () => Promise<Db>; retentionDays: number; onDone?: (id: string, outcome: ExportJobOutcome | Error) => void },
): InProcessExports {
  let chain: Promise<void> = Promise.resolve();
  return {
    async start(exportId) {
      chain = chain.then(async () => {
        try {
          const db = await opts.db();
          const outcome = await runExportJob({ db, s3: await opts.s3(), bucket: opts.bucket, retentionDays: opts.retentionDays, now: opts.now }, exportId).catch(
            async (err: unknown) => {
              const error = `the export failed: ${redactSecrets((err as Error).message)}`;
              await failExportJob(db, exportId, error);
              return { outcome: 'failed', error } as const;
            },
          );
          opts.onDone?.(exportId, outcome);
        } catch (err) {
          opts.onDone?.(exportId, err as Error);
        }
      });
    },
    downloadUrl: (key, fileName) => presign(opts, key, fileName),
    drain: () => chain,
  };
}
