import { defineCommand, progress, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { PORT_OPTION } from '../options.ts';
import { migrate } from '../../functions/store/migrate.ts';
import { localAuthorizer, startLocalServer, type ProxyHandler } from '../../dev/local-api.ts';
import type { ApiConfig } from '../../functions/api/api-lambda.ts';
import { ensureBucket } from '../../functions/exports/bucket.ts';
import { EXPORT_RETENTION_DAYS } from '../../functions/exports/request.ts';
import { lazyS3Client } from '../../functions/exports/s3-client.ts';
import { DEFAULT_DOWNLOAD_URL_SECONDS } from '../../functions/exports/service.ts';
import type { Db } from '../../functions/store/db.ts';

export const command = defineCommand({
  summary: 'serve the HTTP API and the web console on localhost (same handlers as API Gateway); keys from candlekeep keys, and CANDLEKEEP_API_KEY',
  options: {
    port: { ...PORT_OPTION, default: '8080' },
    host: { type: 'string', value: '<address>', default: '127.0.0.1', description: 'address to listen on (0.0.0.0 exposes the API to the network)' },
  },
  notes: [
    'Keys: those stored with `candlekeep keys create` (read, write or admin), and CANDLEKEEP_API_KEY, an admin key.',
    'Environment: CANDLEKEEP_API_KEY (optional, at least 8 characters), DATABASE_URL (default: the embedded PostgreSQL),',
    'CANDLEKEEP_BACKFILL_BUS (optional: the bus POST /v1/backfills puts requests on; without it that route answers 501),',
    'CANDLEKEEP_EXPORTS_BUCKET (optional: the S3 bucket POST /v1/exports writes files to, by the export worker running in this process;',
    'with AWS_ENDPOINT_URL set, e.g. LocalStack\'s http://127.0.0.1:4566, the bucket is made there if missing and download URLs point there).',
    'The web console is served at /console/.',
  ],
  async run({ values }) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a port number');
    const apiKey = process.env.CANDLEKEEP_API_KEY || undefined;
    if (apiKey !== undefined && apiKey.length < 8) {
      throw new UsageError('CANDLEKEEP_API_KEY must be at least 8 characters (or unset it and use keys from candlekeep keys create)');
    }
    process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
    process.env.POWERTOOLS_SERVICE_NAME ??= 'candlekeep-api';
    return withLocalDatabase(async (pool) => {
      await migrate(pool, { log: progress });
      // Built after the environment above is set: its logger reads the Powertools variables.
      const { createApiHandler, readApiConfig } = await import('../../functions/api/api-lambda.ts');
      const config = readApiConfig(process.env);
      const exports = config.exportsBucket ? await localExports(config, pool) : undefined;
      const handler = createApiHandler(config, { db: async () => pool, ...(exports ? { exports } : {}) }) as unknown as ProxyHandler;
      const { buildConsole } = await import('../../console/build.ts');
      const authorizer = localAuthorizer({ db: async () => pool, apiKey });
      const server = await startLocalServer({ handler, authorizer, port, host: values.host, console: await buildConsole() });
      progress(`candlekeep API on ${server.url}/v1 (try: curl -H "x-api-key: $CANDLEKEEP_API_KEY" ${server.url}/v1/markets); Ctrl-C to stop`);
      if (apiKey === undefined) progress('CANDLEKEEP_API_KEY is unset: only keys from `candlekeep keys create` are accepted');
      progress(`console on ${server.url}/console/ (it asks for the API key once per browser tab)`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      progress('stopping');
      await server.close();
      await exports?.drain();
      return 0;
    });
  },
});

/**
 * The export worker in this process, writing to CANDLEKEEP_EXPORTS_BUCKET: on LocalStack (an
 * AWS_ENDPOINT_URL) the bucket is created when missing, as the stack creates it in AWS.
 */
async function localExports(config: ApiConfig, pool: Db) {
  const bucket = config.exportsBucket!;
  const s3 = lazyS3Client(process.env, { region: process.env.AWS_REGION ?? 'us-east-1' });
  if (process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL) await ensureBucket(await s3(), bucket);
  const { inProcessExportService } = await import('../../functions/exports/in-process.ts');
  progress(`exports go to s3://${bucket}${process.env.AWS_ENDPOINT_URL ? ` on ${process.env.AWS_ENDPOINT_URL}` : ''}`);
  return inProcessExportService({
    db: async () => pool,
    s3,
    bucket,
    urlSeconds: config.exportUrlSeconds ?? DEFAULT_DOWNLOAD_URL_SECONDS,
    retentionDays: EXPORT_RETENTION_DAYS,
    now: Date.now,
    onDone: (id, outcome) => {
      if (outcome instanceof Error) progress(`export ${id} could not be recorded: ${outcome.message}`);
      else if (outcome.outcome === 'failed') progress(`export ${id} failed: ${outcome.error}`);
    },
  });
}
