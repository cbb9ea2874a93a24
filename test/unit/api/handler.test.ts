import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { toProxyEvent, type ProxyHandler } from '../../../dev/local-api.ts';
import { matchRoute } from '../../../functions/api/app.ts';
import { createApiHandler } from '../../../functions/api/api-lambda.ts';
import { cors } from '../../../functions/http/middleware.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import type { Db } from '../../../functions/store/db.ts';

/** A handler whose logger stays silent: it logs the errors these tests provoke; the output is kept for real failures. */
const silentHandler = (db: () => Promise<Db>) =>
  createApiHandler({ poolMax: 2, corsOrigins: [] }, { db, logger: createLogger(SERVICES.api, { logLevel: 'SILENT' }) }) as unknown as ProxyHandler;

const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;

function eventFor(method: string, path: string, headers: Record<string, string> = {}) {
  const url = new URL(`http://local${path}`);
  const m = matchRoute(method, url.pathname);
  if (!m || !('route' in m)) throw new Error(`no route ${path}`);
  return toProxyEvent({ method, url, headers, body: undefined }, m.route.path, m.pathParameters);
}

function failingDb(err: Error & { code?: string }): () => Promise<Db> {
  const fail = async () => {
    throw err;
  };
  return async () => ({ query: fail, connect: fail }) as unknown as Db;
}

describe('API handler errors', () => {
  it('answers an unexpected failure with a generic 500 that quotes the request id, never the error', async () => {
    const err = Object.assign(new Error('relation "candles" does not exist: SELECT * FROM candles WHERE secret'), { code: '42P01' });
    const handler = silentHandler(failingDb(err));
    const res = await handler(eventFor('GET', '/v1/health'), context);
    expect(res.statusCode).toBe(500);
    expect(res.headers?.['Content-Type']).toBe('application/problem+json');
    const body = JSON.parse(res.body) as { detail: string; requestId: string };
    expect(body.detail).toMatch(/quote request id/);
    expect(res.body).not.toMatch(/SELECT|relation|secret|at \w+ \(/);
  });

  it('answers 503 with Retry-After while the database is unreachable', async () => {
    const handler = silentHandler(failingDb(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' })));
    const res = await handler(eventFor('GET', '/v1/health'), context);
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['Retry-After']).toBe('5');
    expect(res.body).not.toMatch(/10\.0\.0\.1/);
  });

  it('refuses an event that is not an API Gateway proxy event without leaking why', async () => {
    const handler = silentHandler(failingDb(new Error('unused')));
    const res = await handler({ hello: 'world' } as never, context);
    expect(res.statusCode).toBe(500);
  });
});

describe('cors middleware', () => {
  const run = async (origins: string[], origin?: string) => {
    const request = { event: { headers: origin ? { Origin: origin } : {} }, response: { statusCode: 200, body: '', headers: {} } } as never;
    await cors(origins).after!(request);
    return (request as { response: { headers: Record<string, string> } }).response.headers;
  };
  it('adds headers only for configured origins', async () => {
    expect(await run([], 'https://a.example')).toEqual({});
    expect(await run(['https://a.example'], 'https://b.example')).toEqual({});
    expect(await run(['https://a.example'], 'https://a.example')).toMatchObject({ 'Access-Control-Allow-Origin': 'https://a.example', Vary: 'Origin' });
  });
});
