import type { Context } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { toProxyEvent } from '../../../dev/local-api.ts';
import { matchRoute } from '../../../functions/api/app.ts';
import { ROUTES } from '../../../functions/api/routes/index.ts';
import { scopeCovers, KEY_SCOPES, type KeyScope } from '../../../functions/auth/keys.ts';
import { createApiKey, LAST_USED_RESOLUTION_MS, listApiKeys, lookupApiKey, revokeApiKey } from '../../../functions/store/api-keys.ts';
import { uniqueName, uniqueSymbol } from '../../support/db.ts';
import { API_KEY, load, useApi, walk } from './support.ts';

/**
 * Scoped keys through the local server, which calls the deployed authorizer's handler before each
 * request and hands its answer to the API function, as API Gateway does: every route refused to a
 * key whose scope is too weak (403 naming the scope) and allowed to one whose scope covers it,
 * unknown and revoked keys refused (401), the configured key an admin key.
 */
const api = useApi();
const keys = {} as Record<KeyScope, string>;
const symbol = uniqueSymbol();
const T0 = Date.UTC(2024, 2, 1);

beforeAll(async () => {
  // A run's record fingerprints the candles it used: some must be stored.
  await load(api, symbol, '1h', walk(T0, 24, 3_600_000));
  for (const scope of KEY_SCOPES) keys[scope] = (await createApiKey(api.pool, { name: uniqueName(`k-${scope}`), scope, now: Date.now() })).key;
});

/** A concrete path for a route template; the ids are well-formed and name nothing. */
const concrete = (path: string) => path.replace('{id}', '0190b6a0-0000-7000-8000-000000000000');

function run(tag: string) {
  return {
    strategy: 'keys',
    strategyVersion: '1',
    parameters: {},
    instruments: [{ exchange: 'binance', symbol, interval: '1h' }],
    start: '2024-03-01T00:00:00Z',
    end: '2024-03-02T00:00:00Z',
    metrics: { sharpe: 1 },
    tags: [tag],
  };
}

describe('each scope against every route', () => {
  const keyed = ROUTES.filter((r) => r.scope !== 'public');
  it.each(KEY_SCOPES)('a %s key is let through exactly the routes its scope covers, and told the scope the others need', async (scope) => {
    const refused: string[] = [];
    for (const route of keyed) {
      // Bodies are empty objects: a route the key may call answers for the body (400/415/422/501), never 401 or 403.
      const body = route.method === 'POST' || route.method === 'PATCH' ? {} : undefined;
      const r = await api.call(route.method, concrete(route.path), { key: keys[scope], ...(body ? { body } : {}) });
      const name = `${scope} key, ${route.method} ${route.path}`;
      if (scopeCovers(scope, route.scope)) {
        expect([401, 403], `${name}: ${r.text}`).not.toContain(r.status);
      } else {
        expect(r.status, name).toBe(403);
        expect(r.headers.get('content-type')).toBe('application/problem+json');
        expect(r.body).toMatchObject({ type: 'https://candlekeep.dev/problems/insufficient-scope', requiredScope: route.scope, parameter: 'x-api-key' });
        expect(r.body.detail).toContain(`needs a key with scope ${route.scope}`);
        expect(r.body.detail).toContain(`has scope ${scope}`);
        refused.push(`${route.method} ${route.path}`);
      }
    }
    // read < write < admin, as the routes declare them.
    const expected = keyed.filter((r) => !scopeCovers(scope, r.scope)).map((r) => `${r.method} ${r.path}`);
    expect(refused).toEqual(expected);
    if (scope === 'admin') expect(refused).toEqual([]);
    if (scope === 'read') expect(refused).toEqual(expect.arrayContaining(['POST /v1/backtests', 'DELETE /v1/backtests/{id}', 'POST /v1/markets', 'DELETE /v1/markets']));
  });

  it('lets a read key read, a write key record a run but not delete it, an admin key delete it', async () => {
    expect((await api.get('/v1/markets', {}, { key: keys.read })).status).toBe(200);
    expect((await api.call('POST', '/v1/backtests', { key: keys.read, body: run('read') })).status).toBe(403);
    const created = await api.call('POST', '/v1/backtests', { key: keys.write, body: run('write') });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const refused = await api.call('DELETE', `/v1/backtests/${id}`, { key: keys.write });
    expect(refused.body).toMatchObject({ status: 403, requiredScope: 'admin' });
    expect((await api.get(`/v1/backtests/${id}`, {}, { key: keys.read })).status).toBe(200);
    expect((await api.call('DELETE', `/v1/backtests/${id}`, { key: keys.admin })).status).toBe(204);
    expect((await api.get(`/v1/backtests/${id}`, {}, { key: keys.read })).status).toBe(404);
  });

  it('keeps the configured key (CANDLEKEEP_API_KEY) working as an admin key', async () => {
    const created = await api.call('POST', '/v1/backtests', { key: API_KEY, body: run('configured') });
    expect(created.status).toBe(201);
    expect((await api.call('DELETE', `/v1/backtests/${created.body.id as string}`, { key: API_KEY })).status).toBe(204);
  });

  it('answers another method on a keyed path with 405 to any key, 401 without one', async () => {
    const r = await api.call('PUT', '/v1/candles', { key: keys.read });
    expect(r.status).toBe(405);
    expect((await api.call('PUT', '/v1/candles', { key: null })).status).toBe(401);
  });
});

