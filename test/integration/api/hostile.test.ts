import { randomBytes } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { toProxyEvent, type ProxyHandler } from '../../../dev/local-api.ts';
import { seededRandom } from '../../../dev/sample-candles.ts';
import { matchRoute } from '../../../functions/api/app.ts';
import { createApiHandler } from '../../../functions/api/api-lambda.ts';
import { ROUTES } from '../../../functions/api/routes/index.ts';
import type { CreateBacktestInput } from '../../../functions/backtests/record.ts';
import { cursorCodec, queryHash } from '../../../functions/http/cursor.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { uniqueName, uniqueSymbol } from '../../support/db.ts';
import { load, parseCsv, useApi, walk, type Answer } from './support.ts';

/*
 * Requests an attacker or a careless script would send: names that are Object.prototype's, text
 * PostgreSQL cannot hold, forged cursors, odd methods. None may answer 5xx; each gets a problem.
 */

const api = useApi();
const T0 = Date.UTC(2024, 2, 1);
let symbol: string;
let runIds: string[] = [];

function run(over: Partial<CreateBacktestInput> = {}): CreateBacktestInput {
  return {
    strategy: 'hostile',
    strategyVersion: '1.0.0',
    parameters: { fast: 10 },
    instruments: [{ exchange: 'binance', symbol, interval: '1m' }],
    start: T0,
    end: T0 + 3_600_000,
    metrics: { sharpe: 1 },
    ...over,
  };
}

beforeAll(async () => {
  symbol = uniqueSymbol();
  await load(api, symbol, '1m', walk(T0, 60, 60_000, 3));
  const strategy = uniqueName('hostile');
  for (const metrics of [{ sharpe: 1, constructor: 2 }, { sharpe: 2 }] as Record<string, number>[]) {
    const r = await api.call('POST', '/v1/backtests', { body: run({ strategy, metrics }) });
    expect(r.status).toBe(201);
    runIds.push(r.body.id);
  }
});

function expectProblem(a: Answer, status: number, parameter?: string): void {
  expect(a.status, a.text).toBe(status);
  expect(a.headers.get('content-type')).toBe('application/problem+json');
  expect(a.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  if (parameter !== undefined) expect(a.body.parameter).toBe(parameter);
}

const context = (id: string) => ({ awsRequestId: id, getRemainingTimeInMillis: () => 20_000 }) as unknown as Context;

/** Calls the handler with a proxy event as API Gateway would build it, with query names and values no URL can carry (lone surrogates). */
async function invoke(handler: ProxyHandler, method: string, path: string, query: [string, string][]) {
  const m = matchRoute(method, path);
  if (!m || !('route' in m)) throw new Error(`no route ${method} ${path}`);
  const event = toProxyEvent({ method, url: new URL(`http://local${path}`), headers: { 'x-api-key': 'k' }, body: undefined }, m.route.path, m.pathParameters);
  const multi = Object.fromEntries(query.map(([k, v]) => [k, [v]]));
  event.multiValueQueryStringParameters = multi;
  event.queryStringParameters = Object.fromEntries(query);
  // What the authorizer hands on for a read key, as API Gateway passes it.
  (event.requestContext as { authorizer?: unknown }).authorizer = { principalId: 'key-1', scope: 'read', keyName: 'hostile' };
  const res = await handler(event, context('hostile'));
  return { status: res.statusCode, type: res.headers?.['Content-Type'], body: JSON.parse(res.body) as { parameter?: string; detail: string } };
}

describe('query parameter names are data', () => {
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'or.1.constructor', 'or.1.toString', 'or.1.__proto__', 'or.2.valueOf'])(
    'refuses %s as an unknown parameter or filter',
    async (name) => {
      const r = await api.get('/v1/backtests', [[name, '1']]);
      expectProblem(r, 400, name);
      expectProblem(await api.get('/v1/candles', [['exchange', 'binance'], ['symbol', symbol], ['interval', '1m'], [name, '1']]), 400, name);
      expectProblem(await api.get('/v1/health', [[name, '1']]), 400, name);
    },
  );

  it('reads a metric named constructor as the run has it, absent where the run lacks it', async () => {
    const csv = parseCsv((await api.get('/v1/backtests', { strategy: (await api.get(`/v1/backtests/${runIds[0]}`)).body.strategy, sort: 'created', format: 'csv' })).text);
    expect(csv.map((r) => r['metric.constructor'])).toEqual(['2', '']);
    const cmp = await api.get('/v1/backtests/compare', { ids: runIds.join(',') });
    expect(cmp.body.metrics.find((m: { name: string }) => m.name === 'constructor').values).toEqual([2, null]);
  });
});

