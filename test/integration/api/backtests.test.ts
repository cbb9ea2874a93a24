import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CreateBacktestInput } from '../../../functions/backtests/record.ts';
import { uniqueName, uniqueSymbol } from '../../support/db.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { load, parseCsv, useApi, walk } from './support.ts';

const api = useApi();
const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1);
let symbol: string;
let bars: StoredCandle[];

beforeAll(async () => {
  symbol = uniqueSymbol();
  // Two hours of 1m candles, minutes 50-54 missing, the last one still open.
  bars = walk(T0, 120, MIN, 9, (i) => i >= 50 && i < 55);
  bars[bars.length - 1]!.closed = false;
  await load(api, symbol, '1m', bars);
});

function run(over: Partial<CreateBacktestInput> = {}): CreateBacktestInput {
  return {
    strategy: 'sma_cross',
    strategyVersion: '1.2.0',
    parameters: { fast: 10, slow: 30 },
    instruments: [{ exchange: 'binance', symbol, interval: '1m' }],
    start: '2024-03-01T00:00:00Z',
    end: '2024-03-01T02:00:00Z',
    metrics: { totalReturn: 0.12, sharpe: 1.4, maxDrawdown: 0.08, winRate: 0.55, tradeCount: 42, custom_score: -3.5 },
    tags: ['research'],
    ...over,
  };
}

const post = (body: unknown, headers: Record<string, string> = {}) => api.call('POST', '/v1/backtests', { body: body as object, headers });

