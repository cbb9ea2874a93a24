import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { S3Client } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import * as z from 'zod';
import { liveExchangeAccess } from '../exchanges/access.ts';
import { configReader, once, type Env } from '../lambda-kit/env.ts';
import { createLogger, SERVICES, withPowertools, type Observability } from '../lambda-kit/powertools.ts';
import { cursorCodec, derivedCursorKey, MIN_CURSOR_KEY_BYTES, processCursorKey, type CursorCodec } from '../http/cursor.ts';
import { cors, httpProblems } from '../http/middleware.ts';
import { HttpProblem } from '../http/problem.ts';
import { problem } from '../http/response.ts';
import { lazyDatabaseUrl, lazyPool } from '../store/db.ts';
import { lazyS3Client } from '../exports/s3-client.ts';
import { DEFAULT_DOWNLOAD_URL_SECONDS, MAX_DOWNLOAD_URL_SECONDS, queuedExportService, type ExportService } from '../exports/service.ts';
import { lazySqsClient } from '../lambda-kit/container.ts';
import type { SqsClient } from '../queue/send.ts';
import { createApi, type ApiDeps } from './app.ts';

const DEFAULT_STATEMENT_TIMEOUT_MS = 20_000;

const configSchema = z
  .object({
    CANDLEKEEP_DB_POOL_MAX: z.coerce
      .number()
      .int()
      .min(1)
      .max(50, 'CANDLEKEEP_DB_POOL_MAX must be at most 50')
      .default(2)
      .meta({ description: 'Connections per container: a Lambda serves one request at a time; the local server more.' }),
    CANDLEKEEP_API_STATEMENT_TIMEOUT_MS: z.coerce
      .number()
      .int()
      .min(1, 'CANDLEKEEP_API_STATEMENT_TIMEOUT_MS must be at least 1')
      .max(25_000, 'CANDLEKEEP_API_STATEMENT_TIMEOUT_MS must stay below the gateway limit: at most 25000')
      .default(DEFAULT_STATEMENT_TIMEOUT_MS)
      .meta({ description: 'Longest a single API statement may run, ms; each also stops 1 s before the request deadline.' }),
    CANDLEKEEP_API_DB_SESSIONS: z.coerce
      .number()
      .int()
      .min(0)
      .max(1_000)
      .default(0)
      .meta({ description: 'Database sessions the API may use at once across all its containers (advisory-lock slots); 0: no bound.' }),
    CANDLEKEEP_CURSOR_KEY: z
      .string()
      .refine((k) => Buffer.byteLength(k) >= MIN_CURSOR_KEY_BYTES, `CANDLEKEEP_CURSOR_KEY must be at least ${MIN_CURSOR_KEY_BYTES} bytes`)
      .optional()
      .meta({
        description:
          'Key that signs pagination cursors (HMAC-SHA256); every instance of the API must share it. ' +
          'Unset: derived from the database URL in AWS, random per process locally.',
      }),
    CANDLEKEEP_CORS_ORIGINS: z
      .string()
      .optional()
      .transform((s) => (s ? s.split(',').map((o) => o.trim()).filter(Boolean) : []))
      .meta({ description: 'Comma-separated origins allowed to read responses in a browser; empty: none.' }),
    CANDLEKEEP_BACKFILL_BUS: z
      .string()
      .min(1)
      .optional()
      .meta({ description: 'Name or ARN of the backfill bus POST /v1/backfills puts requests on; unset: that route answers 501.' }),
    CANDLEKEEP_EXPORTS_BUCKET: z
      .string()
      .min(3)
      .optional()
      .meta({ description: 'The bucket export files are written to; unset: POST /v1/exports answers 501.' }),
    CANDLEKEEP_EXPORTS_QUEUE_URL: z
      .url('CANDLEKEEP_EXPORTS_QUEUE_URL must be the URL of the exports queue')
      .optional()
      .meta({ description: 'The queue of the export worker; `candlekeep serve` runs exports in its own process instead.' }),
    CANDLEKEEP_EXPORT_URL_SECONDS: z.coerce
      .number()
      .int()
      .min(60, 'CANDLEKEEP_EXPORT_URL_SECONDS must be at least 60')
      .max(MAX_DOWNLOAD_URL_SECONDS, `CANDLEKEEP_EXPORT_URL_SECONDS must be at most ${MAX_DOWNLOAD_URL_SECONDS}`)
      .default(DEFAULT_DOWNLOAD_URL_SECONDS)
      .meta({ description: 'Seconds an export\'s presigned download URL stays valid.' }),
  })
  .transform((e) => ({
    poolMax: e.CANDLEKEEP_DB_POOL_MAX,
    statementTimeoutMs: e.CANDLEKEEP_API_STATEMENT_TIMEOUT_MS,
    dbSessions: e.CANDLEKEEP_API_DB_SESSIONS || undefined,
    corsOrigins: e.CANDLEKEEP_CORS_ORIGINS,
    backfillBus: e.CANDLEKEEP_BACKFILL_BUS,
    exportsBucket: e.CANDLEKEEP_EXPORTS_BUCKET,
    exportsQueueUrl: e.CANDLEKEEP_EXPORTS_QUEUE_URL,
    exportUrlSeconds: e.CANDLEKEEP_EXPORT_URL_SECONDS,
    cursorKey: e.CANDLEKEEP_CURSOR_KEY === undefined ? undefined : Buffer.from(e.CANDLEKEEP_CURSOR_KEY),
  }));
