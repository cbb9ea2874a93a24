import type { Queryable } from './db.ts';

/** Resolves when the database answers a query; rejects with the driver's error otherwise. */
export async function ping(db: Queryable): Promise<void> {
  await db.query('SELECT 1');
}
