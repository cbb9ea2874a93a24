import { AUTHORIZER_CACHE_SECONDS, isKeyScope, KEY_NAME, KEY_SCOPES } from '../../functions/auth/keys.ts';
import { iso } from '../../functions/ingest/ranges.ts';
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyRow } from '../../functions/store/api-keys.ts';
import type { Queryable } from '../../functions/store/db.ts';
import { table } from '../api/output.ts';
import { defineCommand, defineGroup, progress, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { JSON_OPTION } from '../options.ts';

/*
 * `candlekeep keys`: the api_keys table, straight in the database (DATABASE_URL or the embedded
 * PostgreSQL), as the deployed authorizer and `candlekeep serve` read it. No API route manages keys:
 * a key that could mint keys would be worth more than any other.
 */

const NOTES = [
  'It reads DATABASE_URL, or the embedded PostgreSQL: for the deployed API, the Neon database its secret names.',
  'Scopes: read (GET routes), write (also records runs and requests backfills), admin (also deletes runs and manages followed markets).',
  `Revoking stops a key at once locally, and within ${AUTHORIZER_CACHE_SECONDS} s in AWS (the authorizer's cache).`,
];

async function requireKeysTable(db: Queryable): Promise<void> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT to_regclass('public.api_keys') IS NOT NULL AS ok");
  if (!rows[0]?.ok) throw new Error('the database has no api_keys table (or an older candlekeep schema): run `npx candlekeep migrate` first');
}

const when = (ms: number | null): string => (ms === null ? '' : iso(ms).replace(/\.\d+Z$/, 'Z'));
const shown = (k: ApiKeyRow) => ({
  id: k.id,
  name: k.name,
  scope: k.scope,
  createdAt: iso(k.createdAt),
  lastUsedAt: k.lastUsedAt === null ? null : iso(k.lastUsedAt),
  revokedAt: k.revokedAt === null ? null : iso(k.revokedAt),
});

const create = defineCommand({
  summary: 'store a new key with a scope and print it once (only its SHA-256 is kept)',
  options: {
    name: { type: 'string', value: '<name>', required: true, description: 'who holds it, e.g. research-notebook (a letter, then letters, digits, . _ -)' },
    scope: { type: 'string', value: '<read|write|admin>', required: true, description: 'what it may do: read, write or admin' },
    json: JSON_OPTION,
  },
  notes: NOTES,
  async run({ values }) {
    if (!KEY_NAME.test(values.name)) throw new UsageError(`--name ${JSON.stringify(values.name)}: start with a letter, then at most 63 letters, digits, '.', '_' or '-'`);
    if (!isKeyScope(values.scope)) throw new UsageError(`--scope must be one of ${KEY_SCOPES.join(', ')}, not ${JSON.stringify(values.scope)}`);
    const scope = values.scope;
    const created = await withLocalDatabase(async (pool) => {
      await requireKeysTable(pool);
      return createApiKey(pool, { name: values.name, scope, now: Date.now() });
    });
    if (values.json) console.log(JSON.stringify({ ...shown(created), key: created.key }));
    else {
      console.log(created.key);
      progress(`key ${created.id} "${created.name}" (${created.scope}) created; the line above is the key, shown this once: store it now`);
    }
    return 0;
  },
});

const list = defineCommand({
  summary: 'list keys (never the keys themselves): id, name, scope, created, last used',
  options: {
    all: { type: 'boolean', short: 'a', default: false, description: 'revoked keys too' },
    json: JSON_OPTION,
  },
  notes: NOTES,
  async run({ values }) {
    const keys = await withLocalDatabase(async (pool) => {
      await requireKeysTable(pool);
      return listApiKeys(pool, { includeRevoked: values.all });
    });
    if (values.json) console.log(JSON.stringify({ keys: keys.map(shown) }));
    else if (keys.length === 0) console.log(values.all ? 'no keys' : 'no live keys (candlekeep keys list --all shows revoked ones)');
    else {
      const columns = ['id', 'name', 'scope', 'created', 'last used', ...(values.all ? ['revoked'] : [])];
      console.log(table(columns, keys.map((k) => [k.id, k.name, k.scope, when(k.createdAt), when(k.lastUsedAt), ...(values.all ? [when(k.revokedAt)] : [])])));
    }
    return 0;
  },
});

const revoke = defineCommand({
  summary: 'revoke a key by id or name; its row stays, so keys list --all still shows it',
  args: '<id|name>',
  options: { json: JSON_OPTION },
  notes: NOTES,
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('name one key: its id (candlekeep keys list) or its name');
    const target = positionals[0]!;
    if (!/^\d{1,15}$/.test(target) && !KEY_NAME.test(target)) throw new UsageError(`${JSON.stringify(target)} is neither a key id nor a key name`);
    const revoked = await withLocalDatabase(async (pool) => {
      await requireKeysTable(pool);
      return revokeApiKey(pool, target, Date.now());
    });
    if (values.json) console.log(JSON.stringify({ ...shown(revoked), alreadyRevoked: revoked.already }));
    else if (revoked.already) console.log(`key ${revoked.id} "${revoked.name}" was already revoked at ${when(revoked.revokedAt)}`);
    else console.log(`revoked key ${revoked.id} "${revoked.name}" (${revoked.scope})`);
    return 0;
  },
});

export const command = defineGroup({
  summary: 'API keys with a scope (read, write, admin): create | list | revoke',
  subcommands: { create, list, revoke },
});
