import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeExchange, type FakeExchange } from '../../../dev/fake-exchange/server.ts';
import { INTERVAL_MS } from '../../../functions/candles/intervals.ts';
import { liveExchangeAccess } from '../../../functions/exchanges/access.ts';
import { applySeed } from '../../../functions/markets/seed.ts';
import { DirectSink } from '../../../functions/ingest/candle-sink.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import { followedSeries } from '../../../functions/store/markets.ts';
import { runCli } from '../../support/cli.ts';
import { runTick } from '../../support/pull.ts';
import { testSqs } from '../../support/sqs.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { API_KEY, useApi, walk } from './support.ts';

const MIN = 60_000;

let fake: FakeExchange;
beforeAll(async () => {
  fake = await startFakeExchange({ enforceLimits: false });
});
afterAll(async () => {
  await fake?.close();
});
// Its own database: the followed markets are global state every pull of a database reads.
const api = useApi({ isolated: true, exchangeUrls: () => fake.baseUrls });

const follow = (markets: object[]) => api.call('POST', '/v1/markets', { body: { markets } });
const series = async (exchange: string, symbol: string) =>
  ((await api.get('/v1/markets', { exchange, symbol })).body as { markets: Record<string, unknown>[] }).markets;

/**
 * One scheduled tick over the file's database: the tick's shards through a pull-work queue to the
 * pull worker, writing straight to it. Returns the series it found due and the candles it added.
 */
async function tick(intervals: string[]): Promise<{ series: number; candles: number }> {
  const count = async () => Number((await api.pool.query<{ n: string }>('SELECT count(*) AS n FROM candles')).rows[0]?.n ?? 0);
  const before = await count();
  const run = await runTick(intervals, {
    db: async () => api.pool,
    sqs: testSqs(),
    access: (db) => liveExchangeAccess(db, Object.fromEntries(Object.entries(fake.baseUrls).map(([e, url]) => [`CANDLEKEEP_${e.toUpperCase()}_URL`, url]))),
    sink: new DirectSink(api.pool, new CandleStore()),
  });
  expect(run.responses.flatMap((r) => r.batchItemFailures)).toEqual([]);
  return { series: run.tick.due, candles: (await count()) - before };
}