describe('text PostgreSQL cannot store', () => {
  it.each([
    ['strategyVersion', 'v\u00001'],
    ['param.fast', 'a\u0000b'],
    ['or.1.strategyVersion', '\u0000'],
    ['tag', 'x\u0000'],
    ['strategy', 'a\u0000'],
  ])('refuses a NUL in %s with 400 naming it', async (name, value) => {
    expectProblem(await api.get('/v1/backtests', [[name, value]]), 400, name);
  });

  it('refuses NUL in series names and in a parameter name', async () => {
    expectProblem(await api.get('/v1/markets', { symbol: 'BTC\u0000/USDT' }), 400, 'symbol');
    expectProblem(await api.get('/v1/backtests', [['param.a\u0000', '1']]), 400, 'param.a\u0000');
  });

  it('refuses lone surrogates in query values and names, which only an event (not a URL) can carry', async () => {
    const handler = api.handler;
    for (const [name, value] of [
      ['strategyVersion', '\ud800'],
      ['param.fast', 'x\udc00'],
      ['tag.any', '\udbff'],
      ['param.\ud800', '1'],
    ] as [string, string][]) {
      const r = await invoke(handler, 'GET', '/v1/backtests', [[name, value]]);
      expect(r.status, r.body.detail).toBe(400);
      expect(r.type).toBe('application/problem+json');
      expect(r.body.parameter).toBe(name);
    }
    const ok = await invoke(handler, 'GET', '/v1/backtests', [['strategyVersion', '\ud83d\ude00']]); // a pair is fine
    expect(ok.status).toBe(200);
  });

  it.each([
    ['strategyVersion', { strategyVersion: '§' }, '\\u0000', 'strategyVersion'],
    ['a parameter value', { parameters: { fast: '§' } }, 'a\\u0000', 'parameters.fast'],
    ['a parameter name', { parameters: { '§': 1 } }, 'f\\u0000', 'parameters.f\u0000'],
    ['a tag', { tags: ['§'] }, '\\ud800', 'tags[0]'],
    ['notes', { notes: '§' }, 'ok \\udfff', 'notes'],
    ['a trade field', { trades: [{ side: 'long', entryTime: T0, why: '§' }] }, '\\ud800x', 'trades[0].why'],
  ] as [string, Partial<CreateBacktestInput>, string, string][])('refuses a NUL or lone surrogate in %s of a body with 400 naming it', async (_n, over, escaped, parameter) => {
    const body = JSON.stringify(run(over)).replace('"§"', `"${escaped}"`);
    expectProblem(await api.call('POST', '/v1/backtests', { body }), 400, parameter);
  });

  it('still stores a paired surrogate (an emoji) sent as escapes', async () => {
    const r = await api.call('POST', '/v1/backtests', { body: JSON.stringify(run({ notes: 'x' })).replace('"notes":"x"', '"notes":"\\ud83d\\ude00"') });
    expect(r.status).toBe(201);
    expect(r.body.notes).toBe('\u{1F600}');
  });
});

describe('__proto__ in stored parameters', () => {
  it.each([
    ['parameters', '{"__proto__":{"x":1},"fast":1}', 'parameters.__proto__'],
    ['nested parameters', '{"risk":{"__proto__":{"stop":0.1}}}', 'parameters.risk.__proto__'],
    ['an escaped name', '{"\\u005f_proto__":1}', 'parameters.__proto__'],
  ])('refuses it in %s with 422 instead of dropping it', async (_n, params, parameter) => {
    const body = JSON.stringify(run({ strategy: uniqueName('proto') })).replace('"parameters":{"fast":10}', `"parameters":${params}`);
    expectProblem(await api.call('POST', '/v1/backtests', { body }), 422, parameter);
  });

  it('refuses it among metrics and trade fields too', async () => {
    const metrics = JSON.stringify(run()).replace('"metrics":{"sharpe":1}', '"metrics":{"sharpe":1,"__proto__":2}');
    expectProblem(await api.call('POST', '/v1/backtests', { body: metrics }), 422, 'metrics.__proto__');
  });
});

