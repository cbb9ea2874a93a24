import { randomBytes } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { withDatabase } from '../../dev/postgres.ts';
import { dropDatabase, ensureDatabase } from '../../functions/store/databases.ts';
import { configureLocalRelay, createPool, type Db } from '../../functions/store/db.ts';
import { migrate } from '../../functions/store/migrate.ts';

function relayFromEnv(): void {
  const relay = process.env.CANDLEKEEP_WS_PROXY;
  if (!relay) throw new Error('CANDLEKEEP_WS_PROXY is not set: run integration tests through vitest (global setup)');
  configureLocalRelay(relay);
}

/** A pool on this run's migrated test database, through the Neon driver and the relay. */
export function testPool(max = 2): Db {
  relayFromEnv();
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run integration tests through vitest (global setup)');
  return createPool(url, { max });
}

/**
 * Calls `onSend` with every message each new connection of `pool` sends on its WebSocket, when it
 * is sent (the driver may hold writes back to send several as one message).
 */
export function watchSends(pool: Db, onSend: (data: Uint8Array) => void): void {
  pool.on('connect', (client: unknown) => {
    const ws = (client as { connection: { stream: { ws: { send: (data: Uint8Array, ...rest: unknown[]) => void } } } }).connection.stream.ws;
    const send = ws.send.bind(ws);
    ws.send = (data, ...rest) => {
      onSend(data);
      send(data, ...rest);
    };
  });
}

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

/** A new empty database on the test server, and `drop` to remove it. */
async function newDatabase(prefix: string): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  relayFromEnv();
  const server = process.env.CANDLEKEEP_TEST_SERVER_URL;
  if (!server) throw new Error('CANDLEKEEP_TEST_SERVER_URL is not set');
  const name = uniqueName(prefix);
  const admin = createPool(server, { max: 1 });
  await ensureDatabase(admin, name);
  return {
    url: withDatabase(server, name),
    name,
    async drop() {
      await dropDatabase(admin, name);
      await admin.end();
    },
  };
}

/** An empty database (not migrated) that is dropped when the current test finishes. */
export async function emptyDatabase(): Promise<{ url: string; name: string }> {
  const db = await newDatabase('ck_scratch');
  onTestFinished(db.drop);
  return { url: db.url, name: db.name };
}

/** A symbol no other test uses, so tests can share the run's database. */
export function uniqueSymbol(): string {
  return `T${randomBytes(4).toString('hex').toUpperCase()}/USDT`;
}

/**
 * A migrated database of the test file's own, for tests that lock whole tables (which would stall
 * other files sharing the run's database): a pool on it, and `drop` for afterAll.
 */
export async function isolatedDatabase(max = 4): Promise<{ url: string; pool: Db; drop(): Promise<void> }> {
  const db = await newDatabase('ck_isolated');
  const pool = createPool(db.url, { max });
  await migrate(pool);
  return {
    url: db.url,
    pool,
    async drop() {
      await pool.end();
      await db.drop();
    },
  };
}