describe('following markets through the API', () => {
  it('follows a listed market, shows each series as following, and pulls it on the next tick with no redeploy', async () => {
    expect(await tick(['1m', '1h'])).toMatchObject({ series: 0 });
    const added = await follow([{ exchange: 'binance', symbol: 'ETH/USDT', intervals: ['1m', '1h'] }]);
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ markets: [{ exchange: 'binance', symbol: 'ETH/USDT', intervals: ['1m', '1h'], paused: false, source: 'api', removedAt: null }] });
    // Listed in the order of their text, as every series is.
    expect(await series('binance', 'ETH/USDT')).toMatchObject([
      { interval: '1h', state: 'following', candles: 0 },
      { interval: '1m', state: 'following', candles: 0, newestClosedOpenTime: null, lagMs: null },
    ]);

    const outcome = await tick(['1m']);
    expect(outcome.series).toBe(1);
    expect(outcome.candles).toBeGreaterThan(900);
    const oneMinute = (await series('binance', 'ETH/USDT')).find((s) => s.interval === '1m');
    const newestClosed = Math.floor(Date.now() / MIN) * MIN - MIN;
    // The newest closed candle is the one that closed at the last minute boundary (or, if a boundary passed since, one before).
    expect(oneMinute!.newestClosedOpenTime as number).toBeGreaterThanOrEqual(newestClosed - MIN);
    expect(oneMinute!.lagMs as number).toBeLessThan(INTERVAL_MS['1m']);
    expect(oneMinute!.pulledAt).toEqual(expect.any(Number));
    expect(oneMinute!.lastError).toBeNull();
  });

  it("refuses a market the exchange does not list, in the exchange's own words, and follows nothing of the request", async () => {
    const refused = await follow([
      { exchange: 'binance', symbol: 'SOL/USDT', intervals: ['1m'] },
      { exchange: 'binance', symbol: 'NOPE/USDT', intervals: ['1m'] },
      { exchange: 'okx', symbol: 'NOPE/USDT', intervals: ['1m'] },
      { exchange: 'coinbase', symbol: 'NOPE/USD', intervals: ['1h'] },
    ]);
    expect(refused.status).toBe(422);
    const detail = (refused.body as { detail: string }).detail;
    expect(detail).toContain('binance does not list NOPE/USDT');
    expect(detail).toContain('Invalid symbol.');
    expect(detail).toContain("Instrument ID doesn't exist.");
    expect(detail).toContain('coinbase does not list NOPE/USD');
    expect(detail).not.toContain('SOL/USDT');
    expect(await series('binance', 'SOL/USDT')).toEqual([]);
  });

  it('refuses an interval the exchange lacks, naming what it offers under its own names, without asking it', async () => {
    const before = fake.stats('coinbase').requests;
    const refused = await follow([{ exchange: 'coinbase', symbol: 'BTC/USD', intervals: ['1h', '4h'] }]);
    expect(refused.status).toBe(422);
    expect((refused.body as { detail: string }).detail).toBe('coinbase has no 4h candles; it offers 1m (60) 5m (300) 15m (900) 1h (3600) 6h (21600) 1d (86400)');
    expect(fake.stats('coinbase').requests).toBe(before);
  });

  it('changes intervals, pauses and resumes; a paused market is not pulled', async () => {
    await follow([{ exchange: 'okx', symbol: 'BTC/USDT', intervals: ['1m'] }]);
    const changed = await api.call('PATCH', '/v1/markets', { body: { exchange: 'okx', symbol: 'BTC/USDT', intervals: ['5m', '1h'] } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ intervals: ['5m', '1h'], paused: false });
    expect((await series('okx', 'BTC/USDT')).map((s) => [s.interval, s.state])).toEqual([
      ['1h', 'following'],
      ['1m', 'not-followed'],
      ['5m', 'following'],
    ]);

    const paused = await api.call('PATCH', '/v1/markets', { body: { exchange: 'okx', symbol: 'BTC/USDT', paused: true } });
    expect(paused.body).toMatchObject({ paused: true, intervals: ['5m', '1h'] });
    expect((await series('okx', 'BTC/USDT')).filter((s) => s.interval !== '1m').map((s) => s.state)).toEqual(['paused', 'paused']);
    const okxBefore = fake.stats('okx').requests;
    await tick(['5m']);
    expect(fake.stats('okx').requests).toBe(okxBefore);

    await api.call('PATCH', '/v1/markets', { body: { exchange: 'okx', symbol: 'BTC/USDT', paused: false } });
    await tick(['5m']);
    expect(fake.stats('okx').requests).toBeGreaterThan(okxBefore);

    const lacking = await api.call('PATCH', '/v1/markets', { body: { exchange: 'kraken', symbol: 'BTC/USD', paused: true } });
    expect(lacking.status).toBe(404);
    expect((lacking.body as { detail: string }).detail).toMatch(/kraken BTC\/USD is not followed/);
    const empty = await api.call('PATCH', '/v1/markets', { body: { exchange: 'okx', symbol: 'BTC/USDT' } });
    expect(empty.status).toBe(422);
    expect((empty.body as { detail: string }).detail).toMatch(/change at least one of intervals, paused, start and retentionDays/);
  });

  it('removes a market keeping its data and says so; purge deletes it', async () => {
    await follow([{ exchange: 'bybit', symbol: 'ETH/USDT', intervals: ['1h'] }]);
    const rows = walk(Date.UTC(2025, 0, 1), 24, INTERVAL_MS['1h']).map((b) => [b.openTime, b.open, b.high, b.low, b.close, b.volume, b.quoteVolume, b.trades, 1] as CandleRow);
    await api.store.upsert(api.pool, [{ v: 1, exchange: 'bybit', symbol: 'ETH/USDT', interval: '1h', fetchedAt: Date.UTC(2025, 0, 2), rows }]);
    const removed = await api.call('DELETE', '/v1/markets', { query: { exchange: 'bybit', symbol: 'ETH/USDT' } });
    expect(removed.status).toBe(200);
    expect(removed.body).toMatchObject({ purged: false, purgedCandles: 0 });
    expect((removed.body as { detail: string }).detail).toBe('bybit ETH/USDT is no longer followed; its 24 stored candles are kept (remove with purge=true to delete them)');
    expect((await series('bybit', 'ETH/USDT')).map((s) => s.state)).toEqual(['removed']);
    const followed = (await api.get('/v1/markets/followed', { exchange: 'bybit' })).body as { markets: { removedAt: number | null }[] };
    expect(followed.markets[0]!.removedAt).toEqual(expect.any(Number));

    // Followed again, then removed with its data.
    expect((await follow([{ exchange: 'bybit', symbol: 'ETH/USDT', intervals: ['1h'] }])).status).toBe(201);
    expect((await series('bybit', 'ETH/USDT')).map((s) => s.state)).toEqual(['following']);
    const purged = await api.call('DELETE', '/v1/markets', { query: { exchange: 'bybit', symbol: 'ETH/USDT', purge: 'true' } });
    expect(purged.body).toMatchObject({ purged: true, purgedCandles: 24, keptCandles: 0 });
    expect((await series('bybit', 'ETH/USDT')).map((s) => [s.state, s.candles])).toEqual([['removed', 0]]);
    expect((await api.call('DELETE', '/v1/markets', { query: { exchange: 'bybit', symbol: 'ETH/USDT' } })).status).toBe(404);
  });
});