describe('POST /v1/backtests', () => {
  it('stores a run with the fingerprint of its candles and returns it', async () => {
    const r = await post(
      run({ equityCurve: [{ t: '2024-03-01T00:00:00Z', equity: 1000 }, { t: T0 + 3600_000, equity: 1120.5 }], trades: [{ side: 'long', entryTime: T0, exitTime: T0 + MIN, pnl: 3.5, reason: 'cross' }], notes: 'first try' }),
    );
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe(`/v1/backtests/${r.body.id}`);
    expect(r.body).toMatchObject({
      strategy: 'sma_cross',
      strategyVersion: '1.2.0',
      parameters: { fast: 10, slow: 30 },
      start: '2024-03-01T00:00:00.000Z',
      end: '2024-03-01T02:00:00.000Z',
      metrics: { totalReturn: 0.12, sharpe: 1.4, custom_score: -3.5 },
      tags: ['research'],
      notes: 'first try',
      equityCurvePoints: 2,
      tradesStored: 1,
    });
    expect(r.body.fingerprint).toMatchObject({ candles: 115 });
    expect(r.body.fingerprint.value).toMatch(/^ck1:[0-9a-f]{40}$/);

    const got = await api.get(`/v1/backtests/${r.body.id}`);
    expect(got.body).toEqual(r.body);
    const full = await api.get(`/v1/backtests/${r.body.id}`, { include: 'equityCurve,trades' });
    expect(full.body.equityCurve).toEqual([{ t: T0, equity: 1000 }, { t: T0 + 3600_000, equity: 1120.5 }]);
    expect(full.body.trades).toEqual([{ side: 'long', entryTime: T0, exitTime: T0 + MIN, pnl: 3.5, reason: 'cross' }]);
  });

  it('creates one run for retries with the same Idempotency-Key, also when they race', async () => {
    const key = randomUUID();
    const body = run({ strategy: uniqueName('idem') });
    const first = await post(body, { 'Idempotency-Key': key });
    const again = await post(body, { 'Idempotency-Key': key });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);

    const raceKey = randomUUID();
    const raceBody = run({ strategy: uniqueName('race') });
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(raceBody, { 'Idempotency-Key': raceKey })));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    const listed = await api.get('/v1/backtests', { strategy: raceBody.strategy });
    expect(listed.body.runs).toHaveLength(1);

    const reused = await post(run({ strategy: uniqueName('other') }), { 'Idempotency-Key': key });
    expect(reused.body).toMatchObject({ status: 422, parameter: 'Idempotency-Key' });
    const badKey = await post(body, { 'Idempotency-Key': 'has space' });
    expect(badKey.body).toMatchObject({ status: 400, parameter: 'Idempotency-Key' });
  });

  const invalid: [string, () => string | object, number, string, RegExp][] = [
    ['NaN written by Python', () => JSON.stringify(run()).replace('"sharpe":1.4', '"sharpe":NaN'), 422, 'metrics.sharpe', /is NaN/],
    ['Infinity', () => JSON.stringify(run()).replace('"sharpe":1.4', '"sharpe":Infinity'), 422, 'metrics.sharpe', /is Infinity/],
    ['-Infinity in a nested parameter', () => JSON.stringify(run({ parameters: { risk: { stop: 0 } } })).replace('"stop":0', '"stop":-Infinity'), 422, 'parameters.risk.stop', /-Infinity/],
    ['a number that overflows', () => JSON.stringify(run()).replace('"sharpe":1.4', '"sharpe":1e999'), 422, 'metrics.sharpe', /Infinity|finite/],
    ['a drawdown in percent', () => run({ metrics: { maxDrawdown: 25 } }), 422, 'metrics.maxDrawdown', /between 0 and 1/],
    ['a negative drawdown', () => run({ metrics: { maxDrawdown: -0.2 } }), 422, 'metrics.maxDrawdown', /positive fraction/],
    ['a win rate above 1', () => run({ metrics: { winRate: 55 } }), 422, 'metrics.winRate', /between 0 and 1/],
    ['a fractional trade count', () => run({ metrics: { tradeCount: 1.5 } }), 422, 'metrics.tradeCount', /whole number/],
    ['a loss beyond -100 %', () => run({ metrics: { totalReturn: -1.5 } }), 422, 'metrics.totalReturn', /at least -1/],
    ['no metrics', () => run({ metrics: {} }), 422, 'metrics', /at least one metric/],
    ['a misspelt field', () => ({ ...run(), metrcis: {} }), 422, 'metrcis', /unknown field/],
    ['a missing field', () => ({ ...run(), strategy: undefined }), 422, 'strategy', /required/],
    ['an inverted range', () => run({ start: '2024-03-02', end: '2024-03-01' }), 422, 'end', /after start/],
    ['epoch seconds', () => run({ start: 1709251200 }), 422, 'start', /epoch seconds/],
    ['a SQL-looking strategy', () => run({ strategy: "x'; DROP TABLE backtests;--" }), 422, 'strategy', /characters/],
    ['an unknown instrument', () => run({ instruments: [{ exchange: 'binance', symbol: uniqueSymbol(), interval: '1m' }] }), 422, 'instruments[0]', /no candles are stored/],
    ['an unordered equity curve', () => run({ equityCurve: [{ t: T0 + MIN, equity: 1 }, { t: T0, equity: 2 }] }), 422, 'equityCurve[1].t', /increasing time order/],
    ['a duplicate tag', () => run({ tags: ['a', 'a'] }), 422, 'tags', /twice/],
    ['malformed JSON', () => '{"strategy": "x",', 400, '(body)', /not valid JSON/],
    ['JSON that is not an object', () => '[1,2,3]', 422, '(body)', /expected object/],
    ['a NUL character', () => JSON.stringify(run({ notes: 'a\u0000b' })), 400, 'notes', /NUL/],
    ['deeply nested JSON', () => `{"parameters":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 400, '(body)', /nested deeper than 32/],
  ];
  it.each(invalid)('rejects %s with a message naming the field', async (_name, body, status, parameter, detail) => {
    const r = await post(body());
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.body.parameter).toBe(parameter);
    expect(r.body.detail).toMatch(detail);
  });

  it('refuses huge bodies, other media types and empty bodies', async () => {
    const huge = await post(JSON.stringify({ ...run(), notes: 'x'.repeat(10 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    const fiveAndAHalf = await post(JSON.stringify({ ...run(), notes: 'x'.repeat(5.5 * 1024 * 1024) }));
    expect(fiveAndAHalf.status).toBe(413);
    expect(fiveAndAHalf.body.detail).toMatch(/limit is 5 MiB/);
    const form = await api.call('POST', '/v1/backtests', { body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.body).toMatchObject({ status: 415, parameter: 'Content-Type' });
    const empty = await api.call('POST', '/v1/backtests', { headers: { 'content-type': 'application/json' } });
    expect(empty.body).toMatchObject({ status: 400, parameter: '(body)' });
  });

  it('keeps SQL-looking parameter values as data', async () => {
    const evil = "x' OR 1=1; DROP TABLE backtests;--";
    const r = await post(run({ strategy: uniqueName('evil'), parameters: { note: evil } }));
    expect(r.status).toBe(201);
    expect((await api.get(`/v1/backtests/${r.body.id}`)).body.parameters.note).toBe(evil);
    const hit = await api.get('/v1/backtests', { strategy: r.body.strategy, 'param.note': evil });
    expect(hit.body.runs.map((x: { id: string }) => x.id)).toEqual([r.body.id]);
  });
});

describe('GET and DELETE /v1/backtests/{id}', () => {
  it('deletes a run; a deleted or unknown run is 404, a malformed id 400', async () => {
    const r = await post(run({ strategy: uniqueName('del') }));
    expect((await api.call('DELETE', `/v1/backtests/${r.body.id}`)).status).toBe(204);
    expect((await api.get(`/v1/backtests/${r.body.id}`)).status).toBe(404);
    expect((await api.call('DELETE', `/v1/backtests/${r.body.id}`)).status).toBe(404);
    const bad = await api.get('/v1/backtests/not-a-uuid');
    expect(bad.body).toMatchObject({ status: 400, parameter: 'id' });
    expect((await api.get(`/v1/backtests/${r.body.id}`, { include: 'everything' })).body.parameter).toBe('include[0]');
  });
});

describe('GET /v1/backtests', () => {
  let strategy: string;
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    strategy = uniqueName('sweep');
    const specs: [string, Record<string, unknown>, Record<string, number>, string[]][] = [
      ['a', { fast: 5, slow: 30 }, { sharpe: 0.5, maxDrawdown: 0.3 }, ['research']],
      ['b', { fast: 10, slow: 30 }, { sharpe: 1.2, maxDrawdown: 0.2 }, ['research', 'prod']],
      ['c', { fast: 20, slow: 30 }, { sharpe: 2.5, maxDrawdown: 0.1 }, ['prod']],
      ['d', { fast: 10, slow: 50, mode: 'fast' }, { sharpe: 1.8, maxDrawdown: 0.15 }, []],
      ['e', { fast: 40, slow: 50, mode: '10' }, { totalReturn: 0.01 }, ['research']],
    ];
    for (const [name, parameters, metrics, tags] of specs) {
      ids[name] = (await post(run({ strategy, parameters, metrics, tags }))).body.id;
    }
  });
  const list = async (query: Record<string, string | number> | [string, string][]) => {
    const q = Array.isArray(query) ? ([['strategy', strategy], ...query] as [string, string][]) : { strategy, ...query };
    const r = await api.get('/v1/backtests', q);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.runs.map((x: { id: string }) => Object.entries(ids).find(([, id]) => id === x.id)?.[0]).sort();
  };

  it('filters by metric ranges, parameter values, tags and creation time', async () => {
    expect(await list({})).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await list({ 'metric.sharpe.gte': 1, 'metric.sharpe.lt': 2 })).toEqual(['b', 'd']);
    expect(await list({ 'metric.maxDrawdown.lte': 0.15 })).toEqual(['c', 'd']);
    expect(await list({ 'metric.sharpe.exists': 'false' })).toEqual(['e']);
    expect(await list({ 'param.fast': 10 })).toEqual(['b', 'd']);
    expect(await list({ 'param.fast.gt': 10, 'param.slow': 30 })).toEqual(['c']);
    expect(await list({ 'param.mode': '"10"' })).toEqual(['e']);
    expect(await list({ 'param.mode.exists': 'true' })).toEqual(['d', 'e']);
    expect(await list({ 'param.mode.gte': 5 })).toEqual([]); // text values never match a numeric range
    expect(await list({ tag: 'research,prod' })).toEqual(['b']);
    expect(await list({ 'tag.any': 'prod' })).toEqual(['b', 'c']);
    expect(await list({ 'tag.none': 'research' })).toEqual(['c', 'd']);
    expect(await list({ 'created.gte': Date.now() + 60_000 })).toEqual([]);
    expect(await list({ 'created.lt': new Date(Date.now() + 60_000).toISOString() })).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('combines OR groups with the common filters', async () => {
    // strategy AND ((fast = 5) OR (tagged prod AND sharpe >= 2) OR (mode exists AND sharpe >= 1))
    expect(
      await list({ 'or.1.param.fast': 5, 'or.2.tag': 'prod', 'or.2.metric.sharpe.gte': 2, 'or.3.param.mode.exists': 'true', 'or.3.metric.sharpe.gte': 1 }),
    ).toEqual(['a', 'c', 'd']);
    expect(await list({ 'metric.sharpe.gte': 1, 'or.1.tag.any': 'research', 'or.2.param.slow': 50 })).toEqual(['b', 'd']);
  });

  it('sorts by any metric, missing values last, and pages without repeats or gaps', async () => {
    /** Every run of the strategy, page after page, in the order of `sort`. */
    const paged = async (sort: string, limit: number) => {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const r = await api.get('/v1/backtests', { strategy, sort, limit, ...(cursor ? { cursor } : {}) });
        seen.push(...r.body.runs.map((x: { id: string }) => x.id));
        cursor = r.body.nextCursor ?? undefined;
      } while (cursor);
      return seen;
    };
    expect(await paged('-metric.sharpe', 2)).toEqual([ids.c, ids.d, ids.b, ids.a, ids.e]);
    expect(await paged('created', 3)).toEqual([ids.a, ids.b, ids.c, ids.d, ids.e]);
  });

  it('answers CSV with metric and parameter columns', async () => {
    const r = await api.get('/v1/backtests', { strategy, sort: 'created', format: 'csv' });
    const rows = parseCsv(r.text);
    expect(rows.map((x) => x.id)).toEqual([ids.a, ids.b, ids.c, ids.d, ids.e]);
    expect(rows[1]).toMatchObject({ 'metric.sharpe': '1.2', 'param.fast': '10', tags: 'research;prod', strategy });
    expect(rows[4]!['metric.sharpe']).toBe('');
  });

  it('neutralises spreadsheet formulas in CSV cells but keeps numbers as they are', async () => {
    const formula = '=HYPERLINK("http://x","y")';
    const strategy = uniqueName('csv_formula');
    const a = await post(run({ strategy, strategyVersion: formula, parameters: { note: '@cmd', offset: -0.5, price: '-12.50' } }));
    const b = await post(run({ strategy, strategyVersion: '-1+2', parameters: { note: 'plain', offset: 1, price: '3.25' } }));
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.strategyVersion).toBe(formula); // stored and served as JSON unchanged

    const list = await api.get('/v1/backtests', { strategy, sort: 'created', format: 'csv' });
    expect(list.text).toContain(`"'=HYPERLINK(""http://x"",""y"")"`);
    const rows = parseCsv(list.text);
    expect(rows.map((r) => r.strategy_version)).toEqual([`'${formula}`, "'-1+2"]);
    expect(rows[0]).toMatchObject({ 'param.note': "'@cmd", 'param.offset': '-0.5', 'param.price': '-12.50', 'metric.custom_score': '-3.5' });

    const cmp = parseCsv((await api.get('/v1/backtests/compare', { ids: `${a.body.id},${b.body.id}`, format: 'csv' })).text);
    expect(cmp.find((r) => r.name === 'strategy_version')).toEqual({ kind: 'run', name: 'strategy_version', [a.body.id]: `'${formula}`, [b.body.id]: "'-1+2" });
    expect(cmp.find((r) => r.name === 'offset')).toEqual({ kind: 'param', name: 'offset', [a.body.id]: '-0.5', [b.body.id]: '1' });
  });

  it.each([
    ['an unknown filter', { foo: 1 }, 'foo', /unknown query parameter/],
    ['an unknown metric op', { 'metric.sharpe.gtx': 1 }, 'metric.sharpe.gtx', /not a metric filter/],
    ['a non-numeric metric bound', { 'metric.sharpe.gte': 'high' }, 'metric.sharpe.gte', /finite number/],
    ['a numeric range on text', { 'param.fast.lt': 'abc' }, 'param.fast.lt', /finite number/],
    ['nested groups', { 'or.1.or.2.tag': 'x' }, 'or.1.or.2.tag', /do not nest/],
    ['a bad sort', { sort: 'sharpe' }, 'sort', /created/],
    ['a limit above 1000', { limit: 5000 }, 'limit', /at most 1000/],
    ['an unsigned cursor', { cursor: 'eyJwIjpbbnVsbCwiMDE5MGI2YTAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAwIl0sInEiOiJ4In0' }, 'cursor', /invalid cursor/],
  ])('rejects %s', async (_n, query, parameter, detail) => {
    const r = await api.get('/v1/backtests', query);
    expect(r.body).toMatchObject({ status: 400, parameter });
    expect(r.body.detail).toMatch(detail);
  });
});

