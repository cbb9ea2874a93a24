import { startRelay, type Relay } from './ws-relay.ts';
import { ensurePostgres, hostPort, withDatabase, type LocalPostgres } from './postgres.ts';
import { configureLocalRelay, createPool, type Db } from '../functions/store/db.ts';
import { dropDatabase, ensureDatabase } from '../functions/store/databases.ts';
import { migrate } from '../functions/store/migrate.ts';

/**
 * A local PostgreSQL reached through the Neon driver and the WebSocket relay, exactly as the
 * functions reach Neon in AWS: `DATABASE_URL` when set, else the embedded server.
 */
export interface LocalDatabase {
  server: LocalPostgres;
  relay: Relay;
  /** Connection string of the server's maintenance database. */
  serverUrl: string;
  /** Creates (if needed) and migrates a database (unless `migrate: false`), returning its URL. */
  prepare(name: string, opts?: { fresh?: boolean; migrate?: boolean }): Promise<string>;
  drop(name: string): Promise<void>;
  pool(url: string, max?: number): Db;
  close(): Promise<void>;
}

export async function openLocalDatabase(opts: { log?: (msg: string) => void } = {}): Promise<LocalDatabase> {
  const server = await ensurePostgres(opts);
  const relay = await startRelay({ allow: [hostPort(server.url)] });
  configureLocalRelay(relay.address);
  const admin = createPool(server.url, { max: 1 });
  const pools = new Set<Db>();
  return {
    server,
    relay,
    serverUrl: server.url,
    async prepare(name, { fresh = false, migrate: migrated = true } = {}) {
      await ensureDatabase(admin, name, { fresh });
      const url = withDatabase(server.url, name);
      if (!migrated) return url;
      const pool = createPool(url, { max: 1 });
      try {
        await migrate(pool, { log: opts.log });
      } finally {
        await pool.end();
      }
      return url;
    },
    async drop(name) {
      await dropDatabase(admin, name);
    },
    pool(url, max = 2) {
      const p = createPool(url, { max });
      pools.add(p);
      return p;
    },
    async close() {
      await Promise.all([...pools].map((p) => p.end().catch(() => {})));
      await admin.end().catch(() => {});
      await relay.close();
      await server.stop();
    },
  };
}
