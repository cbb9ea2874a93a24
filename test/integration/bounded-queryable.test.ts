import { afterAll, describe, expect, it } from 'vitest';
import { boundedQueryable, createPool, poolerModeOfPool, StatementCancelled, type Db, type DbClient } from '../../functions/store/db.ts';
import { testPool } from '../support/db.ts';

/**
 * The API's statement bounds on a direct connection (session mode), against the real server: one
 * round trip per statement, the timeout lowered only near the deadline and restored after, and a
 * statement past its time cancelled on the server.
 */

const pools: Db[] = [];
afterAll(async () => {
  for (const p of pools) await p.end();
});

/** A pool of one connection whose client.query calls are counted: what the server is sent. */
function countingPool(): { pool: Db; sent: () => string[] } {
  const pool = testPool(1);
  pools.push(pool);
  const texts: string[] = [];
  const connect = pool.connect.bind(pool) as () => Promise<DbClient>;
  pool.connect = (async () => {
    const client = await connect();
    const query = client.query as unknown as { __counted?: boolean } & ((...a: unknown[]) => unknown);
    if (!query.__counted) {
      const counted = ((...a: unknown[]) => {
        texts.push(typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string }).text));
        return query.apply(client, a);
      }) as typeof query;
      counted.__counted = true;
      client.query = counted as unknown as DbClient['query'];
    }
    return client;
  }) as unknown as Db['connect'];
  return { pool, sent: () => [...texts] };
}

describe('boundedQueryable on a direct connection', () => {
  it('treats the test server as a direct (session-mode) connection', () => {
    const pool = testPool(1);
    pools.push(pool);
    expect(poolerModeOfPool(pool)).toBe('session');
  });

  it('sets a connection up once, then sends each statement alone', async () => {
    const { pool, sent } = countingPool();
    const db = boundedQueryable(pool, { timeoutMs: 7_000 });
    for (let i = 0; i < 5; i++) {
      const { rows } = await db.query<{ n: number }>('SELECT $1::int AS n', [i]);
      expect(rows[0]!.n).toBe(i);
    }
    const texts = sent();
    expect(texts.filter((t) => t.includes('set_config'))).toHaveLength(1);
    expect(texts.filter((t) => /^(BEGIN|COMMIT)/.test(t))).toHaveLength(0);
    expect(texts).toHaveLength(6);
    const { rows } = await db.query<{ statement_timeout: string; jit: string }>("SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('jit') AS jit");
    expect(rows[0]).toEqual({ statement_timeout: '7s', jit: 'off' });
  });

  it('lowers the timeout when little is left before the deadline, and restores the cap for the next request', async () => {
    const { pool, sent } = countingPool();
    let now = 1_000_000;
    const setting = async (deadline: number | undefined) => {
      const db = boundedQueryable(pool, { timeoutMs: 20_000, deadline: deadline === undefined ? undefined : () => deadline, now: () => now });
      return (await db.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t;
    };
    expect(await setting(undefined)).toBe('20s');
    // 2.5 s left, less the 1 s margin.
    expect(await setting(now + 2_500)).toBe('1500ms');
    // Restored as the connection went back: whoever shares the pool gets the cap.
    const same = await pool.connect(); // the pool's one connection, as another user would get it
    try {
      expect((await same.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t).toBe('20s');
    } finally {
      same.release();
    }
    now += 10;
    expect(await setting(undefined)).toBe('20s');
    expect(sent().filter((t) => t.startsWith('SET statement_timeout'))).toEqual(['SET statement_timeout = 1500', 'SET statement_timeout = 20000']);
  });

  it('cancels a statement that runs past the lowered timeout, on the server, and the connection serves the next one', async () => {
    const pool = testPool(2);
    pools.push(pool);
    const deadline = Date.now() + 1_400;
    const db = boundedQueryable(pool, { timeoutMs: 20_000, deadline: () => deadline });
    const began = Date.now();
    await expect(db.query('SELECT pg_sleep(5)')).rejects.toBeInstanceOf(StatementCancelled);
    expect(Date.now() - began).toBeLessThan(2_000);
    const again = boundedQueryable(pool, { timeoutMs: 20_000 });
    expect((await again.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    const { rows } = await again.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%' AND state = 'active'");
    expect(rows[0]!.n).toBe(0);
  });

  it('cancels the running statement when the signal aborts', async () => {
    const pool = testPool(2);
    pools.push(pool);
    const ac = new AbortController();
    const db = boundedQueryable(pool, { timeoutMs: 20_000, signal: ac.signal });
    const began = Date.now();
    const pending = db.query('SELECT pg_sleep(10)');
    setTimeout(() => ac.abort(), 300);
    await expect(pending).rejects.toThrow(/abandoned/);
    expect(Date.now() - began).toBeLessThan(5_000);
  });

  it('runs each statement in its own transaction behind a transaction-mode pooler', async () => {
    const prev = process.env.CANDLEKEEP_DB_POOLER;
    process.env.CANDLEKEEP_DB_POOLER = 'transaction';
    let pool: Db;
    try {
      pool = createPool(process.env.DATABASE_URL!, { max: 1 });
    } finally {
      if (prev === undefined) delete process.env.CANDLEKEEP_DB_POOLER;
      else process.env.CANDLEKEEP_DB_POOLER = prev;
    }
    pools.push(pool);
    expect(poolerModeOfPool(pool)).toBe('transaction');
    const db = boundedQueryable(pool, { timeoutMs: 3_000 });
    const { rows } = await db.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t");
    expect(rows[0]!.t).toBe('3s');
    // SET LOCAL: the setting ended with the statement's transaction.
    expect((await pool.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]!.t).toBe('0');
  });
});
