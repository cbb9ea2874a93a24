import { openLocalDatabase } from '../dev/local-db.ts';
import { configureDriver, createPool, readDatabaseConfig, resolveDatabaseUrl, type Db } from '../functions/store/db.ts';
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