describe('cursors', () => {
  it('answers an unsigned cursor whose query hash anyone can recompute with 400 invalid cursor', async () => {
    const hash = queryHash(['backtests', '-created', { all: [], any: [] }]);
    const forged = Buffer.from(JSON.stringify({ p: ['2024-99-99', '00000000-0000-0000-0000-000000000000'], q: hash })).toString('base64url');
    for (const cursor of [forged, `${forged}.AAAAAAAAAAAAAAAAAAAAAA`]) {
      const r = await api.get('/v1/backtests', { cursor });
      expectProblem(r, 400, 'cursor');
      expect(r.body.detail).toMatch(/^invalid cursor/);
    }
  });

  it('validates every value of a correctly signed cursor before it reaches SQL', async () => {
    // A handler whose key the test knows, as when a key leaked: positions must still be checked.
    const key = randomBytes(32);
    const handler = createApiHandler(
      { poolMax: 2, corsOrigins: [], cursorKey: key },
      { db: async () => api.pool, logger: createLogger(SERVICES.api, { logLevel: 'SILENT' }) },
    ) as unknown as ProxyHandler;
    const codec = cursorCodec(key);
    const created = queryHash(['backtests', '-created', { all: [], any: [] }]);
    const bySharpe = queryHash(['backtests', '-metric.sharpe', { all: [], any: [] }]);
    const candles = queryHash(['candles', 'binance', symbol, '1m', undefined, undefined, 'omit']);
    const cases: [string, [string, string][]][] = [
      ['/v1/backtests', [['cursor', codec.encode(['2024-99-99', '00000000-0000-0000-0000-000000000000'], created)]]],
      ['/v1/backtests', [['cursor', codec.encode(['2024-01-01T00:00:00.000000Z', 'not-a-uuid'], created)]]],
      ['/v1/backtests', [['cursor', codec.encode([1, '00000000-0000-0000-0000-000000000000'], created)]]],
      ['/v1/backtests', [['sort', '-metric.sharpe'], ['cursor', codec.encode(['x', '00000000-0000-0000-0000-000000000000'], bySharpe)]]],
      ['/v1/backtests', [['cursor', codec.encode({ constructor: 1 }, created)]]],
      ['/v1/candles', [['exchange', 'binance'], ['symbol', symbol], ['interval', '1m'], ['cursor', codec.encode(1e300, candles)]]],
      ['/v1/candles', [['exchange', 'binance'], ['symbol', symbol], ['interval', '1m'], ['cursor', codec.encode(T0 + 1, candles)]]],
    ];
    for (const [path, query] of cases) {
      const r = await invoke(handler, 'GET', path, query);
      expect(r.status, `${path} ${JSON.stringify(query)}: ${r.body.detail}`).toBe(400);
      expect(r.body.parameter).toBe('cursor');
    }
    const good = await invoke(handler, 'GET', '/v1/backtests', [['cursor', codec.encode(['2030-01-01T00:00:00.000000Z', '00000000-0000-0000-0000-000000000000'], created)]]);
    expect(good.status).toBe(200);
  });
});

describe('UUIDs and methods', () => {
  it('compares runs named with upper-case UUIDs as GET finds them', async () => {
    const upper = runIds.map((id) => id.toUpperCase());
    expect((await api.get(`/v1/backtests/${upper[0]}`)).status).toBe(200);
    const r = await api.get('/v1/backtests/compare', { ids: upper.join(',') });
    expect(r.status).toBe(200);
    expect(r.body.runs.map((x: { id: string }) => x.id)).toEqual(runIds);
    expectProblem(await api.get('/v1/backtests/compare', { ids: `${runIds[0]},${upper[0]}` }), 400, 'ids');
  });

  it.each([
    ['PUT', '/v1/candles', 'GET'],
    ['PATCH', '/v1/backtests', 'POST, GET'],
    ['DELETE', '/v1/backtests', 'POST, GET'],
    ['POST', '/v1/backtests/0190b6a0-0000-7000-8000-000000000000', 'GET, DELETE'],
    ['DELETE', '/v1/health', 'GET'],
  ])('answers %s %s with 405 and Allow: %s', async (method, path, allow) => {
    const r = await api.call(method, path);
    expectProblem(r, 405);
    expect(r.headers.get('allow')).toBe(allow);
  });

  it('answers an unknown path with 404, and another method on a keyed path without the key with 401', async () => {
    expectProblem(await api.call('GET', '/v1/nothing'), 404);
    expectProblem(await api.call('PUT', '/v1/candles', { key: null }), 401);
  });
});