describe('unknown and revoked keys', () => {
  it('refuses a missing, unknown or look-alike key with 401 problem+json, never echoing it', async () => {
    const lookalike = `${keys.read.slice(0, -1)}${keys.read.endsWith('A') ? 'B' : 'A'}`;
    for (const key of [null, '', 'wrong', lookalike]) {
      const r = await api.get('/v1/markets', {}, { key });
      expect(r.status, String(key)).toBe(401);
      expect(r.headers.get('content-type')).toBe('application/problem+json');
      expect(r.body).toMatchObject({ type: 'https://candlekeep.dev/problems/unauthorized', parameter: 'x-api-key' });
      if (key) expect(r.text).not.toContain(key);
    }
  });

  it('stops a revoked key at its next request, by id or by name, and keeps its row', async () => {
    const name = uniqueName('revoked');
    const k = await createApiKey(api.pool, { name, scope: 'write', now: Date.now() });
    expect((await api.get('/v1/markets', {}, { key: k.key })).status).toBe(200);
    const revoked = await revokeApiKey(api.pool, name, Date.now());
    expect(revoked).toMatchObject({ id: k.id, already: false });
    expect((await api.get('/v1/markets', {}, { key: k.key })).status).toBe(401);
    // Again, by id: already revoked, nothing changes.
    expect(await revokeApiKey(api.pool, String(k.id), Date.now())).toMatchObject({ id: k.id, already: true, revokedAt: revoked.revokedAt });
    const all = await listApiKeys(api.pool, { includeRevoked: true });
    expect(all.find((r) => r.id === k.id)).toMatchObject({ name, scope: 'write', revokedAt: revoked.revokedAt });
    expect((await listApiKeys(api.pool)).some((r) => r.id === k.id)).toBe(false);
    // The name is free again.
    const again = await createApiKey(api.pool, { name, scope: 'read', now: Date.now() });
    expect((await api.get('/v1/markets', {}, { key: again.key })).status).toBe(200);
  });
});