describe('retention', () => {
  const followed = async (exchange: string, symbol: string) =>
    ((await api.get('/v1/markets/followed', { exchange, symbol })).body as { markets: { retentionDays: Record<string, number | null> }[] }).markets[0];
  const detail = (a: { body: unknown }) => (a.body as { detail: string }).detail;

  it('is set when following and changing a market, reported per market and per series, and bad settings are refused changing nothing', async () => {
    const added = await follow([{ exchange: 'binance', symbol: 'LTC/USDT', intervals: ['1m', '1d'], retentionDays: { '1m': 365, '1d': null } }]);
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ markets: [{ retentionDays: { default: null, '1m': 365, '1d': null } }] });
    const now = Date.now();
    const perSeries = await series('binance', 'LTC/USDT');
    expect(perSeries.map((s) => [s.interval, s.retentionDays, s.expiredCandles])).toEqual([
      ['1d', null, 0],
      ['1m', 365, 0],
    ]);
    const horizon = perSeries.find((s) => s.interval === '1m')!.expiredBefore as number;
    expect(Math.abs(horizon - (now - 365 * 86_400_000))).toBeLessThan(2 * MIN);
    expect(perSeries.find((s) => s.interval === '1d')!.expiredBefore).toBeNull();

    // The market's default: what every interval without its own follows, one added later too.
    const changed = await api.call('PATCH', '/v1/markets', { body: { exchange: 'binance', symbol: 'LTC/USDT', intervals: ['1m', '1h', '1d'], retentionDays: { default: 30 } } });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ retentionDays: { default: 30, '1m': 365, '1h': 30, '1d': null } });
    const csv = await api.get('/v1/markets', { exchange: 'binance', symbol: 'LTC/USDT', format: 'csv' });
    expect(csv.text.split('\n')[0]).toContain('retention_days,expired_before,expired_candles');

    const refusals: [object, number, RegExp][] = [
      [{ retentionDays: { '1m': 0 } }, 422, /retentionDays\.1m.*retention must keep at least 1 day/],
      [{ retentionDays: { '1m': '365d' } }, 422, /expected a whole number of days from 1 to 36500, or null for forever; got "365d"/],
      [{ retentionDays: { '1m': 36501 } }, 422, /at most 36500 days/],
      [{ retentionDays: { '2m': 5 } }, 422, /retentionDays/],
      [{ retentionDays: {} }, 422, /name at least one of default and the intervals/],
      [{ retentionDays: { '4h': 5 } }, 422, /binance LTC\/USDT does not follow 4h \(it follows 1m 1h 1d\)/],
    ];
    for (const [body, status, message] of refusals) {
      const refused = await api.call('PATCH', '/v1/markets', { body: { exchange: 'binance', symbol: 'LTC/USDT', ...body } });
      expect(refused.status, JSON.stringify(body)).toBe(status);
      expect(detail(refused), JSON.stringify(body)).toMatch(message);
    }
    const outside = await follow([{ exchange: 'binance', symbol: 'LINK/USDT', intervals: ['1m'], retentionDays: { '1h': 5 } }]);
    expect(outside.status).toBe(422);
    expect(detail(outside)).toMatch(/1h is not among the intervals followed here \(1m\)/);
    expect((await api.get('/v1/markets/followed', { exchange: 'binance', symbol: 'LINK/USDT' })).body).toEqual({ markets: [] });
    expect((await followed('binance', 'LTC/USDT'))!.retentionDays).toEqual({ default: 30, '1m': 365, '1h': 30, '1d': null });
  });

  it('reports gaps before the horizon as expired in /v1/gaps, before the job ran and after it deleted them', async () => {
    await follow([{ exchange: 'okx', symbol: 'XRP/USDT', intervals: ['1m'], retentionDays: { default: 1 } }]);
    const nowMinute = Math.floor(Date.now() / MIN) * MIN;
    const old = nowMinute - 3 * 86_400_000;
    const recent = nowMinute - 60 * MIN;
    const rows = [...Array.from({ length: 120 }, (_, i) => old + i * MIN), ...Array.from({ length: 30 }, (_, i) => recent + i * MIN)].map(
      (t) => [t, '1.5', '1.75', '1.25', '1.5', '10', '15', 3, 1] as CandleRow,
    );
    await api.store.upsert(api.pool, [{ v: 1, exchange: 'okx', symbol: 'XRP/USDT', interval: '1m', fetchedAt: nowMinute, rows }]);
    const gapsOf = async () => ((await api.get('/v1/gaps', { exchange: 'okx', symbol: 'XRP/USDT', interval: '1m' })).body as { gaps: Record<string, unknown>[] }).gaps;

    const horizon = (await series('okx', 'XRP/USDT'))[0]!.expiredBefore as number;
    // Not deleted yet: the part of the gap before the horizon is expired, the rest missing.
    expect(await gapsOf()).toEqual([
      { start: old + 120 * MIN, end: horizon, missingCandles: (horizon - old - 120 * MIN) / MIN, kind: 'expired', confirmedByExchange: false, deadLetteredMessages: 0 },
      { start: horizon, end: recent, missingCandles: (recent - horizon) / MIN, kind: 'missing', confirmedByExchange: false, deadLetteredMessages: 0 },
    ]);

    const { applyRetention } = await import('../../../functions/store/retention.ts');
    const report = await applyRetention(api.pool, { now: Date.now() });
    expect(report.series.find((s) => s.symbol === 'XRP/USDT')).toMatchObject({ deleted: 120, pending: false });
    expect(await gapsOf()).toEqual([
      { start: old, end: horizon, missingCandles: (horizon - old) / MIN, kind: 'expired', confirmedByExchange: false, deadLetteredMessages: 0 },
    ]);
    expect((await series('okx', 'XRP/USDT'))[0]).toMatchObject({ candles: 30, expiredCandles: 120, retentionDays: 1 });
  });
});

