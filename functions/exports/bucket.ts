import type { S3Client } from '@aws-sdk/client-s3';
import { EXPORT_RETENTION_DAYS, EXPORTS_PREFIX } from './request.ts';

/**
 * Creates the exports bucket when it is missing, with the stack's lifecycle rule (files expire
 * after EXPORT_RETENTION_DAYS, unfinished uploads after a day): for a local S3 (LocalStack) that
 * `candlekeep serve` writes to. In AWS the stack owns the bucket.
 */
export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  const { CreateBucketCommand, HeadBucketCommand, PutBucketLifecycleConfigurationCommand } = await import('@aws-sdk/client-s3');
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return;
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 404) throw err;
  }
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(
    new PutBucketLifecycleConfigurationCommand({
      Bucket: bucket,
      LifecycleConfiguration: {
        Rules: [
          { ID: 'expire-exports', Status: 'Enabled', Filter: { Prefix: EXPORTS_PREFIX }, Expiration: { Days: EXPORT_RETENTION_DAYS } },
          { ID: 'abort-unfinished-uploads', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
        ],
      },
    }),
  );
}
