import { generateApiKey, hashApiKey, isKeyScope, KEY_NAME, type KeyScope } from '../auth/keys.ts';
import { Invalid, NotFound, Unprocessable } from '../errors.ts';
import type { Queryable } from './db.ts';
import { ms, ts } from './sql.ts';

/*
 * The api_keys table (migration 0014): a key's hash, name and scope, and when it was created, last
 * used and revoked. The key itself is returned once, by createApiKey, and never stored.
 */

export interface ApiKeyRow {
  id: number;
  name: string;
  scope: KeyScope;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A key that authenticated: who it is and what it may do. */
export interface KeyPrincipal {
  id: number;
  name: string;
  scope: KeyScope;
}

/** last_used_at is refreshed at most this often per key, so a busy key does not write on every request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

const UNIQUE_VIOLATION = '23505';
const COLUMNS = `id::int AS id, name, scope, ${ms('created_at')} AS "createdAt", ${ms('last_used_at')} AS "lastUsedAt", ${ms('revoked_at')} AS "revokedAt"`;

function checkName(name: string): void {
  if (!KEY_NAME.test(name)) {
    throw new Invalid(`key name ${JSON.stringify(name)} must start with a letter and hold at most 64 letters, digits, '.', '_' or '-'`, 'name');
  }
}

/** Stores a new key of `scope` named `name` and returns it with the key, which is not kept anywhere else. */
export async function createApiKey(db: Queryable, opts: { name: string; scope: KeyScope; now: number }): Promise<ApiKeyRow & { key: string }> {
  checkName(opts.name);
  if (!isKeyScope(opts.scope)) throw new Invalid(`scope must be read, write or admin, not ${JSON.stringify(opts.scope)}`, 'scope');
  const key = generateApiKey();
  try {
    const { rows } = await db.query<ApiKeyRow>(
      `INSERT INTO api_keys (name, scope, key_hash, created_at) VALUES ($1, $2, $3, ${ts('$4')}) RETURNING ${COLUMNS}`,
      [opts.name, opts.scope, hashApiKey(key), opts.now],
    );
    return { ...rows[0]!, key };
  } catch (err) {
    if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) {
      throw new Unprocessable(`a live key is already named ${JSON.stringify(opts.name)}; revoke it first or choose another name`, 'name', 'duplicate-key-name');
    }
    throw err;
  }
}

/** Every key, newest first; revoked ones only when asked. */
export async function listApiKeys(db: Queryable, opts: { includeRevoked?: boolean } = {}): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys ${opts.includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY id DESC`,
  );
  return rows;
}

/**
 * Revokes the key with this id (digits) or the live key with this name. A key revoked before is
 * returned as it is, with `already` set; revoking never deletes the row.
 */
export async function revokeApiKey(db: Queryable, idOrName: string, now: number): Promise<ApiKeyRow & { already: boolean }> {
  const byId = /^\d{1,15}$/.test(idOrName);
  if (!byId) checkName(idOrName);
  const where = byId ? 'id = $1::bigint' : 'name = $1 AND revoked_at IS NULL';
  const { rows } = await db.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = ${ts('$2')} WHERE ${where} AND revoked_at IS NULL RETURNING ${COLUMNS}`,
    [idOrName, now],
  );
  if (rows[0]) return { ...rows[0], already: false };
  if (byId) {
    const { rows: old } = await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1::bigint`, [idOrName]);
    if (old[0]) return { ...old[0], already: true };
  }
  throw new NotFound(`no ${byId ? 'key with id' : 'live key named'} ${idOrName}; candlekeep keys list --all shows every key`, byId ? 'id' : 'name');
}

/**
 * The key behind `key`: live (with its scope), revoked, or unknown. Marks a live key used, at most
 * once per LAST_USED_RESOLUTION_MS, in the same round trip.
 */
export async function lookupApiKey(db: Queryable, key: string, now: number): Promise<{ status: 'live'; principal: KeyPrincipal } | { status: 'revoked' | 'unknown' }> {
  const { rows } = await db.query<{ id: number; name: string; scope: string; revoked: boolean }>(
    `WITH k AS (SELECT id, name, scope, revoked_at, last_used_at FROM api_keys WHERE key_hash = $1),
     touched AS (
       UPDATE api_keys a SET last_used_at = ${ts('$2')} FROM k
       WHERE a.id = k.id AND k.revoked_at IS NULL
         AND (k.last_used_at IS NULL OR k.last_used_at < ${ts('$2')} - make_interval(secs => $3::float8 / 1000))
       RETURNING a.id
     )
     SELECT k.id::int AS id, k.name, k.scope, k.revoked_at IS NOT NULL AS revoked FROM k`,
    [hashApiKey(key), now, LAST_USED_RESOLUTION_MS],
  );
  const row = rows[0];
  if (!row) return { status: 'unknown' };
  if (row.revoked) return { status: 'revoked' };
  if (!isKeyScope(row.scope)) throw new Error(`api_keys row ${row.id} has scope ${JSON.stringify(row.scope)}, which no key can have`);
  return { status: 'live', principal: { id: row.id, name: row.name, scope: row.scope } };
}