describe('aligned ticks', () => {
  it('pulls a series only when its boundary has passed without its closed candle stored', async () => {
    await follow([{ exchange: 'binance', symbol: 'BTC/USDT', intervals: ['5m'] }]);
    const now = Date.now();
    const boundary = Math.floor(now / (5 * MIN)) * 5 * MIN;
    const due = async (at: number) =>
      (await followedSeries(api.pool, ['5m'], () => at)).filter((f) => f.series.symbol === 'BTC/USDT' && f.series.exchange === 'binance');
    expect(await due(boundary)).toHaveLength(1);
    await tick(['5m']);
    // The candle that closed at the boundary is stored: not due again until the next boundary.
    expect(await due(boundary)).toHaveLength(0);
    expect(await due(boundary + 5 * MIN)).toHaveLength(1);
  });
});

describe('discovery', () => {
  type Listed = { symbol: string; native: string; quote: string; trading: boolean; status: string; quoteVolume24h: number | null };
  const instruments = async (exchange: string, query: Record<string, string | number> = {}) => {
    const a = await api.get(`/v1/exchanges/${exchange}/instruments`, query);
    return { status: a.status, body: a.body as { instruments: Listed[]; detail?: string; fetchedAt: number } };
  };

  it('lists several hundred spot instruments of each exchange from its own listing, in candlekeep symbols', async () => {
    for (const [exchange, expected] of [
      ['binance', { symbol: 'BTC/USDT', native: 'BTCUSDT' }],
      ['okx', { symbol: 'BTC/USDT', native: 'BTC-USDT' }],
      ['bybit', { symbol: 'BTC/USDT', native: 'BTCUSDT' }],
      ['coinbase', { symbol: 'BTC/USD', native: 'BTC-USD' }],
      ['kraken', { symbol: 'BTC/USD', native: 'XBTUSD' }],
    ] as const) {
      const all = await instruments(exchange, { trading: 'false' });
      expect(all.status).toBe(200);
      expect(all.body.instruments.length).toBeGreaterThan(300);
      expect(all.body.instruments.some((i) => !i.trading)).toBe(true);
      expect(all.body.instruments).toContainEqual(expect.objectContaining({ ...expected, trading: true }));
      const trading = await instruments(exchange);
      expect(trading.body.instruments.every((i) => i.trading)).toBe(true);
    }
  });

  it('ranks the top N by 24h quote volume within a quote currency, and caches the listing', async () => {
    const before = fake.stats('binance').requests;
    const top = await instruments('binance', { quote: 'USDT', top: 100 });
    expect(top.body.instruments).toHaveLength(100);
    expect(top.body.instruments.every((i) => i.quote === 'USDT' && i.trading)).toBe(true);
    const volumes = top.body.instruments.map((i) => i.quoteVolume24h!);
    expect(volumes).toEqual([...volumes].sort((a, b) => b - a));
    expect(top.body.instruments[0]!.symbol).toBe('BTC/USDT');
    // A second selection within ten minutes asks the exchange nothing.
    await instruments('binance', { quote: 'USDT', top: 5 });
    expect(fake.stats('binance').requests - before).toBeLessThanOrEqual(2);

    const coinbase = await instruments('coinbase', { top: 10 });
    expect(coinbase.status).toBe(400);
    expect(coinbase.body.detail).toMatch(/coinbase publishes no 24h volume of all its products in one call/);
    expect((await instruments('binance', { top: 0 })).status).toBe(400);
  });

  it("refuses a symbol the exchange lists but does not trade, with its status word", async () => {
    const halted = (await instruments('binance', { trading: 'false' })).body.instruments.find((i) => !i.trading)!;
    const refused = await follow([{ exchange: 'binance', symbol: halted.symbol, intervals: ['1m'] }]);
    expect(refused.status).toBe(422);
    expect((refused.body as { detail: string }).detail).toBe(`binance lists ${halted.symbol} (${halted.native}) as BREAK, not open for trading`);
  });
});