describe('the api_keys table', () => {
  it('keeps only a SHA-256 of the key, and refuses a second live key of the same name', async () => {
    const name = uniqueName('stored');
    const k = await createApiKey(api.pool, { name, scope: 'read', now: Date.now() });
    expect(k.key).toMatch(/^ck_[A-Za-z0-9_-]{43}$/);
    const { rows } = await api.pool.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM api_keys k WHERE id = $1', [k.id]);
    expect(rows[0]!.row).not.toContain(k.key.slice(3, 20));
    const { rows: hashed } = await api.pool.query<{ same: boolean }>("SELECT key_hash = sha256(convert_to($2, 'UTF8')) AS same FROM api_keys WHERE id = $1", [k.id, k.key]);
    expect(hashed[0]!.same).toBe(true);
    await expect(createApiKey(api.pool, { name, scope: 'admin', now: Date.now() })).rejects.toThrow(/already named/);
    await expect(createApiKey(api.pool, { name: '12', scope: 'read', now: Date.now() })).rejects.toThrow(/must start with a letter/);
    await expect(revokeApiKey(api.pool, uniqueName('nobody'), Date.now())).rejects.toThrow(/no live key named/);
  });

  it('marks a key used, at most once a minute, by the clock it is given', async () => {
    const t0 = Date.UTC(2030, 0, 1);
    const k = await createApiKey(api.pool, { name: uniqueName('used'), scope: 'read', now: t0 });
    const lastUsed = async () => (await listApiKeys(api.pool)).find((r) => r.id === k.id)!.lastUsedAt;
    expect(await lastUsed()).toBeNull();
    expect(await lookupApiKey(api.pool, k.key, t0 + 1000)).toMatchObject({ status: 'live', principal: { id: k.id, scope: 'read' } });
    expect(await lastUsed()).toBe(t0 + 1000);
    await lookupApiKey(api.pool, k.key, t0 + 1000 + LAST_USED_RESOLUTION_MS - 1);
    expect(await lastUsed()).toBe(t0 + 1000);
    await lookupApiKey(api.pool, k.key, t0 + 2000 + LAST_USED_RESOLUTION_MS);
    expect(await lastUsed()).toBe(t0 + 2000 + LAST_USED_RESOLUTION_MS);
    expect(await lookupApiKey(api.pool, `${k.key}x`, t0)).toEqual({ status: 'unknown' });
  });

  it('is read on each request by the local server: a key stored while it runs works at once', async () => {
    const k = await createApiKey(api.pool, { name: uniqueName('late'), scope: 'admin', now: Date.now() });
    expect((await api.get('/v1/markets/followed', {}, { key: k.key })).status).toBe(200);
  });
});

describe('the API function on its own', () => {
  const context = { awsRequestId: 'keys', getRemainingTimeInMillis: () => 20_000 } as unknown as Context;
  const event = (method: string, path: string, authorizer?: Record<string, string>) => {
    const m = matchRoute(method, path);
    if (!m || !('route' in m)) throw new Error(`no route ${method} ${path}`);
    const e = toProxyEvent({ method, url: new URL(`http://local${path}`), headers: {}, body: undefined }, m.route.path, m.pathParameters);
    if (authorizer) (e.requestContext as { authorizer?: unknown }).authorizer = authorizer;
    return e;
  };

  it('fails closed: a keyed route reached without the authorizer answer is 401', async () => {
    const res = await api.handler(event('GET', '/v1/markets'), context);
    expect(res.statusCode).toBe(401);
    const health = await api.handler(event('GET', '/v1/health'), context);
    expect(health.statusCode).toBe(200);
  });

  it('checks the scope the authorizer handed on against the route, whatever let the request in', async () => {
    const path = '/v1/backtests/0190b6a0-0000-7000-8000-000000000000';
    const read = await api.handler(event('DELETE', path, { principalId: 'key-1', scope: 'read', keyName: 'nb' }), context);
    expect(read.statusCode).toBe(403);
    expect(JSON.parse(read.body)).toMatchObject({ requiredScope: 'admin' });
    const odd = await api.handler(event('GET', '/v1/markets', { principalId: 'key-1', scope: 'superuser', keyName: 'nb' }), context);
    expect(odd.statusCode).toBe(401);
    const admin = await api.handler(event('DELETE', path, { principalId: 'key-1', scope: 'admin', keyName: 'ops' }), context);
    expect(admin.statusCode).toBe(404);
  });
});
