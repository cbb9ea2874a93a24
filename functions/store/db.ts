import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { neonConfig, Pool, type PoolClient } from '@neondatabase/serverless';
import ws from 'ws';
import * as z from 'zod';
import { DatabaseNotConfiguredError } from '../errors.ts';
import { once } from '../lambda-kit/env.ts';
import { rememberSecret } from '../lambda-kit/redact.ts';

/**
 * One place that configures the Neon serverless driver.
 *
 * - In AWS: the connection string comes from Secrets Manager (`DATABASE_SECRET_ARN`, a JSON secret
 *   `{"url": "postgres://..."}` or the bare URL), read on first use and again after 5 minutes or a refused login; the driver
 *   speaks TLS WebSockets to Neon's proxy.
 * - Locally: `DATABASE_URL` plus `CANDLEKEEP_WS_PROXY` (`host:port` of the project's WebSocket-to-TCP
 *   relay, see dev/ws-relay.ts), so the very same driver code talks to a plain PostgreSQL.
 */
export type Db = Pool;
export type DbClient = PoolClient;
/** Anything that can run a query: a Pool or a checked-out client. */
export type Queryable = Pick<Pool, 'query'>;

const databaseEnvSchema = z
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

/** Where the database is, as the environment says it. */
export interface DatabaseConfig {
  url?: string | undefined;
  secretArn?: string | undefined;
  /** host:port of the WebSocket relay in front of a plain PostgreSQL. */
  wsProxy?: string | undefined;
}