describe('fuzzing the route table', () => {
  const HOSTILE_NAMES = ['constructor', 'toString', '__proto__', 'valueOf', 'or.1.constructor', 'or.1.__proto__', 'or.99.toString', 'metric.constructor',
    'metric.__proto__.gte', 'param.__proto__', 'param.constructor.eq', 'param.a.b.c.d.e.f.g.h.i', 'or.0.tag', 'or.100.tag', 'tag.', '.', '', ' ', 'a\u0000', '%00', '💥'];
  const HOSTILE_VALUES = ['', ' ', '\u0000', 'a\u0000b', '%', '%00', '=cmd|" /C calc"!A0', '-1', '0', '1e309', '-0', '99999999999999999999', 'NaN', 'Infinity',
    'null', 'true', '"quoted"', "'; DROP TABLE candles; --", '../../etc/passwd', 'x'.repeat(3000), '2024-02-30', '1704067200', '1704067200000000',
    '0190B6A0-0000-7000-8000-000000000000', 'not-a-uuid', 'BTC/USDT', 'binance', '1m', '{"a":1}', '[1,2]', ',,,', 'a,b,c', '💥', 'eyJwIjoxLCJxIjoiIn0'];
  const BODIES = ['', '{}', '[]', 'null', '"x"', 'NaN', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"x":1}}}',
    '{"strategy":"s","strategyVersion":"\\u0000","parameters":{},"instruments":[],"start":0,"end":1,"metrics":{}}', '['.repeat(100), '{"a":'.repeat(40),
    '{"strategy":"\\ud800"}', '{"metrics":{"sharpe":NaN}}', 'x'.repeat(1000), '{"parameters":{"__proto__":1}}'];
  const ACCEPTS = [undefined, 'text/csv', 'application/json', '*/*', 'image/png', 'text/csv;q=0', ''];
  const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'];

  it('answers a few hundred seeded hostile requests without a 5xx, each error as problem+json', async () => {
    const rand = seededRandom(20261130);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 360; i++) {
      const route = pick(ROUTES);
      const method = rand() < 0.8 ? route.method : pick(METHODS);
      const path = route.path.replace('{id}', () => encodeURIComponent(pick([...runIds, runIds[0]!.toUpperCase(), ...HOSTILE_VALUES.filter(Boolean)])));
      const known = [...Object.keys(route.query?.shape ?? {}), ...(route.dynamicQuery ?? []).map((d) => d.name.replace(/<[^>]+>/g, () => pick(['sharpe', 'fast', '1', 'gte', 'constructor'])))];
      const query: [string, string][] = [];
      for (let n = Math.floor(rand() * 5); n > 0; n--) query.push([rand() < 0.6 && known.length ? pick(known) : pick(HOSTILE_NAMES), pick(HOSTILE_VALUES)]);
      const accept = pick(ACCEPTS);
      const headers: Record<string, string> = accept === undefined ? {} : { accept };
      const body = method === 'POST' ? pick(BODIES) : undefined;
      let a: Answer;
      try {
        a = await api.call(method, path, { query, headers, ...(body !== undefined ? { body, headers: { ...headers, 'content-type': 'application/json' } } : {}) });
      } catch (err) {
        throw new Error(`request ${i}: ${method} ${path} ${JSON.stringify(query)}: ${(err as Error).message}`);
      }
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      const what = `request ${i}: ${method} ${path} ${JSON.stringify(query)} ${body ?? ''} -> ${a.status} ${a.text.slice(0, 300)}`;
      expect(a.status, what).toBeLessThan(500);
      if (a.status >= 400) {
        expect(a.headers.get('content-type'), what).toBe('application/problem+json');
        expect(a.body, what).toMatchObject({ status: a.status, title: expect.any(String), detail: expect.any(String) });
      }
    }
    // The fuzz reached past validation too, not only into 400s.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(10);
  });
});
