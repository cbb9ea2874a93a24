import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { BannedError } from '../../../functions/exchanges/errors.ts';
import { DEFAULT_RULES, deriveRule, Governor, MemoryBudgetStore, scaleRules, type BudgetStore } from '../../../functions/exchanges/governor.ts';
import { adapters } from '../../../functions/exchanges/index.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import type { ExchangeAccess } from '../../../functions/exchanges/access.ts';
import { PostgresBudgetStore } from '../../../functions/exchanges/postgres-budget-store.ts';
import { pullSeries } from '../../../functions/ingest/pull.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import type { Db, Queryable } from '../../../functions/store/db.ts';
import { testPool } from '../../support/db.ts';
import { lateSenders, tightestWindow } from '../../support/late-senders.ts';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { MIN, resetSeries, sleep } from './support.ts';

/** Concurrent pull Lambdas, each with its own pool, governor and store: only PostgreSQL is shared. */
const LAMBDAS = 6;
/** Binance's limit shrunk (identically for the fake and the governor) so the burst needs several windows. */
const PUBLISHED = { limit: 60, windowMs: 60_000 };
const TIME_SCALE = 30; // the minute lasts 2 s

let admin: Db;
let pools: Db[] = [];
let fake: FakeExchange | undefined;

beforeAll(() => {
  admin = testPool(2);
  pools = Array.from({ length: LAMBDAS }, () => testPool(2));
});
afterEach(async () => {
  await fake?.close();
  fake = undefined;
  // Budgets and bans are per database: leave none behind for the next test.
  await admin.query("DELETE FROM rate_budgets WHERE key = 'binance'");
  await admin.query("DELETE FROM exchange_blocks WHERE exchange = 'binance'");
});
afterAll(async () => {
  await Promise.all([admin, ...pools].map((p) => p.end()));
});

const series: SeriesKey[] = ['BTC/USDT', 'ETH/USDT', 'SOL/USDT'].flatMap((symbol) => (['3m', '15m'] as const).map((interval) => ({ exchange: 'binance' as const, symbol, interval })));

function lambdaAccess(f: FakeExchange, store: BudgetStore, timeScale = TIME_SCALE): ExchangeAccess {
  const rules = scaleRules({ binance: deriveRule(PUBLISHED) }, timeScale);
  return { governor: new Governor({ now: Date.now, sleep }, { store, rules }), baseUrls: f.baseUrls, now: Date.now };
}

/** Every "Lambda" pulls every followed series at once, from ten days back: 5 pages of 3m and 1 of 15m per symbol. */
async function burst(f: FakeExchange, stores: BudgetStore[], timeScale = TIME_SCALE) {
  const start = Date.now() - 10 * 1440 * MIN;
  const jobs = series.map((s) => ({ series: s, start }));
  return Promise.all(
    pools.map((pool, i) =>
      pullSeries(jobs, { db: pool, access: lambdaAccess(f, stores[i]!, timeScale), sink: new DirectSink(pool, new CandleStore()) }, { concurrency: 6 }),
    ),
  );
}

