import type { Context } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import { toProxyEvent, type ProxyHandler } from '../../../dev/local-api.ts';
import { matchRoute } from '../../../functions/api/app.ts';
import { createHandler } from '../../../functions/api/handler.ts';
import { cors } from '../../../functions/http/middleware.ts';
import type { Queryable } from '../../../functions/store/db.ts';

// The handler logs the errors these tests provoke; keep the test output for real failures.
vi.hoisted(() => {
  process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
});

const context = { awsRequestId: 'req-1', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;

function eventFor(method: string, path: string, headers: Record<string, string> = {}) {
  const url = new URL(`http://local${path}`);
  const m = matchRoute(method, url.pathname);
  if (!m || !('route' in m)) throw new Error(`no route ${path}`);
  return toProxyEvent({ method, url, headers, body: undefined }, m.route.path, m.pathParameters);
}

function failingDb(err: Error & { code?: string }): () => Promise<Queryable> {
  return async () => ({
    query: async () => {
      throw err;
    },
  }) as unknown as Queryable;
}

describe('API handler errors', () => {
  it('answers an unexpected failure with a generic 500 that quotes the request id, never the error', async () => {
    const err = Object.assign(new Error('relation "candles" does not exist: SELECT * FROM candles WHERE secret'), { code: '42P01' });
    const handler = createHandler({ db: failingDb(err) }) as unknown as ProxyHandler;
    const res = await handler(eventFor('GET', '/v1/health'), context);
    expect(res.statusCode).toBe(500);
    expect(res.headers?.['Content-Type']).toBe('application/problem+json');
    const body = JSON.parse(res.body) as { detail: string; requestId: string };
    expect(body.detail).toMatch(/quote request id/);
    expect(res.body).not.toMatch(/SELECT|relation|secret|at \w+ \(/);
  });

  it('answers 503 with Retry-After while the database is unreachable', async () => {
    const handler = createHandler({ db: failingDb(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' })) }) as unknown as ProxyHandler;
    const res = await handler(eventFor('GET', '/v1/health'), context);
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['Retry-After']).toBe('5');
    expect(res.body).not.toMatch(/10\.0\.0\.1/);
  });

  it('refuses an event that is not an API Gateway proxy event without leaking why', async () => {
    const handler = createHandler({ db: failingDb(new Error('unused')) }) as unknown as ProxyHandler;
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
