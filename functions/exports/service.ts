import type { S3Client } from '@aws-sdk/client-s3';
import type { SqsClient } from '../queue/send.ts';
import { sqsModule } from '../queue/send.ts';
import type { ExportMessage } from './worker-lambda.ts';

/** Longest a download link may stay valid: a link that leaks stops working within the hour. */
export const MAX_DOWNLOAD_URL_SECONDS = 3600;
export const DEFAULT_DOWNLOAD_URL_SECONDS = 900;

/** What the API needs of the exports: hand one to the worker, and sign a download of a finished file. */
export interface ExportService {
  /** Hands a recorded export to the worker. */
  start(exportId: string): Promise<void>;
  /** A presigned GET of the file, as an attachment named `fileName`, and when it stops working (epoch ms). */
  downloadUrl(key: string, fileName: string): Promise<{ url: string; expiresAt: number }>;
}

export interface ExportServiceOptions {
  s3: () => Promise<S3Client>;
  bucket: string;
  /** Seconds a download link is valid. */
  urlSeconds: number;
  now: () => number;
}

export async function presign(opts: ExportServiceOptions, key: string, fileName: string): Promise<{ url: string; expiresAt: number }> {
  const [{ GetObjectCommand }, { getSignedUrl }] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/s3-request-presigner')]);
  const command = new GetObjectCommand({ Bucket: opts.bucket, Key: key, ResponseContentDisposition: `attachment; filename="${fileName}"` });
  const expiresAt = opts.now() + opts.urlSeconds * 1000;
  return { url: await getSignedUrl(await opts.s3(), command, { expiresIn: opts.urlSeconds }), expiresAt };
}

/** The deployed path: the export's id goes on the exports queue, whose worker Lambda makes the file. */
export function queuedExportService(opts: ExportServiceOptions & { sqs: () => Promise<SqsClient>; queueUrl: string }): ExportService {
  return {
    async start(exportId) {
      const { SendMessageCommand } = await sqsModule();
      const message: ExportMessage = { exportId };
      await (await opts.sqs()).send(new SendMessageCommand({ QueueUrl: opts.queueUrl, MessageBody: JSON.stringify(message) }));
    },
    downloadUrl: (key, fileName) => presign(opts, key, fileName),
  };
}
