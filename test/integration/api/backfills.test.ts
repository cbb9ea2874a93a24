import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localAuthorizer, startLocalServer, type LocalServer, type ProxyHandler } from '../../../dev/local-api.ts';
import { createApiHandler } from '../../../functions/api/api-lambda.ts';
import { insertBackfill } from '../../../functions/store/backfills.ts';
import { SeriesRegistry } from '../../../functions/store/series.ts';
import { uniqueName, uniqueSymbol } from '../../support/db.ts';
import { watchedBus, type WatchedBus } from '../../support/bus.ts';
import { API_KEY, expectContract, useApi } from './support.ts';

const api = useApi();
const H = 3600_000;
const T0 = Date.UTC(2024, 0, 1);
let symbol: string;
const ids: number[] = [];

beforeAll(async () => {
  symbol = uniqueSymbol();
  const seriesId = (await new SeriesRegistry().resolve(api.pool, [{ exchange: 'binance', symbol, interval: '1h' }])).values().next().value!;
  const chunks = (n: number, at: number) => Array.from({ length: n }, (_, i) => ({ start: at + i * 24 * H, end: at + (i + 1) * 24 * H }));
  // Oldest first: a finished one, a failed one, and one still running with 1 of 4 chunks done.
  for (const [status, message] of [['done', null], ['failed', 'binance: bad request (HTTP 400)'], ['running', null]] as const) {
    const id = await insertBackfill(api.pool, {
      seriesId,
      range: { start: T0, end: T0 + 4 * 24 * H },
      status,
      message: message ?? undefined,
      requestedBy: 'test',
      requestId: uniqueName('bf'),
      listedAt: undefined,
      unsupportedEnd: undefined,
      chunks: chunks(4, T0),
    });
    ids.push(id!);
  }
  const running = ids[2]!;
  await api.pool.query(`UPDATE backfill_chunks SET status = 'done', candles = 24 WHERE backfill_id = $1 AND chunk_no = 1`, [running]);
  await api.pool.query(`UPDATE backfills SET started_at = now() - interval '60 seconds' WHERE id = $1`, [running]);
  await api.pool.query(`UPDATE backfill_chunks SET status = 'done', candles = 24 WHERE backfill_id = $1`, [ids[0]]);
});

describe('GET /v1/backfills', () => {
  it('lists backfills newest first with progress, ETA and errors', async () => {
    const r = await api.get('/v1/backfills', { symbol });
    expect(r.status).toBe(200);
    expect(r.body.backfills.map((b: { id: number }) => b.id)).toEqual([...ids].reverse());
    const [running, failed, done] = r.body.backfills;
    expect(running).toMatchObject({ status: 'running', symbol, interval: '1h', chunks: { total: 4, done: 1, pending: 3 }, candlesWritten: 24, fraction: 0.25 });
    // One chunk in about 60 s: three more take about 180 s.
    expect(running.etaSeconds).toBeGreaterThanOrEqual(170);
    expect(running.etaSeconds).toBeLessThan(200);
    expect(failed).toMatchObject({ status: 'failed', message: 'binance: bad request (HTTP 400)', etaSeconds: null });
    expect(done).toMatchObject({ status: 'done', fraction: 1, candlesWritten: 96, from: new Date(T0).toISOString() });
  });

  it('filters by status and pages with a signed cursor bound to the filters', async () => {
    const active = await api.get('/v1/backfills', { symbol, status: 'planned,running' });
    expect(active.body.backfills.map((b: { id: number }) => b.id)).toEqual([ids[2]]);

    const first = await api.get('/v1/backfills', { symbol, limit: 2 });
    expect(first.body.backfills).toHaveLength(2);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await api.get('/v1/backfills', { symbol, limit: 2, cursor: first.body.nextCursor });
    expect(second.body.backfills.map((b: { id: number }) => b.id)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();

    const foreign = await api.get('/v1/backfills', { symbol, limit: 2, status: 'done', cursor: first.body.nextCursor });
    expect(foreign.status).toBe(400);
    expect(foreign.body.parameter).toBe('cursor');
  });

  it('answers CSV and refuses unknown states and oversized pages', async () => {
    const csv = await api.get('/v1/backfills', { symbol, format: 'csv' });
    expect(csv.status).toBe(200);
    expect(csv.text.split('\n')[0]).toBe('id,exchange,symbol,interval,from,to,status,chunks_done,chunks_total,chunks_failed,candles_written,eta,requested_at,finished_at,message');
    const bad = await api.get('/v1/backfills', { status: 'sleeping' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ parameter: 'status[0]' });
    expect(bad.body.detail).toContain('unknown backfill status "sleeping"');
    expect((await api.get('/v1/backfills', { limit: 101 })).status).toBe(400);
  });
});

describe('POST /v1/backfills', () => {
  const request = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', from: '2024-01-01', to: '2024-01-02' };

  it('answers 501 naming the missing setting when the API has no backfill bus', async () => {
    const r = await api.call('POST', '/v1/backfills', { body: request });
    expect(r.status).toBe(501);
    expect(r.body.detail).toContain('CANDLEKEEP_BACKFILL_BUS');
  });

  describe('with a bus', () => {
    let bus: WatchedBus;
    let server: LocalServer;
    let url: string;

    beforeAll(async () => {
      bus = await watchedBus('backfills');
      const pool = api.pool;
      const handler = createApiHandler({ poolMax: 2, corsOrigins: [], backfillBus: bus.name }, { db: async () => pool, events: async () => bus.events }) as unknown as ProxyHandler;
      server = await startLocalServer({ handler, authorizer: localAuthorizer({ db: async () => pool, apiKey: API_KEY }), port: 0 });
      url = server.url;
    });
    afterAll(async () => {
      await server?.close();
      await bus?.delete();
    });

    const post = async (body: unknown) => {
      const res = await fetch(`${url}/v1/backfills`, { method: 'POST', headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      const answer = { status: res.status, headers: res.headers, text, body: JSON.parse(text) };
      expectContract('POST', '/v1/backfills', answer);
      return answer;
    };

    it('puts the request on the bus as the planner reads it and answers 202 with the event id', async () => {
      const r = await post(request);
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ eventId: expect.any(String), request: { ...request, from: '2024-01-01T00:00:00.000Z', to: '2024-01-02T00:00:00.000Z', requestedBy: 'api:local' } });
      expect(await bus.nextEvent()).toMatchObject({ id: r.body.eventId, source: 'candlekeep', 'detail-type': 'Backfill Requested', detail: r.body.request });
    });

    it('refuses a bad request with the field named and sends nothing', async () => {
      const r = await post({ ...request, to: '2023-12-31' });
      expect(r.status).toBe(422);
      expect(r.body.parameter).toBe('to');
      const extra = await post({ ...request, priority: 'high' });
      expect(extra.status).toBe(422);
    });
  });
});