describe('GET /v1/backtests/compare', () => {
  it('shows metrics side by side and only the parameters that differ', async () => {
    const strategy = uniqueName('cmp');
    const a = await post(run({ strategy, parameters: { fast: 5, slow: 30, mode: 'a', risk: { stop: 0.02, take: 0.1 } }, metrics: { sharpe: 1, totalReturn: 0.1 } }));
    const b = await post(run({ strategy, parameters: { fast: 10, slow: 30, mode: 'a', risk: { stop: 0.02, take: 0.2 } }, metrics: { sharpe: 2, calmar: 3 } }));
    const c = await post(run({ strategy, parameters: { fast: 20, slow: 30, mode: 'b', extra: true, risk: { stop: 0.02, take: 0.1 } }, metrics: { sharpe: 1.5 } }));
    const r = await api.get('/v1/backtests/compare', { ids: [a.body.id, b.body.id, c.body.id].join(',') });
    expect(r.status).toBe(200);
    expect(r.body.runs.map((x: { id: string }) => x.id)).toEqual([a.body.id, b.body.id, c.body.id]);
    expect(r.body.metrics).toEqual([
      { name: 'totalReturn', values: [0.1, null, null] },
      { name: 'sharpe', values: [1, 2, 1.5] },
      { name: 'calmar', values: [null, 3, null] },
    ]);
    expect(r.body.parameters).toEqual({
      differing: [
        { name: 'extra', values: [null, null, true] },
        { name: 'fast', values: [5, 10, 20] },
        { name: 'mode', values: ['a', 'a', 'b'] },
        { name: 'risk.take', values: [0.1, 0.2, 0.1] },
      ],
      identical: ['risk.stop', 'slow'],
    });
    expect(r.body.data.map((d: { changed: boolean }) => d.changed)).toEqual([false, false, false]);

    const csv = parseCsv((await api.get('/v1/backtests/compare', { ids: [a.body.id, b.body.id].join(','), format: 'csv' })).text);
    expect(csv.find((x) => x.name === 'sharpe')).toEqual({ kind: 'metric', name: 'sharpe', [a.body.id]: '1', [b.body.id]: '2' });
  });

  it('rejects fewer than 2, more than 10, repeated and unknown ids', async () => {
    const one = randomUUID();
    expect((await api.get('/v1/backtests/compare', { ids: one })).body).toMatchObject({ status: 400, parameter: 'ids' });
    expect((await api.get('/v1/backtests/compare', { ids: Array.from({ length: 11 }, () => randomUUID()).join(',') })).body).toMatchObject({ status: 400 });
    expect((await api.get('/v1/backtests/compare', { ids: `${one},${one}` })).body.detail).toMatch(/twice/);
    expect((await api.get('/v1/backtests/compare', { ids: `${one},${randomUUID()}` })).body).toMatchObject({ status: 404, parameter: 'ids' });
    expect((await api.get('/v1/backtests/compare', {})).body).toMatchObject({ status: 400, parameter: 'ids' });
  });

  it('detects that the candle data a run used changed: restated, backfilled or still-open candles', async () => {
    const sym = uniqueSymbol();
    const data = walk(T0, 60, MIN, 21, (i) => i === 20);
    data[data.length - 1]!.closed = false;
    await load(api, sym, '1m', data, Date.UTC(2025, 0, 1));
    const instruments = [{ exchange: 'binance' as const, symbol: sym, interval: '1m' as const }];
    const strategy = uniqueName('fp');
    const early = await post(run({ strategy, instruments, start: T0, end: T0 + 10 * MIN }));
    const middle = await post(run({ strategy, instruments, start: T0 + 10 * MIN, end: T0 + 30 * MIN }));
    const late = await post(run({ strategy, instruments, start: T0 + 30 * MIN, end: T0 + 60 * MIN }));
    const hourly = await post(run({ strategy, instruments: [{ exchange: 'binance', symbol: sym, interval: '1h' }], start: T0, end: T0 + 60 * MIN }));
    expect(hourly.body.fingerprint.candles).toBe(59); // resampled from the 1m candles it covers
    const ids = [early.body.id, middle.body.id, late.body.id, hourly.body.id].join(',');
    const before = await api.get('/v1/backtests/compare', { ids });
    expect(before.body.data.map((d: { changed: boolean }) => d.changed)).toEqual([false, false, false, false]);

    // The exchange restates minute 5, the gap at minute 20 is backfilled, the open minute 59 closes.
    const restated = { ...data[5]!, close: '999.0000', high: '999.0000' };
    const filled = walk(T0, 21, MIN, 99)[20]!;
    const closedNow = { ...data[data.length - 1]!, closed: true };
    await load(api, sym, '1m', [restated, filled, closedNow], Date.UTC(2025, 1, 1));

    const after = await api.get('/v1/backtests/compare', { ids });
    const byId = (id: string) => after.body.data.find((d: { id: string }) => d.id === id);
    expect(byId(early.body.id)).toMatchObject({ changed: true, restatedCandles: 1, addedCandles: 0, changedOpenCandles: 0 });
    expect(byId(middle.body.id)).toMatchObject({ changed: true, restatedCandles: 0, addedCandles: 1 });
    expect(byId(late.body.id)).toMatchObject({ changed: true, changedOpenCandles: 1 });
    expect(byId(hourly.body.id)).toMatchObject({ changed: true, restatedCandles: 1, addedCandles: 1, changedOpenCandles: 1 });

    // A run recorded now fingerprints the new data: a different value, and unchanged since.
    const now = await post(run({ strategy, instruments, start: T0, end: T0 + 10 * MIN }));
    expect(now.body.fingerprint.value).not.toBe(early.body.fingerprint.value);
    const same = await post(run({ strategy, instruments, start: T0, end: T0 + 10 * MIN, tags: ['again'] }));
    expect(same.body.fingerprint.value).toBe(now.body.fingerprint.value);
    const check = await api.get('/v1/backtests/compare', { ids: `${now.body.id},${early.body.id}` });
    expect(check.body.data.map((d: { changed: boolean }) => d.changed)).toEqual([false, true]);
  });
});