describe('the seed list', () => {
  it("follows seed markets the database has never seen, and leaves changed or removed ones as they are", async () => {
    const seed = [
      { exchange: 'okx' as const, symbol: 'SOL/USDT', intervals: ['1h' as const], start: '2025-01-01' },
      { exchange: 'okx' as const, symbol: 'ETH/USDT', intervals: ['1d' as const], start: '2025-01-01' },
    ];
    expect(await applySeed(api.pool, seed)).toBe(2);
    expect(await applySeed(api.pool, seed)).toBe(0);
    await api.call('PATCH', '/v1/markets', { body: { exchange: 'okx', symbol: 'SOL/USDT', intervals: ['1m'] } });
    await api.call('DELETE', '/v1/markets', { query: { exchange: 'okx', symbol: 'ETH/USDT' } });
    expect(await applySeed(api.pool, seed)).toBe(0);
    const { markets } = (await api.get('/v1/markets/followed', { exchange: 'okx' })).body as { markets: Record<string, unknown>[] };
    expect(markets.filter((m) => m.source === 'seed')).toMatchObject([
      { symbol: 'ETH/USDT', intervals: [], removedAt: expect.any(Number), start: Date.UTC(2025, 0, 1) },
      { symbol: 'SOL/USDT', intervals: ['1m'], removedAt: null },
    ]);
  });
});

