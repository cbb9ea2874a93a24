import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toProxyEvent } from '../../../dev/local-api.ts';
import type { DbClient } from '../../../functions/store/db.ts';
import { pollUntil } from '../../support/poll.ts';
import { load, useApi, walk, type Api } from './support.ts';

// Each API has a database of its own: these tests lock whole tables.
const short = useApi({ isolated: true, config: { statementTimeoutMs: 500 } });
const long = useApi({ isolated: true, config: { statementTimeoutMs: 20_000, dbSessions: 2 } });

const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1);
const SYMBOL = 'LIM/USDT';
const candlesQuery = { exchange: 'binance', symbol: SYMBOL, interval: '1m', start: T0, limit: 10 };

beforeAll(async () => {
  // 3 hours of 1m candles with two holes: minutes 30-39 and 100-104.
  const bars = walk(T0, 180, MIN, 3, (i) => (i >= 30 && i < 40) || (i >= 100 && i < 105));
  await load(short, SYMBOL, '1m', bars);
  await load(long, SYMBOL, '1m', bars);
});

let holders: DbClient[] = [];
afterEach(async () => {
  for (const h of holders) {
    await h.query('ROLLBACK');
    h.release();
  }
  holders = [];
});

/** Another session takes `lock` on a table and keeps it until the test ends. */
async function hold(api: Api, table: string, mode = 'ACCESS EXCLUSIVE'): Promise<void> {
  const h = await api.pool.connect();
  holders.push(h);
  await h.query('BEGIN');
  await h.query(`LOCK TABLE ${table} IN ${mode} MODE`);
}

/** API statements on the database other than the asking session and the lock holders: what still runs. */
async function running(api: Api, pattern: string): Promise<number> {
  const { rows } = await api.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE $1`,
    [`%${pattern}%`],
  );
  return rows[0]!.n;
}

/** A run on the test's 1m series over [start, end). */
const runOver = (start: string, end: string) => ({
  strategy: 's',
  strategyVersion: '1',
  parameters: {},
  instruments: [{ exchange: 'binance', symbol: SYMBOL, interval: '1m' }],
  start,
  end,
  metrics: { totalReturn: 0.1 },
});

describe('statement timeout', () => {
  it('cancels a statement that runs past the limit: 503 problem+json, and the statement is gone from the server', async () => {
    await hold(short, 'candles');
    const began = Date.now();
    const r = await short.get('/v1/candles', candlesQuery);
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.body).toMatchObject({ status: 503, type: 'https://candlekeep.dev/problems/timeout', detail: expect.stringMatching(/took too long/) });
    expect(r.headers.get('retry-after')).toBe('1');
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(await running(short, 'FROM candles')).toBe(0);
  });

  it('bounds the backtest fingerprint hash by the same limit', async () => {
    await hold(short, 'candles');
    const r = await short.call('POST', '/v1/backtests', {
      body: runOver('2024-03-01', '2024-03-02'),
    });
    expect(r.status).toBe(503);
    expect(r.body.type).toBe('https://candlekeep.dev/problems/timeout');
    expect(await running(short, 'candles')).toBe(0);
  });

  it('refuses a fingerprint over more source candles than it may hash, before reading any', async () => {
    const r = await short.call('POST', '/v1/backtests', {
      body: runOver('2000-01-01', '2099-01-01'),
    });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ parameter: 'end', detail: expect.stringMatching(/more than 10,000,000/) });
  });

  it('stops each statement before the Lambda deadline, whatever the configured limit', async () => {
    await hold(long, 'candles');
    const url = new URL(`http://local/v1/candles?${new URLSearchParams(Object.entries(candlesQuery).map(([k, v]): [string, string] => [k, String(v)]))}`);
    const event = toProxyEvent({ method: 'GET', url, headers: {}, body: undefined }, '/v1/candles', {});
    // What the key authorizer hands on for a read key, as API Gateway passes it to the function.
    (event.requestContext as { authorizer?: unknown }).authorizer = { principalId: 'key-1', scope: 'read', keyName: 'limits' };
    const began = Date.now();
    const deadline = began + 2_500;
    const res = await long.handler(event, { awsRequestId: 'r1', getRemainingTimeInMillis: () => deadline - Date.now() } as never);
    expect(res.statusCode).toBe(503);
    expect(JSON.parse(res.body)).toMatchObject({ type: 'https://candlekeep.dev/problems/timeout' });
    // The 20 s limit would have kept it waiting: the deadline (2.5 s, less a 1 s margin) ended it.
    expect(Date.now() - began).toBeLessThan(2_500);
    expect(await running(long, 'FROM candles')).toBe(0);
  });
});

describe('cancellation', () => {
  it('cancels the statement on the server when the client hangs up', async () => {
    await hold(long, 'candles');
    const ac = new AbortController();
    const url = new URL(`${long.url}/v1/candles`);
    for (const [k, v] of Object.entries(candlesQuery)) url.searchParams.set(k, String(v));
    const request = fetch(url, { headers: { 'x-api-key': 'test-key-0123456789' }, signal: ac.signal }).catch((err: unknown) => err);
    await pollUntil(async () => (await running(long, 'FROM candles')) === 1, { description: 'the candle read to wait on the lock' });
    ac.abort();
    expect(await request).toBeInstanceOf(Error);
    // Within a fraction of the 20 s limit, and while the lock is still held: only a cancel ends it.
    await pollUntil(async () => (await running(long, 'FROM candles')) === 0, { timeoutMs: 5_000, description: 'the abandoned statement to be cancelled' });
  });
});

describe('bounded concurrency', () => {
  it('runs at most dbSessions statements at once across the API; one more answers 503 busy at once', async () => {
    await hold(long, 'candles');
    const aborts = [new AbortController(), new AbortController()];
    const url = new URL(`${long.url}/v1/candles`);
    for (const [k, v] of Object.entries(candlesQuery)) url.searchParams.set(k, String(v));
    const blocked = aborts.map((ac) => fetch(url, { headers: { 'x-api-key': 'test-key-0123456789' }, signal: ac.signal }).catch((err: unknown) => err));
    await pollUntil(async () => (await running(long, 'FROM candles')) === 2, { description: 'two candle reads to hold both sessions' });

    const r = await long.get('/v1/markets');
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ type: 'https://candlekeep.dev/problems/busy', detail: expect.stringMatching(/busy/) });

    for (const ac of aborts) ac.abort();
    await Promise.all(blocked);
    await pollUntil(async () => (await running(long, 'FROM candles')) === 0, { description: 'the abandoned reads to be cancelled' });
    expect((await long.get('/v1/markets')).status).toBe(200);
  });
});

describe('GET /v1/markets', () => {
  it('reads no candle: it answers while another session holds an exclusive lock on the candles table', async () => {
    await hold(short, 'candles');
    const r = await short.get('/v1/markets', { symbol: SYMBOL });
    expect(r.status).toBe(200);
    expect(r.body.markets).toEqual([
      {
        exchange: 'binance',
        symbol: SYMBOL,
        interval: '1m',
        state: 'not-followed',
        candles: 165,
        firstOpenTime: T0,
        lastOpenTime: T0 + 179 * MIN,
        // Stored without a range, so the coverage ledger has none to read.
        newestClosedOpenTime: null,
        lagMs: null,
        pulledAt: null,
        lastError: null,
        gapCount: 2,
        missingCandles: 15,
        largestGapCandles: 10,
        deadLetteredMessages: 0,
        deadLetteredCandles: 0,
        retentionDays: null,
        expiredBefore: null,
        expiredCandles: 0,
      },
    ]);
  });
});
