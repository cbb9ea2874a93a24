import { startRelay } from '../dev/ws-relay.ts';
import { ensurePostgres, hostPort, withDatabase } from '../dev/postgres.ts';
import { configureDriver, configureLocalRelay, createPool, readDatabaseConfig, resolveDatabaseUrl, type Db } from '../functions/store/db.ts';
import { progress } from './command.ts';

/** The database local CLI commands use when DATABASE_URL is unset: `candlekeep` on the embedded server. */
export const DEFAULT_DATABASE = 'candlekeep';

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
  const server = await ensurePostgres({ log: progress });
  const relay = await startRelay({ allow: [hostPort(server.url)] });
  configureLocalRelay(relay.address);
  let url = server.url;
  if (server.mode === 'embedded') {
    const admin = createPool(server.url, { max: 1 });
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DEFAULT_DATABASE]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${DEFAULT_DATABASE}`);
    await admin.end();
    url = withDatabase(server.url, DEFAULT_DATABASE);
  }
  const pool = createPool(url, { max: 4 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await relay.close();
    await server.stop();
  }
}
