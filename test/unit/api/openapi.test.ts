import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../../functions/api/routes/index.ts';
import { buildOpenApi } from '../../../functions/api/openapi.ts';
import { OPENAPI_FILE, renderOpenApi } from '../../../functions/api/write-openapi.ts';
import { CandlekeepClient } from '../../../client/index.ts';
import { buildFilter, listQuerySchema } from '../../../functions/backtests/list.ts';
import { Invalid } from '../../../functions/errors.ts';

type Doc = { paths: Record<string, Record<string, { parameters: { name: string }[]; security: unknown[] }>> };

describe('OpenAPI document', () => {
  it('is committed up to date: run `npm run openapi` after changing a schema', () => {
    expect(readFileSync(OPENAPI_FILE, 'utf8'), 'openapi.json is stale: run npm run openapi').toBe(renderOpenApi());
  });

  it('has a scope on every route: reads for any key, recording runs for write keys, deleting for admin keys; each in the document', () => {
    const doc = buildOpenApi(ROUTES) as unknown as { paths: Record<string, Record<string, { 'x-candlekeep-scope': string }>> };
    const scopes = Object.fromEntries(ROUTES.map((r) => [`${r.method} ${r.path}`, r.scope]));
    for (const [key, scope] of Object.entries(scopes)) {
      const [method, path] = key.split(' ') as [string, string];
      if (key === 'GET /v1/health') expect(scope).toBe('public');
      else if (method === 'GET') expect(scope, key).toBe('read');
      expect(doc.paths[path]![method.toLowerCase()]!['x-candlekeep-scope']).toBe(scope);
    }
    expect(scopes['POST /v1/backtests']).toBe('write');
    expect(scopes['DELETE /v1/backtests/{id}']).toBe('admin');
  });

  it('documents every route, every query parameter it accepts, and the API key on all but health', () => {
    const doc = buildOpenApi(ROUTES) as unknown as Doc;
    for (const r of ROUTES) {
      const op = doc.paths[r.path]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.path}`).toBeDefined();
      const names = op!.parameters.map((p) => p.name);
      for (const q of Object.keys(r.query?.shape ?? {})) expect(names, `${r.path} ${q}`).toContain(q);
      expect(op!.security.length > 0).toBe(r.path !== '/v1/health');
    }
  });
});

describe('backtest filter syntax', () => {
  const base = listQuerySchema.parse({});
  const filter = (params: Record<string, string>) => buildFilter(base, new Map(Object.entries(params).map(([k, v]) => [k, [v]])));

  it('reads metric and parameter filters, and OR groups', () => {
    expect(filter({ 'metric.sharpe.gte': '1.5', 'param.risk.stop.lt': '0.1', 'param.mode': '"10"', 'or.2.tag': 'a,b', 'or.1.param.fast': '10' })).toEqual({
      all: [
        { kind: 'metric', name: 'sharpe', op: 'gte', value: 1.5 },
        { kind: 'param', path: ['risk', 'stop'], op: 'lt', value: 0.1 },
        { kind: 'param', path: ['mode'], op: 'eq', value: '10' },
      ],
      any: [[{ kind: 'param', path: ['fast'], op: 'eq', value: 10 }], [{ kind: 'tagsAll', values: ['a', 'b'] }]],
    });
  });

  it('reaches a parameter named like an operator with .eq', () => {
    expect(filter({ 'param.gte.eq': 'x' }).all).toEqual([{ kind: 'param', path: ['gte'], op: 'eq', value: 'x' }]);
  });

  it.each([['metric.sharpe.between', '1'], ['metric.sharpe', 'NaN'], ['param.fast.gt', 'ten'], ['or.1.created.gte', '1709251200'], ['or.1.bogus', 'x']])(
    'rejects %s=%s',
    (k, v) => {
      expect(() => filter({ [k]: v })).toThrow(Invalid);
    },
  );

  it('is what the typed client writes', () => {
    expect(
      CandlekeepClient.backtestQuery({
        strategy: ['a', 'b'],
        metric: { sharpe: { gte: 1 } },
        param: { fast: 10, mode: '10' },
        or: [{ tags: ['prod'] }, { param: { 'risk.stop': { lte: 0.05 } } }],
        sort: '-metric.sharpe',
      }),
    ).toEqual([
      ['strategy', 'a,b'],
      ['metric.sharpe.gte', '1'],
      ['param.fast.eq', '10'],
      ['param.mode.eq', '"10"'],
      ['or.1.tag', 'prod'],
      ['or.2.param.risk.stop.lte', '0.05'],
      ['sort', '-metric.sharpe'],
    ]);
  });
});
