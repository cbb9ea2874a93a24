import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db, Queryable } from './db.ts';

/** The repository's migrations folder. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Arbitrary but fixed key of the session advisory lock that serialises migration runners. */
const LOCK_KEY = 0x63_6b_6d_67; // "ckmg"
const FILE_RE = /^(\d{4})_[a-z0-9_]+\.sql$/;

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  return readMigrationsSync(dir);
}

/** As readMigrations, for callers that cannot wait (a CDK construct computing the migrations' digest). */
export function readMigrationsSync(dir = MIGRATIONS_DIR): MigrationFile[] {
  const names = readdirSync(dir).filter((n) => n.endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  for (const name of names) {
    if (!FILE_RE.test(name)) throw new MigrationError(`migration file ${name} must be named NNNN_lower_snake.sql`);
    const sql = readFileSync(path.join(dir, name), 'utf8');
    files.push({ name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  const seen = new Set<string>();
  for (const f of files) {
    const seq = f.name.slice(0, 4);
    if (seen.has(seq)) throw new MigrationError(`two migration files share the number ${seq}`);
    seen.add(seq);
  }
  return files;
}

/**
 * One sha-256 over every migration's name and checksum: the stack puts it in the migration custom
 * resource's properties (so a deploy that changes migrations runs them), and the migration function
 * compares it with its bundle's.
 */
export function migrationsDigest(files: readonly Pick<MigrationFile, 'name' | 'checksum'>[]): string {
  return createHash('sha256')
    .update(files.map((f) => `${f.name} ${f.checksum}\n`).join(''))
    .digest('hex');
}

/**
 * Applies pending migrations in order. Each file runs in its own transaction together with the row
 * that records it. Concurrent runners take turns through a transaction-scoped advisory lock that
 * each file's transaction takes first, re-checking there whether another runner applied the file
 * meanwhile: a session-level lock would outlive its transaction behind a transaction-mode pooler
 * (Neon's `-pooler` host, the URL the deploy uses), held by a server connection the pooler hands to
 * others, and block every later run. Refuses to run anything when an applied file was edited since.
 */
export async function migrate(
  pool: Db,
  opts: { dir?: string; log?: (msg: string) => void } = {},
): Promise<MigrateResult> {
  const files = await readMigrations(opts.dir);
  const client = await pool.connect();
  /** Runs `work` in one transaction that holds the migration lock; rolls back and rethrows on error. */
  const locked = async <T>(work: () => Promise<T>): Promise<T> => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const out = await work();
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  };
  try {
    const applied = await locked(async () => {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        name text PRIMARY KEY,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        duration_ms integer NOT NULL
      )`);
      const { rows } = await client.query<{ name: string; checksum: string }>('SELECT name, checksum FROM schema_migrations');
      return new Map(rows.map((r) => [r.name, r.checksum]));
    });
    for (const f of files) {
      const recorded = applied.get(f.name);
      if (recorded !== undefined && recorded !== f.checksum) {
        throw new MigrationError(
          `migration ${f.name} was edited after it was applied (recorded sha256 ${recorded.slice(0, 12)}…, file now ${f.checksum.slice(0, 12)}…); ` +
            'restore the file and put the change in a new migration',
        );
      }
    }
    const known = new Set(files.map((f) => f.name));
    for (const name of applied.keys()) {
      if (!known.has(name)) opts.log?.(`warning: applied migration ${name} is not in the migrations folder`);
    }
    const done: string[] = [];
    for (const f of files) {
      if (applied.has(f.name)) continue;
      const started = Date.now();
      const ran = await locked(async () => {
        // Another runner may have applied it while this one waited for the lock.
        const { rows } = await client.query<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE name = $1', [f.name]);
        if (rows.length) return false;
        await client.query(f.sql);
        await client.query('INSERT INTO schema_migrations (name, checksum, duration_ms) VALUES ($1, $2, $3)', [f.name, f.checksum, Date.now() - started]);
        return true;
      }).catch((err: unknown) => {
        throw new MigrationError(`migration ${f.name} failed and was rolled back: ${(err as Error).message}`);
      });
      if (!ran) continue;
      opts.log?.(`applied ${f.name} (${Date.now() - started} ms)`);
      done.push(f.name);
    }
    return { applied: done, alreadyApplied: files.length - done.length };
  } finally {
    client.release();
  }
}

/** Whether the newest tables exist (`rate_budgets`, from 0004_ingestion.sql): false on a database never migrated or behind. */
export async function hasIngestionSchema(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass('public.rate_budgets') IS NOT NULL AS ok");
  return rows[0]?.ok === true;
}