describe('a burst of concurrent pulls sharing the PostgreSQL budget', () => {
  it('gets zero 429 and zero 418 answers', async () => {
    await resetSeries(admin, series);
    fake = await startFakeExchange({ timeScale: TIME_SCALE, limits: { binance: { weightPerWindow: PUBLISHED.limit } } });
    const outcomes = await burst(fake, pools.map((p) => new PostgresBudgetStore(p)));
    expect(outcomes.flatMap((o) => o.failures.map((f) => f.error.message))).toEqual([]);
    const stats = fake.stats('binance');
    expect(stats.requests).toBeGreaterThanOrEqual(LAMBDAS * series.length);
    expect(stats.requests * 2).toBeGreaterThan(2 * PUBLISHED.limit); // more than two windows' worth of weight
    expect(stats).toMatchObject({ rateLimited: 0, banned: 0, ok: stats.requests });
  });

  it('is refused by the fake when each Lambda keeps its own budget (so the shared one is what helps)', async () => {
    await resetSeries(admin, series);
    // A 10 s window: the six bursts (each within its own budget, so no governor waits) land in one
    // window even on a loaded machine, where a 2 s one could pass before the later ones arrive.
    const timeScale = 6;
    fake = await startFakeExchange({ timeScale, limits: { binance: { weightPerWindow: PUBLISHED.limit } } });
    await burst(fake, pools.map(() => new MemoryBudgetStore()), timeScale);
    const stats = fake.stats('binance');
    expect(stats.rateLimited + stats.banned).toBeGreaterThan(0);
  });

  it('stops every Lambda from calling an exchange that banned one of them, until the ban ends', async () => {
    fake = await startFakeExchange({ enforceLimits: false });
    fake.inject('binance', '418', { retryAfterSec: 2 });
    const [a, b] = [new PostgresBudgetStore(pools[0]!, { blockCacheMs: 0 }), new PostgresBudgetStore(pools[1]!, { blockCacheMs: 0 })];
    const req = { symbol: 'BTC/USDT', interval: '1m' as const, from: Date.now() - 10 * MIN, to: Date.now(), now: Date.now() };
    const page = (access: ExchangeAccess) => adapters.binance.fetchPage(req, { fetch: access.governor.fetchFor('binance'), baseUrl: fake!.baseUrls.binance });
    await expect(page(lambdaAccess(fake, a))).rejects.toThrow(BannedError);
    // Another Lambda, another store instance: it learns of the ban from the database and makes no call.
    await expect(page(lambdaAccess(fake, b))).rejects.toThrow(BannedError);
    expect(fake.stats('binance').requests).toBe(1);
    await sleep(2_100);
    expect((await page(lambdaAccess(fake, b))).candles.length).toBeGreaterThan(0);
    expect(fake.stats('binance').requests).toBe(2);
  });
});

