import { cp, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool, type Db } from '../../functions/store/db.ts';
import { migrate, MigrationError, MIGRATIONS_DIR, readMigrations } from '../../functions/store/migrate.ts';
import { emptyDatabase } from '../support/db.ts';

const pools: Db[] = [];
const open = (url: string) => {
  const p = createPool(url, { max: 2 });
  pools.push(p);
  return p;
};
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.end()));
});

async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'candlekeep-migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

describe('migration runner', () => {
  it('applies every file on a fresh database and records name and checksum', async () => {
    const { url } = await emptyDatabase();
    const pool = open(url);
    const files = await readMigrations();

    const result = await migrate(pool);

    expect(result.applied).toEqual(files.map((f) => f.name));
    const { rows } = await pool.query<{ name: string; checksum: string }>('SELECT name, checksum FROM schema_migrations ORDER BY name');
    expect(rows).toEqual(files.map((f) => ({ name: f.name, checksum: f.checksum })));
    const partitions = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'candles'::regclass",
    );
    // Only DEFAULT: year partitions come with the candles that need them (0007).
    expect(partitions.rows[0]?.n).toBe(1);
  });

  it('is a no-op when run again', async () => {
    const { url } = await emptyDatabase();
    const pool = open(url);
    await migrate(pool);
    const before = await pool.query('SELECT name, applied_at FROM schema_migrations ORDER BY name');

    const again = await migrate(pool);

    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toBe(before.rows.length);
    const after = await pool.query('SELECT name, applied_at FROM schema_migrations ORDER BY name');
    expect(after.rows).toEqual(before.rows);
  });

  it('refuses to run when an applied file was edited, and applies nothing', async () => {
    const { url } = await emptyDatabase();
    const pool = open(url);
    const dir = await copyOfMigrations();
    try {
      await migrate(pool, { dir });
      await appendFile(path.join(dir, '0001_candles.sql'), '\n-- an innocent-looking edit\n');
      await writeFile(path.join(dir, '9999_later.sql'), 'CREATE TABLE later (id int);');

      await expect(migrate(pool, { dir })).rejects.toThrow(/0001_candles\.sql was edited after it was applied/);

      const later = await pool.query("SELECT to_regclass('later') AS t");
      expect(later.rows[0]?.t).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rolls back a failing file completely and records nothing for it', async () => {
    const { url } = await emptyDatabase();
    const pool = open(url);
    const dir = await copyOfMigrations();
    try {
      await writeFile(path.join(dir, '9999_broken.sql'), 'CREATE TABLE half_done (id int);\nSELECT no_such_function();');

      const error = await migrate(pool, { dir }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(MigrationError);
      expect((error as Error).message).toMatch(/9999_broken\.sql failed and was rolled back: .*no_such_function/);
      const { rows } = await pool.query("SELECT to_regclass('half_done') AS t, (SELECT count(*)::int FROM schema_migrations WHERE name = '9999_broken.sql') AS n");
      expect(rows[0]).toEqual({ t: null, n: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lets two concurrent runners take turns: each file is applied exactly once', async () => {
    const { url } = await emptyDatabase();
    const files = await readMigrations();

    const [a, b] = await Promise.all([migrate(open(url)), migrate(open(url))]);

    expect([...a.applied, ...b.applied].sort()).toEqual(files.map((f) => f.name));
    // Whichever runner applied a file, it came after every file before it.
    const { rows } = await open(url).query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY applied_at, name');
    expect(rows.map((r) => r.name)).toEqual(files.map((f) => f.name));
  });

  it('leaves no lock behind a transaction-mode pooler, which gives each transaction whichever server connection is free', async () => {
    const { url } = await emptyDatabase();
    const pool = open(url);
    const backends = [await pool.connect(), await pool.connect()];
    // The pooler's behaviour, on two real server connections: a statement outside a transaction,
    // or a whole transaction, runs on one of them, and the next on the other.
    let turn = 0;
    let inTransaction = false;
    const pooled = {
      connect: async () => ({
        query: async (text: string, params?: unknown[]) => {
          const out = await backends[turn]!.query(text, params);
          const head = text.trim().slice(0, 8).toUpperCase();
          if (head.startsWith('BEGIN')) inTransaction = true;
          else if (head.startsWith('COMMIT') || head.startsWith('ROLLBACK')) inTransaction = false;
          if (!inTransaction) turn = 1 - turn;
          return out;
        },
        release: () => {},
      }),
    } as unknown as Db;
    try {
      const result = await migrate(pooled);
      expect(result.applied).toEqual((await readMigrations()).map((f) => f.name));
      const { rows } = await open(url).query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()",
      );
      expect(rows[0]!.n).toBe(0);
      // And the next run, from another connection, is not kept waiting.
      await expect(migrate(open(url))).resolves.toMatchObject({ applied: [] });
    } finally {
      for (const b of backends) b.release();
    }
  });

  it('rejects files that do not follow the naming scheme', async () => {
    const dir = await copyOfMigrations();
    try {
      await writeFile(path.join(dir, 'add-things.sql'), 'SELECT 1;');
      await expect(readMigrations(dir)).rejects.toThrow(/add-things\.sql must be named NNNN_lower_snake\.sql/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
