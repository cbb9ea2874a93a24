import { neonConfig, Pool, type PoolClient } from '@neondatabase/serverless';
import ws from 'ws';
import * as z from 'zod';

/**
 * One place that configures the Neon serverless driver.
 *
 * - In AWS: the connection string comes from Secrets Manager (`DATABASE_SECRET_ARN`, a JSON secret
 *   `{"url": "postgres://..."}` or the bare URL), read once per container and cached; the driver
 *   speaks TLS WebSockets to Neon's proxy.
 * - Locally: `DATABASE_URL` plus `CANDLEKEEP_WS_PROXY` (`host:port` of the project's WebSocket-to-TCP
 *   relay, see dev/ws-relay.ts), so the very same driver code talks to a plain PostgreSQL.
 */
export type Db = Pool;
export type DbClient = PoolClient;
/** Anything that can run a query: a Pool or a checked-out client. */
export type Queryable = Pick<Pool, 'query'>;

const envSchema = z
  .object({
    DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'DATABASE_URL must be a postgres:// URL').optional(),
    DATABASE_SECRET_ARN: z.string().startsWith('arn:', 'DATABASE_SECRET_ARN must be a secret ARN').optional(),
    CANDLEKEEP_WS_PROXY: z
      .string()
      .regex(/^[\w.-]+:\d+$/, 'CANDLEKEEP_WS_PROXY must be host:port of the WebSocket relay')
      .optional(),
  })
  .refine((e) => e.DATABASE_URL || e.DATABASE_SECRET_ARN, {
    message: 'set DATABASE_URL (local) or DATABASE_SECRET_ARN (AWS) so candlekeep can reach PostgreSQL',
  });

const secretSchema = z.union([
  z.object({ url: z.string().regex(/^postgres(ql)?:\/\//) }).transform((s) => s.url),
  z.string().regex(/^postgres(ql)?:\/\//),
]);

export function configureLocalRelay(relayAddress: string): void {
  neonConfig.wsProxy = (host, port) => `${relayAddress}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
  neonConfig.pipelineTLS = false;
}

neonConfig.webSocketConstructor = ws;

export interface PoolOptions {
  /** Connections this pool may hold; a Lambda container serves one event at a time, so 1-2 suffice there. */
  max?: number;
  idleTimeoutMillis?: number;
}

/**
 * The driver rejects a failed WebSocket connection with the socket's error *event*, not an Error;
 * callers (and logs) get a real Error that says what happened.
 */
export function asDatabaseError(err: unknown): Error {
  if (err instanceof Error) return err;
  const e = err as { message?: unknown; error?: unknown } | null;
  const message = typeof e?.message === 'string' && e.message ? e.message : String(e?.error ?? err);
  return new Error(`database connection failed: ${message}`, { cause: err });
}

export function createPool(url: string, opts: PoolOptions = {}): Db {
  const pool = new Pool({
    connectionString: url,
    max: opts.max ?? 2,
    idleTimeoutMillis: opts.idleTimeoutMillis ?? 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client can lose its socket (database restart, network); without a listener that error
  // would crash the process. The next query simply opens a new connection.
  pool.on('error', () => {});
  // Only the promise forms are wrapped: pg's Pool calls its own connect() with a callback.
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  const rethrow = (err: unknown) => {
    throw asDatabaseError(err);
  };
  pool.query = ((...args: unknown[]) => {
    const out = query(...args);
    return out instanceof Promise ? out.catch(rethrow) : out;
  }) as typeof pool.query;
  pool.connect = ((...args: unknown[]) => {
    const out = connect(...args);
    return out instanceof Promise ? out.catch(rethrow) : out;
  }) as typeof pool.connect;
  return pool;
}

async function readSecretUrl(secretArn: string): Promise<string> {
  // Imported lazily: local runs never pay for the SDK module.
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({});
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const raw = out.SecretString ?? '';
  let value: unknown = raw;
  if (raw.trim().startsWith('{')) {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new Error(`database secret ${secretArn} is not valid JSON; store {"url":"postgres://..."} or the bare URL`);
    }
  }
  const parsed = secretSchema.safeParse(value);
  if (!parsed.success) {
    throw new Error(`database secret ${secretArn} holds no postgres:// URL; store {"url":"postgres://..."} or the bare URL`);
  }
  return parsed.data;
}

/** Resolves the database URL from the environment (reading the secret when needed) and configures the driver. */
export async function resolveDatabaseUrl(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw new Error(`database configuration: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  const cfg = parsed.data;
  if (cfg.CANDLEKEEP_WS_PROXY) configureLocalRelay(cfg.CANDLEKEEP_WS_PROXY);
  return cfg.DATABASE_URL ?? (await readSecretUrl(cfg.DATABASE_SECRET_ARN!));
}

let shared: Promise<Db> | undefined;

/** The container's pool, created on first use and reused across warm invocations. */
export function getPool(opts?: PoolOptions): Promise<Db> {
  shared ??= resolveDatabaseUrl().then(
    (url) => createPool(url, opts),
    (err: unknown) => {
      shared = undefined; // a failed secret read must not poison the container forever
      throw err;
    },
  );
  return shared;
}
