import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Db } from '../../functions/store/db.ts';
import { testPool, watchSends } from '../support/db.ts';

/*
 * How a statement leaves through the Neon driver's WebSocket (see functions/store/db.ts): its
 * messages as one WebSocket message, sent once the code that wrote them has run. That it leaves
 * before synchronous work that follows is checked by the export-pages test (exports/export-file).
 */

let pool: Db;
const sent: number[] = [];

beforeAll(() => {
  pool = testPool(1);
  watchSends(pool, (data) => sent.push(data.byteLength));
});
afterAll(async () => {
  await pool?.end();
});

it('sends a statement with parameters (Parse, Bind, Describe, Execute, Sync) as one WebSocket message', async () => {
  await pool.query('SELECT 1'); // connected and set up
  sent.length = 0;
  const { rows } = await pool.query<{ n: number; s: string }>('SELECT $1::int AS n, $2::text AS s', [7, 'seven']);
  expect(rows).toEqual([{ n: 7, s: 'seven' }]);
  expect(sent).toHaveLength(1);
});

it('sends two statements issued one after the other as separate messages, each whole', async () => {
  sent.length = 0;
  const [a, b] = await Promise.all([pool.query<{ n: number }>('SELECT $1::int AS n', [1]), pool.query<{ n: number }>('SELECT $1::int AS n', [2])]);
  expect([a.rows[0]!.n, b.rows[0]!.n]).toEqual([1, 2]);
  // One connection: the second statement is written when the first's answer is in.
  expect(sent).toHaveLength(2);
});