export const readApiConfig = configReader(configSchema, SERVICES.api);
export type ApiConfig = Omit<
  ReturnType<typeof readApiConfig>,
  'cursorKey' | 'statementTimeoutMs' | 'dbSessions' | 'backfillBus' | 'exportsBucket' | 'exportsQueueUrl' | 'exportUrlSeconds'
> & {
  cursorKey?: Uint8Array | undefined;
  /** Default 20 s. */
  statementTimeoutMs?: number | undefined;
  dbSessions?: number | undefined;
  backfillBus?: string | undefined;
  exportsBucket?: string | undefined;
  exportsQueueUrl?: string | undefined;
  exportUrlSeconds?: number | undefined;
};

export interface ApiHandlerDeps extends Omit<ApiDeps, 'cursors' | 'statementTimeoutMs' | 'dbSessions' | 'requestBackfill'>, Pick<Observability, 'logger'> {
  /** Where the cursor key comes from when the config has none; default: a random key for this process. */
  cursorKey?: () => Promise<Uint8Array>;
  /** The EventBridge client backfill requests go through (when the config names a bus); default: one from the environment, made on first use. */
  events?: () => Promise<EventBridgeClient>;
  /** The S3 client that signs export downloads; default: one from the environment, made on first use. */
  s3?: () => Promise<S3Client>;
  /** The SQS client exports are queued with; default: one from the environment, made on first send. */
  sqs?: () => Promise<SqsClient>;
}

/**
 * A Lambda container's: the pool, sized by the config, on first use; without a configured cursor
 * key, one derived from the database URL, which every container of the deployment reads alike.
 */
export function liveApiDeps(config: ApiConfig, env: Env): ApiHandlerDeps {
  const url = lazyDatabaseUrl(env);
  const db = lazyPool(env, { max: config.poolMax }, url);
  return { db, exchanges: once(async () => liveExchangeAccess(await db(), env)), cursorKey: async () => derivedCursorKey(await url()) };
}

/** Backfill requests onto the configured bus; undefined without one. The SDK is loaded on the first request. */
function backfillSender(config: ApiConfig, deps: ApiHandlerDeps): ApiDeps['requestBackfill'] {
  const bus = config.backfillBus;
  if (!bus) return undefined;
  const events =
    deps.events ??
    once(async () => {
      const { EventBridgeClient } = await import('@aws-sdk/client-eventbridge');
      return new EventBridgeClient({});
    });
  return async (req) => {
    const { putBackfillRequests } = await import('../ingest/backfill-events.ts');
    const [id] = await putBackfillRequests(await events(), bus, [req]);
    return id!;
  };
}

/** Exports through the configured queue and bucket; undefined unless both are set (and no service was given). */
function exportService(config: ApiConfig, deps: ApiHandlerDeps): ExportService | undefined {
  if (deps.exports) return deps.exports;
  const { exportsBucket: bucket, exportsQueueUrl: queueUrl } = config;
  if (!bucket || !queueUrl) return undefined;
  const sqs = deps.sqs ?? once(async () => lazySqsClient());
  return queuedExportService({
    s3: deps.s3 ?? lazyS3Client(process.env),
    sqs,
    bucket,
    queueUrl,
    urlSeconds: config.exportUrlSeconds ?? DEFAULT_DOWNLOAD_URL_SECONDS,
    now: deps.now ?? Date.now,
  });
}

function cursorSource(config: ApiConfig, deps: ApiHandlerDeps): () => Promise<CursorCodec> {
  const configured = config.cursorKey;
  const key = configured ? async () => configured : (deps.cursorKey ?? (async () => processCursorKey()));
  return once(async () => cursorCodec(await key()));
}

/**
 * The API Lambda: a middy chain (logger context, problem+json for every error, an early 503 just
 * before the Lambda timeout) over the route dispatcher. `candlekeep serve`, the local pipeline and
 * the benchmark build the same chain with their own database handle.
 */
export function createApiHandler(config: ApiConfig, deps: ApiHandlerDeps) {
  const logger = deps.logger ?? createLogger(SERVICES.api);
  const api = createApi({
    ...deps,
    statementTimeoutMs: config.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    dbSessions: config.dbSessions,
    cursors: cursorSource(config, deps),
    requestBackfill: backfillSender(config, deps),
    exports: exportService(config, deps),
  });
  const chain = middy(api, {
    timeoutEarlyInMillis: 250,
    timeoutEarlyResponse: () => problem(new HttpProblem(503, 'the request took too long; narrow the range or lower limit, then retry')),
  });
  return withPowertools(chain, { logger })
    .use(cors(config.corsOrigins))
    .use(httpProblems({ logger }));
}