/** Reads DATABASE_URL / DATABASE_SECRET_ARN / CANDLEKEEP_WS_PROXY; throws a message naming what is missing or malformed. */
export function readDatabaseConfig(env: Readonly<Record<string, string | undefined>>): DatabaseConfig {
  rememberUrlSecret(env.DATABASE_URL);
  const parsed = databaseEnvSchema.safeParse(env);
  if (!parsed.success) throw new Error(`database configuration: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  if (parsed.data.DATABASE_URL) checkDatabaseUrl(parsed.data.DATABASE_URL, 'DATABASE_URL');
  return { url: parsed.data.DATABASE_URL, secretArn: parsed.data.DATABASE_SECRET_ARN, wsProxy: parsed.data.CANDLEKEEP_WS_PROXY };
}

/**
 * The password of a connection string, remembered for redaction before anything can fail on it.
 * It is found by hand, not with a URL parser: the URLs that matter most here are the ones a parser
 * rejects (an unencoded `#` or `@` in the password).
 */
function rememberUrlSecret(url: string | undefined): void {
  if (!url) return;
  const rest = url.slice(url.indexOf('://') + 3);
  const at = rest.lastIndexOf('@');
  if (at < 0) return;
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon >= 0) rememberSecret(userinfo.slice(colon + 1));
}

/**
 * Throws an error naming what is wrong with a connection string, and never quoting it: the URL
 * parser's own error carries the whole URL, password included, in its `input` property.
 */
export function checkDatabaseUrl(url: string, source: string): void {
  rememberUrlSecret(url);
  // Split by hand at the last '@' before the query: a URL parser would either reject an unencoded
  // '#', '/' or '@' in the password or, worse, accept it and connect to a host made of its pieces.
  const rest = url.slice(url.indexOf('://') + 3);
  const beforeQuery = rest.split('?')[0] ?? '';
  const at = beforeQuery.lastIndexOf('@');
  const userinfo = at >= 0 ? beforeQuery.slice(0, at) : '';
  const reserved = [...new Set(userinfo.match(/[#/?@[\]]/g) ?? [])];
  if (reserved.length > 0) {
    const encoded = reserved.map((c) => `${c} as ${encodeURIComponent(c)}`).join(', ');
    throw new Error(`${source} is not a valid URL: its user name or password contains ${reserved.join(' ')}; percent-encode it (${encoded})`);
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
  if (parsed) {
    if (!/^postgres(ql)?:$/.test(parsed.protocol)) throw new Error(`${source} must be a postgres:// URL`);
    return;
  }
  const hostPart = (at >= 0 ? beforeQuery.slice(at + 1) : beforeQuery).split(/[/#]/)[0] ?? '';
  const port = /:([^:\]]*)$/.exec(hostPart)?.[1];
  if (port !== undefined && !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    throw new Error(`${source} is not a valid URL: its port is not a number from 1 to 65535`);
  }
  throw new Error(`${source} is not a valid URL; expected postgres://user:password@host:port/database with special characters percent-encoded`);
}

/**
 * Points the driver at the configured relay, if any. The driver's settings are process-wide, so
 * every pool of this process goes through the same relay.
 */
export function configureDriver(config: Pick<DatabaseConfig, 'wsProxy'>): void {
  if (config.wsProxy) configureLocalRelay(config.wsProxy);
}

export function configureLocalRelay(relayAddress: string): void {
  neonConfig.wsProxy = (host, port) => `${relayAddress}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
  neonConfig.pipelineTLS = false;
}

neonConfig.webSocketConstructor = ws;
/**
 * How the driver's socket sends: a statement's messages (Parse, Bind, Describe, Execute, Sync, each
 * written on its own) go out as one WebSocket message once the code that wrote them has run, at
 * the end of the current microtask checkpoint. The driver's own coalescing (`coalesceWrites`, on by
 * default) waits for a setTimeout(0) instead: every statement then waits for a timer before it
 * leaves, and one issued ahead of synchronous work (an export's next page, read while this one is
 * encoded) leaves only after that work. Its alternative, each write sent as written, sends five
 * messages per statement, which costs the relay and the server a wake-up each. Measured on a
 * 2-core machine: a 1,000-candle API read ~1 ms faster at the median than with the timer, the
 * writer's rows/s and a 5.3M-candle export's overlap of reads and encoding kept. The driver's
 * socket class is `neonConfig` (1.x); should a version stop having `rawWrite`, the driver's own
 * timed writes are left in place and the export-pages test (a statement leaves before the
 * synchronous work that follows it) fails.
 */
type DriverSocket = {
  ws?: { send(data: Uint8Array): void } | null;
  candlekeepQueued?: Uint8Array[] | undefined;
  rawWrite(data: Uint8Array): void;
  emit(event: 'error', err: unknown): boolean;
};
const socketProto = (neonConfig as unknown as { prototype: Partial<DriverSocket> }).prototype;
if (typeof socketProto.rawWrite === 'function') {
  socketProto.rawWrite = function (this: DriverSocket, data: Uint8Array) {
    if (this.candlekeepQueued) {
      this.candlekeepQueued.push(data);
      return;
    }
    this.candlekeepQueued = [data];
    queueMicrotask(() => {
      const queued = this.candlekeepQueued!;
      this.candlekeepQueued = undefined;
      // A send that throws fails this connection (its queries reject), not the process.
      try {
        this.ws?.send(queued.length === 1 ? queued[0]! : Buffer.concat(queued));
      } catch (err) {
        this.emit('error', err);
      }
    });
  };
}

export interface PoolOptions {
  /** Called when the server refuses the pool's credentials (SQLSTATE 28P01 or 28000), e.g. after a rotation. */
  onAuthFailure?: () => void;
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

/** A client checked out of a pool; `release` returns it, or discards it once `broke` was called. */
interface CheckedOut {
  client: DbClient;
  /** Marks the connection unusable (a lost socket, a failed rollback): it is discarded on release. */
  broke(err: unknown): void;
  readonly broken: boolean;
  release(): void;
}

/**
 * Checks a client out with an 'error' listener: a checked-out client has no pool listener, so a
 * socket lost between two statements would otherwise be an uncaught 'error' event. The failed
 * statement reports it; the client is discarded.
 */
async function checkOut(pool: Pick<Db, 'connect'>): Promise<CheckedOut> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken = asDatabaseError(err);
  };
  client.on('error', onError);
  return {
    client,
    broke: (err) => {
      broken = asDatabaseError(err);
    },
    get broken() {
      return broken !== undefined;
    },
    release: () => {
      client.off('error', onError);
      client.release(broken);
    },
  };
}

/**
 * Runs one statement on a checked-out client through the driver's callback form. Its promise form
 * (`client.query(config)` without a callback) keeps every row of the result alive through the
 * young-generation collections that run while the next requests are served (measured: ~540 KB of a
 * 1,000-candle read survived each request that way, ~15 KB with a callback), so the old generation
 * filled with dead rows and full collections landed in the tail of the API's latency.
 */
export function submit(client: DbClient, args: readonly unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    (client.query as (...a: unknown[]) => void)(...args, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res)));
  });
}

/**
 * Runs `work` on one connection inside BEGIN … COMMIT; any error rolls it back and is rethrown.
 * A connection whose rollback also failed is discarded rather than returned to the pool.
 */
export async function inTransaction<T>(db: Pick<Db, 'connect'>, work: (tx: DbClient) => Promise<T>): Promise<T> {
  const held = await checkOut(db);
  const { client } = held;
  try {
    await client.query('BEGIN');
    const out = await work(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(held.broke);
    throw asDatabaseError(err);
  } finally {
    held.release();
  }
}

/**
 * Per-session settings of every connection. `jit = off`: our statements are short index reads and
 * writes, and a stock server (jit = on, as on RDS, Aurora and most installs) would otherwise spend
 * seconds compiling any plan its cost estimate rates as large, where JIT saves microseconds at best.
 * Behind a transaction-mode pooler (Neon's `-pooler` host) a session setting may not stick; the
 * query shapes keep their estimated costs low enough that it matters little there.
 */
export const SESSION_SETTINGS = 'SET jit = off';

/** How long one API statement may run, and what else ends it early. */
export interface StatementBounds {
  /** Statement timeout cap, milliseconds. */
  timeoutMs: number;
  /** Epoch ms by which the answer must be sent; each statement gets at most what is left, less a margin. */
  deadline?: () => number;
  /** Aborted when the client went away or the handler gave up: the running statement is cancelled on the server. */
  signal?: AbortSignal | undefined;
  /**
   * Sessions the API may hold across all its containers: each statement's transaction takes one of
   * this many transaction-scoped advisory locks or is refused (53300) without running. Unset: no bound.
   */
  sessions?: number | undefined;
  now?: () => number;
}

/** Time kept back from a statement so the answer still leaves before the deadline. */
const DEADLINE_MARGIN_MS = 1_000;
/** Advisory lock class (first key) of the API's session slots; the migration runner uses a one-key lock. */
const API_SLOT_CLASS = 0x636b; // 'ck'

/** A statement ended by its time limit or its caller, as PostgreSQL reports a cancelled one (57014). */
export class StatementCancelled extends Error {
  override name = 'StatementCancelled';
  readonly code = '57014';
}

/** Every API session slot is taken (53300, too_many_connections): the caller answers 503 and the client retries. */
export class SessionsExhausted extends Error {
  override name = 'SessionsExhausted';
  readonly code = '53300';
}

/**
 * How the server end of a connection behaves. `session`: a direct connection (or a session-mode
 * pooler), where the backend stays ours for as long as we hold the connection, so settings made
 * on it stick. `transaction`: a transaction-mode pooler (Neon's `-pooler` host, PgBouncer's usual
 * mode), which hands the backend to another client after every transaction.
 */
export type PoolerMode = 'session' | 'transaction';

/**
 * The mode of a database URL: `CANDLEKEEP_DB_POOLER` (`session` or `transaction`) when set, else
 * `transaction` for a Neon pooled host (`…-pooler.…`) or PgBouncer's default port 6432, else `session`.
 */
export function poolerModeOf(url: string, env: Readonly<Record<string, string | undefined>> = process.env): PoolerMode {
  const forced = env.CANDLEKEEP_DB_POOLER?.trim();
  if (forced) {
    if (forced === 'session' || forced === 'transaction') return forced;
    throw new Error(`CANDLEKEEP_DB_POOLER must be session or transaction, not ${JSON.stringify(forced.slice(0, 40))}`);
  }
  const rest = url.slice(url.indexOf('://') + 3).split(/[/?]/)[0] ?? '';
  const hostPort = rest.slice(rest.lastIndexOf('@') + 1);
  const [host = '', port] = hostPort.startsWith('[') ? [hostPort.slice(0, hostPort.indexOf(']') + 1), hostPort.split(']:')[1]] : hostPort.split(':');
  return /-pooler(\.|$)/i.test(host) || port === '6432' ? 'transaction' : 'session';
}

const poolModes = new WeakMap<object, PoolerMode>();

/** The mode createPool recorded for a pool; `transaction` (the safe assumption) for any other. */
export function poolerModeOfPool(pool: object): PoolerMode {
  return poolModes.get(pool) ?? 'transaction';
}

/** What a session-mode connection has been set up with: its backend and its current statement_timeout. */
interface SessionState {
  pid: number;
  timeoutMs: number;
}
const sessionStates = new WeakMap<object, SessionState>();

/**
 * A Queryable whose every statement is bounded in time and cancelled when its caller is gone. The
 * timeout is the smaller of the cap and what is left before the deadline. When `signal` aborts,
 * the statement is cancelled on the server with pg_cancel_backend from another connection, so
 * nothing keeps running for a client that is gone.
 *
 * How, depends on the connection (see PoolerMode):
 * - `session` (a direct connection) with no `sessions` bound: one round trip per statement. A
 *   connection is set up on first use (`statement_timeout` = the cap, `jit = off`, its backend
 *   pid), and its timeout is only lowered when less than the cap is left before the deadline,
 *   with one round trip more to lower it and one to restore the cap before the connection goes
 *   back to the pool.
 * - `transaction` (a transaction-mode pooler), or a `sessions` bound: each statement runs in its
 *   own short transaction with `SET LOCAL statement_timeout` (startup parameters are refused by
 *   Neon's pooler, and a session SET would leak to other clients of the pooler) and, with
 *   `sessions`, takes one of that many transaction-scoped advisory locks. Three round trips.
 */
export function boundedQueryable(pool: Pick<Db, 'connect' | 'query'>, bounds: StatementBounds): Queryable {
  const now = bounds.now ?? Date.now;
  const direct = !bounds.sessions && poolerModeOfPool(pool) === 'session';
  const timeoutNow = (): number => {
    if (bounds.signal?.aborted) throw new StatementCancelled('the request was abandoned before its statement ran');
    const left = bounds.deadline ? bounds.deadline() - now() - DEADLINE_MARGIN_MS : Infinity;
    const timeout = Math.floor(Math.min(bounds.timeoutMs, left));
    if (timeout < 1) throw new StatementCancelled('no time left before the request deadline to run a statement');
    return timeout;
  };
  const cancelledError = (err: unknown, timeout: number): StatementCancelled =>
    new StatementCancelled(bounds.signal?.aborted ? 'the statement was cancelled: the request was abandoned' : `the statement ran past its ${timeout} ms limit`, { cause: err });

  const runDirect = async (args: unknown[]): Promise<unknown> => {
    const timeout = timeoutNow();
    const held = await checkOut(pool);
    const { client } = held;
    let running = false;
    let cancelled: Promise<unknown> | undefined;
    let state: SessionState | undefined;
    const cancel = (): void => {
      if (running && state) cancelled ??= pool.query('SELECT pg_cancel_backend($1)', [state.pid]).catch(() => {});
    };
    try {
      state = sessionStates.get(client);
      if (!state) {
        const { rows } = await client.query<{ pid: number }>(
          "SELECT pg_backend_pid() AS pid, set_config('statement_timeout', $1, false), set_config('jit', 'off', false)",
          [String(timeout)],
        );
        state = { pid: rows[0]!.pid, timeoutMs: timeout };
        sessionStates.set(client, state);
      } else if (state.timeoutMs !== timeout) {
        // Only near the deadline (the cap is otherwise the same for every statement).
        await client.query(`SET statement_timeout = ${timeout}`);
        state.timeoutMs = timeout;
      }
      running = true;
      bounds.signal?.addEventListener('abort', cancel, { once: true });
      if (bounds.signal?.aborted) cancel();
      try {
        return await submit(client, args);
      } finally {
        running = false;
        bounds.signal?.removeEventListener('abort', cancel);
        // A cancel still on its way must land before the backend runs anything else of ours.
        await cancelled;
      }
    } catch (err) {
      if ((err as { code?: string }).code === '57014') throw cancelledError(err, timeout);
      throw asDatabaseError(err);
    } finally {
      bounds.signal?.removeEventListener('abort', cancel);
      const cap = Math.floor(bounds.timeoutMs);
      if (!held.broken && state && state.timeoutMs !== cap) {
        // Lowered near a deadline: back to the cap before the connection serves anyone else (a
        // pool may be shared, e.g. with the export worker in `candlekeep serve`).
        const restored = state;
        await client.query(`SET statement_timeout = ${cap}`).then(() => {
          restored.timeoutMs = cap;
        }, held.broke);
      }
      if (held.broken) sessionStates.delete(client);
      held.release();
    }
  };

  const runInTransaction = async (args: unknown[]): Promise<unknown> => {
    const timeout = timeoutNow();
    const held = await checkOut(pool);
    const { client } = held;
    // The backend is ours only while our transaction is open (a transaction-mode pooler hands it
    // to another client after COMMIT), so a cancel is sent only while the statement runs, and the
    // transaction ends only once the cancel was delivered.
    let pid: number | undefined;
    let cancelled: Promise<unknown> | undefined;
    const cancel = (): void => {
      if (pid !== undefined) cancelled ??= pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {});
    };
    try {
      const slot = bounds.sessions
        ? `, (SELECT k FROM generate_series(1, ${bounds.sessions}) k WHERE pg_try_advisory_xact_lock(${API_SLOT_CLASS}, k) LIMIT 1) AS slot`
        : ', 0 AS slot';
      // jit is set off for the transaction as well: behind a transaction-mode pooler the
      // connection's own SESSION_SETTINGS may belong to another client's session.
      const setup = (await client.query(`BEGIN; SET LOCAL statement_timeout = ${timeout}; SET LOCAL jit = off; SELECT pg_backend_pid() AS pid${slot}`)) as unknown as {
        rows: { pid: number; slot: number | null }[];
      }[];
      const row = setup[3]!.rows[0]!;
      if (row.slot === null) throw new SessionsExhausted(`all ${bounds.sessions} API database sessions are busy; retry shortly`);
      pid = row.pid;
      bounds.signal?.addEventListener('abort', cancel, { once: true });
      if (bounds.signal?.aborted) cancel();
      let out: unknown;
      try {
        out = await submit(client, args);
      } finally {
        pid = undefined;
        bounds.signal?.removeEventListener('abort', cancel);
        await cancelled;
      }
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(held.broke);
      if ((err as { code?: string }).code === '57014') throw cancelledError(err, timeout);
      throw asDatabaseError(err);
    } finally {
      bounds.signal?.removeEventListener('abort', cancel);
      held.release();
    }
  };
  const run = direct ? runDirect : runInTransaction;
  return { query: ((...args: unknown[]) => run(args)) as Queryable['query'] };
}

export function createPool(url: string, opts: PoolOptions = {}): Db {
  checkDatabaseUrl(url, 'the database URL');
  const pool = new Pool({
    connectionString: url,
    max: opts.max ?? 2,
    idleTimeoutMillis: opts.idleTimeoutMillis ?? 30_000,
    connectionTimeoutMillis: 10_000,
  });
  poolModes.set(pool, poolerModeOf(url));
  // An idle client can lose its socket (database restart, network); without a listener that error
  // would crash the process. The next query simply opens a new connection.
  pool.on('error', () => {});
  // Settings the product relies on, whatever the server's defaults: queued on each new connection
  // before the pool hands it out, so it runs first (one round trip per connection, not per query).
  pool.on('connect', (client: PoolClient) => {
    client.query(SESSION_SETTINGS).catch(() => {});
  });
  // Only the promise forms are wrapped: pg's Pool calls its own connect() with a callback.
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  const rethrow = (err: unknown) => {
    if (isAuthenticationFailure(err)) opts.onAuthFailure?.();
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

async function readSecretUrl(secretArn: string, secrets?: SecretsManagerClient): Promise<string> {
  // Imported lazily: local runs never pay for the SDK module.
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = secrets ?? new SecretsManagerClient({});
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  return urlFromSecret(out.SecretString ?? '', secretArn);
}

/**
 * The URL a secret's value holds: JSON `{"url": …}` or the bare URL. Anything else (above all the
 * text a fresh stack's secret is generated with) means nobody has stored the URL yet.
 */
export function urlFromSecret(raw: string, secretArn: string): string {
  const expected = `store {"url":"postgres://..."} or the bare URL`;
  let value: unknown = raw;
  if (raw.trim().startsWith('{')) {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new DatabaseNotConfiguredError(`database secret ${secretArn} is not valid JSON; ${expected}`);
    }
  }
  const parsed = secretSchema.safeParse(value);
  if (!parsed.success) throw new DatabaseNotConfiguredError(`database secret ${secretArn} holds no postgres:// URL; ${expected}`);
  try {
    checkDatabaseUrl(parsed.data, `the URL in database secret ${secretArn}`);
  } catch (err) {
    throw new DatabaseNotConfiguredError((err as Error).message);
  }
  return parsed.data;
}

/** The database URL: DATABASE_URL, or the one held by the secret (read with `secrets`, else a default client). */
export async function resolveDatabaseUrl(config: DatabaseConfig, secrets?: SecretsManagerClient): Promise<string> {
  if (config.url) return config.url;
  if (!config.secretArn) throw new Error('database configuration: set DATABASE_URL (local) or DATABASE_SECRET_ARN (AWS) so candlekeep can reach PostgreSQL');
  return readSecretUrl(config.secretArn, secrets);
}

/** How long a container trusts the URL it read from the secret: a rotation reaches warm containers within this. */
export const SECRET_MAX_AGE_MS = 5 * 60_000;

/** PostgreSQL refused the credentials: invalid_password (28P01) or invalid_authorization_specification (28000). */
export function isAuthenticationFailure(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === '28P01' || code === '28000') return true;
  }
  return false;
}

/** The database URL as a container reads it; `invalidate` makes the next call read the secret again. */
export interface DatabaseUrlSource {
  (): Promise<string>;
  invalidate(): void;
}

export interface DatabaseUrlOptions {
  /** @default SECRET_MAX_AGE_MS */
  maxAgeMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * The database URL, read on first use (the environment is read, the driver configured and the
 * secret read then, not at import) and kept. A URL from the secret is read again once it is
 * `maxAgeMs` old, or at once after `invalidate()` (an authentication failure), so a password
 * rotation heals warm containers without recycling them. DATABASE_URL never changes. A failed read
 * is not kept: the next call tries again.
 */
export function lazyDatabaseUrl(env: Readonly<Record<string, string | undefined>>, opts: DatabaseUrlOptions = {}): DatabaseUrlSource {
  const maxAgeMs = opts.maxAgeMs ?? SECRET_MAX_AGE_MS;
  const now = opts.now ?? Date.now;
  const config = once(async () => {
    const c = readDatabaseConfig(env);
    configureDriver(c);
    return c;
  });
  let held: { url: Promise<string>; readAt: number; expires: boolean } | undefined;
  const source = (async () => {
    const c = await config();
    const t = now();
    if (held && held.expires && t - held.readAt >= maxAgeMs) held = undefined;
    if (!held) {
      const read = { url: resolveDatabaseUrl(c), readAt: t, expires: !c.url };
      held = read;
      read.url.catch(() => {
        if (held === read) held = undefined;
      });
    }
    return held.url;
  }) as DatabaseUrlSource;
  source.invalidate = () => {
    held = undefined;
  };
  return source;
}

/**
 * A container's pool, created on first use and reused across warm invocations; when the URL
 * changes (the secret was rotated) the next call gets a pool on the new URL and the old one is
 * closed. A refused login invalidates the URL, so the next call reads the secret again.
 */
export function lazyPool(env: Readonly<Record<string, string | undefined>>, opts: PoolOptions = {}, url: DatabaseUrlSource = lazyDatabaseUrl(env)): () => Promise<Db> {
  let current: { url: string; pool: Db } | undefined;
  return async () => {
    const u = await url();
    if (current?.url === u) return current.pool;
    const previous = current;
    current = { url: u, pool: createPool(u, { ...opts, onAuthFailure: () => { opts.onAuthFailure?.(); url.invalidate(); } }) };
    // A Lambda container runs one invocation at a time, and this is its start: the old pool is idle.
    if (previous) previous.pool.end().catch(() => {});
    return current.pool;
  };
}
