import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { once, type Env } from '../lambda-kit/env.ts';

/**
 * The S3 client of the exports, made with its SDK module on first use (the API needs it only to
 * sign a download link). An endpoint in the environment (LocalStack) gets path-style URLs, so
 * presigned links point at that host rather than at a `<bucket>.<host>` name that does not resolve.
 */
export function lazyS3Client(env: Env, config: S3ClientConfig = {}): () => Promise<S3Client> {
  const endpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  return once(async () => {
    const { S3Client } = await import('@aws-sdk/client-s3');
    return new S3Client({ ...(endpoint ? { endpoint, forcePathStyle: true } : {}), ...config });
  });
}
