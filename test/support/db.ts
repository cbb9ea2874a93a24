import { randomBytes } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { withDatabase } from '../../dev/postgres.ts';
import { dropDatabase, ensureDatabase } from '../../functions/store/databases.ts';
import { configureLocalRelay, createPool, type Db } from '../../functions/store/db.ts';

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

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

/** An empty database (not migrated) that is dropped when the current test finishes. */
export async function emptyDatabase(): Promise<{ url: string; name: string }> {
  relayFromEnv();
  const server = process.env.CANDLEKEEP_TEST_SERVER_URL;
  if (!server) throw new Error('CANDLEKEEP_TEST_SERVER_URL is not set');
  const name = uniqueName('ck_scratch');
  const admin = createPool(server, { max: 1 });
  await ensureDatabase(admin, name);
  onTestFinished(async () => {
    await dropDatabase(admin, name);
    await admin.end();
  });
  return { url: withDatabase(server, name), name };
}

/** A symbol no other test uses, so tests can share the run's database. */
export function uniqueSymbol(): string {
  return `T${randomBytes(4).toString('hex').toUpperCase()}/USDT`;
}
