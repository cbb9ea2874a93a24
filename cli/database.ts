import net from 'node:net';
import { openLocalDatabase } from '../dev/local-db.ts';
import { embeddedPort } from '../dev/postgres.ts';
import { checkDatabaseUrl, configureDriver, createPool, readDatabaseConfig, resolveDatabaseUrl, type Db } from '../functions/store/db.ts';
import { progress } from './command.ts';

/** The database local CLI commands use when DATABASE_URL is unset: `candlekeep` on the embedded server. */
export const DEFAULT_DATABASE = 'candlekeep';

/** Where local commands go without DATABASE_URL, in words. */
export const describeTarget = () => `127.0.0.1:${embeddedPort()}, database ${DEFAULT_DATABASE}`;

/**
 * Runs `fn` with a pool on the configured database: DATABASE_URL (through the relay when it is a
 * plain local PostgreSQL, or straight to Neon when CANDLEKEEP_WS_PROXY is unset and the host is
 * Neon's), else the embedded PostgreSQL's `candlekeep` database, created on first use.
 */
export async function withLocalDatabase<T>(fn: (pool: Db) => Promise<T>): Promise<T> {
  const neonHost = process.env.DATABASE_URL && /\.neon\.tech(:\d+)?\//.test(process.env.DATABASE_URL);
  if (neonHost) {
    const config = readDatabaseConfig(process.env);
    configureDriver(config);
    const pool = createPool(await resolveDatabaseUrl(config), { max: 4 });
    try {
      return await fn(pool);
    } finally {
      await pool.end();
    }
  }
  // The driver behind the relay only says "Connection terminated unexpectedly": ask the server
  // ourselves first, so a wrong host or a stopped server is named with the reason.
  if (process.env.DATABASE_URL) {
    checkDatabaseUrl(process.env.DATABASE_URL, 'DATABASE_URL');
    await reachable(process.env.DATABASE_URL);
  }
  const local = await openLocalDatabase({ log: progress });
  // Created but not migrated: `candlekeep migrate` does that, and the commands say when it is due.
  const url = local.server.mode === 'embedded' ? await local.prepare(DEFAULT_DATABASE, { migrate: false }) : local.serverUrl;
  const pool = createPool(url, { max: 4 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await local.close();
  }
}

const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is PostgreSQL running there? check DATABASE_URL)',
  ENOTFOUND: 'host not found (check DATABASE_URL)',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
};

/** `postgres://user@host:port/db`: the endpoint of a connection string, never its password or options. */
export function databaseEndpoint(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

/** Resolves when a TCP connection to the database server opens; otherwise names the endpoint and why. */
async function reachable(url: string, timeoutMs = 10_000): Promise<void> {
  const u = new URL(url);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 5432) });
    const fail = (reason: string) => {
      socket.destroy();
      reject(new Error(`could not reach ${databaseEndpoint(url)}: ${reason}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs / 1000} s`));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => fail(SOCKET_REASONS[err.code ?? ''] ?? err.code ?? err.message));
  });
}