describe('PostgreSQL budget store', () => {
  it('never grants more than the limit within a window, however many callers race', async () => {
    const rule = { limit: 50, windowMs: 60_000 };
    const key = 'binance';
    const stores = pools.map((p) => new PostgresBudgetStore(p));
    const now = Date.now();
    const waits = await Promise.all(Array.from({ length: 120 }, (_, i) => stores[i % stores.length]!.take(key, 1, now, rule)));
    expect(waits.filter((w) => w === 0)).toHaveLength(50);
    // A refusal says how long until weight leaves: the window after the slot the grants are in.
    for (const w of waits.filter((x) => x > 0)) expect(w).toBeGreaterThanOrEqual(rule.windowMs - 3_000 - 1);
    // Each grant is in flight until its answer; answered at once, after the window (plus one slot) the whole budget is back.
    await Promise.all(waits.map((w, i) => (w === 0 ? stores[i % stores.length]!.settle(key, 1, now, now) : undefined)));
    await Promise.all(stores.map((s) => s.flush()));
    const later = now + rule.windowMs + rule.windowMs / 20;
    expect(await stores[0]!.take(key, 50, later, rule)).toBe(0);
  });

  it('moves a grant to the slot its answer arrived in, so it counts a full window from the answer', async () => {
    const rule = { limit: 10, windowMs: 20_000 }; // 1 s slots
    // A key of its own: other test files share this database and take weight on 'binance' in real time.
    const key = `binance:slot-${Date.now()}`;
    const store = new PostgresBudgetStore(pools[0]!);
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    expect(await store.take(key, 10, t0, rule)).toBe(0);
    await store.settle(key, 10, t0, t0 + 5_000); // a slow answer, 5 s later
    // Without the move the weight would leave at t0 + 21 s; it stays until t0 + 26 s.
    expect(await store.take(key, 1, t0 + 22_000, rule)).toBe(4_000);
    expect(await store.take(key, 1, t0 + 26_000, rule)).toBe(0);
  });

  it('holds a grant in flight until its answer, however late that comes, for every process', async () => {
    const key = `kraken:flight-${Date.now()}`;
    const rule = { limit: 1, windowMs: 1_000 }; // 50 ms slots
    const [a, b] = [new PostgresBudgetStore(pools[0]!), new PostgresBudgetStore(pools[1]!)];
    const t0 = Math.ceil(Date.now() / 1000) * 1000;
    expect(await a.take(key, 1, t0, rule)).toBe(0);
    // Still unanswered 5 s later: the exchange may count it only now, so another process waits a window at least.
    expect(await b.take(key, 1, t0 + 5_000, rule)).toBe(1_000);
    await a.settle(key, 1, t0, t0 + 5_200);
    await a.flush();
    // Answered at 5.2 s: it counts until a window after its answer's slot ends.
    expect(await b.take(key, 1, t0 + 6_100, rule)).toBe(150);
    expect(await b.take(key, 1, t0 + 6_250, rule)).toBe(0);
  });

  it('stops holding a grant never settled (its caller died mid-request) after inFlightMaxMs and a window', async () => {
    const key = `kraken:abandoned-${Date.now()}`;
    const rule = { limit: 1, windowMs: 1_000 };
    const dead = new PostgresBudgetStore(pools[0]!, { inFlightMaxMs: 2_000 });
    const alive = new PostgresBudgetStore(pools[1]!, { inFlightMaxMs: 2_000 });
    const t0 = Math.ceil(Date.now() / 1000) * 1000;
    expect(await dead.take(key, 1, t0, rule)).toBe(0);
    expect(await alive.take(key, 1, t0 + 2_900, rule)).toBeGreaterThan(0);
    expect(await alive.take(key, 1, t0 + 3_050, rule)).toBe(0);
  });

  it('keeps requests that leave late a full window apart at the exchange, across processes (Kraken: one per 1,112 ms against its second)', async () => {
    const delays = [0, 1_500, 0, 900, 2_500, 40, 0, 1_200, 300, 0, 2_000, 0];
    const arrivals = await lateSenders({
      stores: pools.slice(0, 4).map((p) => new PostgresBudgetStore(p)),
      exchange: 'kraken',
      key: `kraken:late-${Date.now()}`,
      rule: DEFAULT_RULES.kraken!,
      start: Date.now(),
      callers: 4,
      callsPerCaller: 3,
      sendDelayMs: (n) => delays[n % delays.length]!,
      latencyMs: 100,
    });
    expect(arrivals).toHaveLength(12);
    expect(tightestWindow(arrivals, 1)).toBeGreaterThanOrEqual(1_000);
  });

  it('sends a settle with the next grant on its bucket: a steady stream costs one round trip per request', async () => {
    const key = `binance:stream-${Date.now()}`;
    const rule = { limit: 100, windowMs: 60_000 };
    const counted = countingQueryable(pools[0]!);
    const store = new PostgresBudgetStore(counted, { settleDelayMs: 60_000 });
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) {
      expect(await store.take(key, 2, t0 + i * 100, rule)).toBe(0);
      await store.settle(key, 2, t0 + i * 100, t0 + i * 100 + 50);
    }
    // Ten grants, ten round trips: each of the first nine settles travelled with the next grant.
    expect(counted.queries).toBe(10);
    expect(store.pendingSettles).toBe(1);
    let row = await budgetRow(key);
    expect(row.flight).toBe(2); // the last grant, its settle still queued here
    expect(row.answered).toBe(18);
    await store.flush();
    expect(counted.queries).toBe(11);
    expect(store.pendingSettles).toBe(0);
    row = await budgetRow(key);
    expect(row).toEqual({ flight: 0, answered: 20 });
  });

  it('sends queued settles on its own after settleDelayMs when no grant comes to carry them', async () => {
    const key = `binance:idle-${Date.now()}`;
    const rule = { limit: 100, windowMs: 60_000 };
    const store = new PostgresBudgetStore(pools[0]!, { settleDelayMs: 50 });
    const t0 = Date.now();
    expect(await store.take(key, 3, t0, rule)).toBe(0);
    await store.settle(key, 3, t0, t0 + 10);
    expect(await budgetRow(key)).toEqual({ flight: 3, answered: 0 });
    await waitFor(async () => (await budgetRow(key)).flight === 0);
    expect(await budgetRow(key)).toEqual({ flight: 0, answered: 3 });
    expect(store.pendingSettles).toBe(0);
  });

  it('keeps settles whose round trip failed and sends them with the next one', async () => {
    const key = `binance:fail-${Date.now()}`;
    const rule = { limit: 100, windowMs: 60_000 };
    const flaky = countingQueryable(pools[0]!);
    const store = new PostgresBudgetStore(flaky, { settleDelayMs: 60_000 });
    const t0 = Date.now();
    expect(await store.take(key, 4, t0, rule)).toBe(0);
    await store.settle(key, 4, t0, t0 + 20);
    // The grant that would carry the settle fails (the connection dropped before it was sent).
    flaky.failNext = 1;
    await expect(store.take(key, 1, t0 + 100, rule)).rejects.toThrow(/connection dropped/);
    expect(store.pendingSettles).toBe(1);
    expect(await budgetRow(key)).toEqual({ flight: 4, answered: 0 });
    // So does a flush: still kept.
    flaky.failNext = 1;
    await expect(store.flush()).rejects.toThrow(/connection dropped/);
    expect(store.pendingSettles).toBe(1);
    // The next grant carries it.
    expect(await store.take(key, 1, t0 + 200, rule)).toBe(0);
    expect(store.pendingSettles).toBe(0);
    expect(await budgetRow(key)).toEqual({ flight: 1, answered: 4 });
  });

  it('ignores a settle for a grant it did not make (no fallback to another grant of the same moment)', async () => {
    const key = `binance:mismatch-${Date.now()}`;
    const rule = { limit: 100, windowMs: 60_000 };
    const store = new PostgresBudgetStore(pools[0]!, { settleDelayMs: 60_000 });
    const t0 = Date.now();
    expect(await store.take(key, 5, t0, rule)).toBe(0);
    await store.settle(key, 1, t0, t0 + 10); // no grant of weight 1 at t0
    expect(store.pendingSettles).toBe(0);
    await store.settle(key, 5, t0, t0 + 10);
    await store.flush();
    expect(await budgetRow(key)).toEqual({ flight: 0, answered: 5 });
  });
});

/** A pool's query, counted, and failing the next `failNext` statements before they are sent. */
function countingQueryable(inner: Queryable): Queryable & { queries: number; failNext: number } {
  const counted = {
    queries: 0,
    failNext: 0,
    query: ((text: string, params?: unknown[]) => {
      if (counted.failNext > 0) {
        counted.failNext -= 1;
        return Promise.reject(new Error('connection dropped'));
      }
      counted.queries += 1;
      return inner.query(text, params);
    }) as Queryable['query'],
  };
  return counted;
}

/** Weight a bucket holds in flight and answered, as stored. */
async function budgetRow(key: string): Promise<{ flight: number; answered: number }> {
  const { rows } = await admin.query<{ flight: number; answered: number }>(
    `SELECT coalesce((SELECT sum(x)::int FROM unnest(flight_weights) x), 0) AS flight,
            coalesce((SELECT sum(x)::int FROM unnest(weights) x), 0) AS answered
     FROM rate_budgets WHERE key = $1`,
    [key],
  );
  return rows[0] ?? { flight: 0, answered: 0 };
}

async function waitFor(ok: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error('timed out');
    await sleep(20);
  }
}