describe('candlekeep markets', () => {
  const followed = async (exchange: string, symbol: string) =>
    ((await api.get('/v1/markets/followed', { exchange, symbol })).body as { markets: { retentionDays: Record<string, number | null> }[] }).markets[0];
  const candlekeep = (args: string[]) => runCli(['markets', ...args], { CANDLEKEEP_URL: api.url, CANDLEKEEP_API_KEY: API_KEY });

  it('sets retention with --retention, lists it, and refuses a bad one before asking the API', async () => {
    const added = await candlekeep(['add', '--exchange', 'okx', '--symbol', 'ADA/USDT', '--interval', '1m,1h,1d', '--retention', '1m=30d,1d=forever']);
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain('following okx ADA/USDT 1m,1h,1d, keeping 1m 30d, forever otherwise');
    const set = await candlekeep(['set', '--exchange', 'okx', '--symbol', 'ADA/USDT', '--retention', '400d']);
    expect(set.stdout).toContain('okx ADA/USDT: following 1m,1h,1d, keeping 1m 30d, 1d forever, 400d otherwise');
    const followedOut = await candlekeep(['list', '--followed', '--exchange', 'okx', '--symbol', 'ADA/USDT']);
    expect(followedOut.stdout).toMatch(/ADA\/USDT\s+1m,1h,1d\s+following\s+1m 30d, 1d forever, 400d otherwise/);
    const seriesOut = await candlekeep(['list', '--exchange', 'okx', '--symbol', 'ADA/USDT']);
    expect(seriesOut.stdout).toMatch(/ADA\/USDT\s+1m\s+following\s+30d \(expired < \d{4}-\d\d-\d\dT/);
    expect(seriesOut.stdout).toMatch(/ADA\/USDT\s+1d\s+following\s+\d/);

    const bad: [string[], number, string][] = [
      [['--retention', '1m=365'], 2, 'is not a retention; write days as 365d (1 to 36500 days) or forever'],
      [['--retention', '2m=5d'], 2, 'unknown interval "2m"'],
      [['--retention', '1m=5d,1m=6d'], 2, '1m is given twice'],
      [['--retention', '4h=5d'], 1, 'okx ADA/USDT does not follow 4h'],
      [[], 2, 'give --interval, --retention or both'],
    ];
    for (const [args, code, message] of bad) {
      const out = await candlekeep(['set', '--exchange', 'okx', '--symbol', 'ADA/USDT', ...args]);
      expect(out.code, args.join(' ')).toBe(code);
      expect(out.stderr, args.join(' ')).toContain(message);
    }
    expect((await followed('okx', 'ADA/USDT'))!.retentionDays).toEqual({ default: 400, '1m': 30, '1h': 400, '1d': null });
  });

  it('adds, lists, pauses and removes, and refuses what the exchange does not list', async () => {
    const added = await candlekeep(['add', '--exchange', 'kraken', '--symbol', 'BTC/USD,ETH/USD', '--interval', '1m,1h']);
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain('following kraken BTC/USD 1m,1h');
    expect(added.stdout).toContain('following kraken ETH/USD 1m,1h');

    const listed = await candlekeep(['list', '--exchange', 'kraken', '--symbol', 'BTC/USD']);
    expect(listed.stdout).toMatch(/kraken\s+BTC\/USD\s+1h\s+following/);
    const json = JSON.parse((await candlekeep(['--exchange', 'kraken', '--json'])).stdout) as { markets: { state: string }[] };
    expect(json.markets.map((m) => m.state)).toEqual(['following', 'following', 'following', 'following']);

    expect((await candlekeep(['pause', '--exchange', 'kraken', '--symbol', 'ETH/USD'])).stdout).toContain('kraken ETH/USD: paused 1m,1h');
    const followed = await candlekeep(['list', '--followed', '--exchange', 'kraken']);
    expect(followed.stdout).toMatch(/ETH\/USD\s+1m,1h\s+paused/);

    const removed = await candlekeep(['remove', '--exchange', 'kraken', '--symbol', 'ETH/USD']);
    expect(removed.stdout).toMatch(/kraken ETH\/USD is no longer followed; its \d+ stored candles are kept \(remove with purge=true/);

    const refused = await candlekeep(['add', '--exchange', 'kraken', '--symbol', 'NOPE/USD']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('EQuery:Unknown asset pair');
    const lacking = await candlekeep(['add', '--exchange', 'kraken', '--symbol', 'BTC/USD', '--interval', '3m']);
    expect(lacking.code).toBe(1);
    expect(lacking.stderr).toContain('kraken has no 3m candles; it offers 1m (1) 5m (5)');

    const instrumentsOut = await candlekeep(['instruments', '--exchange', 'okx', '--quote', 'USDT', '--top', '3']);
    expect(instrumentsOut.stdout.split('\n')[2]).toMatch(/^BTC\/USDT\s+BTC-USDT\s+live\s+\d+/);

    const usage = await candlekeep(['pause', '--exchange', 'kraken']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('candlekeep markets pause: --symbol is');
    expect((await candlekeep(['frobnicate'])).code).toBe(2);
  });
});

describe('following the top 100 pairs in one command', () => {
  it('follows the 100 most traded USDT pairs of bybit, and the next tick pulls every one of them', async () => {
    const { code, stdout, stderr } = await runCli(['markets', 'add', '--exchange', 'bybit', '--quote', 'USDT', '--top', '100', '--interval', '1h', '--json'], {
      CANDLEKEEP_URL: api.url,
      CANDLEKEEP_API_KEY: API_KEY,
    });
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const followed = (JSON.parse(stdout) as { markets: { symbol: string; intervals: string[] }[] }).markets;
    expect(followed).toHaveLength(100);
    expect(followed.every((m) => m.symbol.endsWith('/USDT') && m.intervals.join() === '1h')).toBe(true);

    const before = fake.stats('bybit');
    const outcome = await tick(['1h']);
    expect(outcome.series).toBeGreaterThanOrEqual(100);
    const after = fake.stats('bybit');
    expect(after.requests - before.requests).toBeGreaterThanOrEqual(100);
    expect(after.rateLimited + after.banned).toBe(0);
    const series1h = ((await api.get('/v1/markets', { exchange: 'bybit', interval: '1h' })).body as { markets: { state: string; lagMs: number | null }[] }).markets;
    expect(series1h.filter((m) => m.state === 'following' && m.lagMs === 0)).toHaveLength(100);
  }, 120_000);
});
