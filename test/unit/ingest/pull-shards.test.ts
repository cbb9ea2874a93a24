import { describe, expect, it } from 'vitest';
import { EXCHANGES, type Exchange } from '../../../functions/candles/candle.ts';
import type { Interval } from '../../../functions/candles/intervals.ts';
import { DEFAULT_RULES } from '../../../functions/exchanges/governor.ts';
import { livePageRate, MAX_SHARD_CONCURRENCY, MAX_SHARD_SERIES, planShards, pullShardSchema, shardStaleAt } from '../../../functions/ingest/pull-shards.ts';

const TICK = Date.UTC(2025, 5, 2, 12, 5);
let nextId = 1;
const jobs = (exchange: Exchange, n: number, intervals: Interval[] = ['1m', '5m', '1h']) =>
  Array.from({ length: n }, (_, i) => ({ series: { exchange, symbol: `S${i}/USDT`, interval: intervals[i % intervals.length]! }, seriesId: nextId++, start: undefined }));

describe('pull shards', () => {
  it("reads each exchange's live page rate from the governor's rules: a page's weight over the budget's window", () => {
    expect(livePageRate('binance', DEFAULT_RULES)).toBe(5400 / 2 / 60); // 90% of 6000 weight a minute, klines weigh 2
    expect(livePageRate('okx', DEFAULT_RULES)).toBe(36 / 2); // the candles bucket, not history-candles
    expect(livePageRate('bybit', DEFAULT_RULES)).toBe(540 / 5);
    expect(livePageRate('coinbase', DEFAULT_RULES)).toBe(9);
    expect(livePageRate('kraken', DEFAULT_RULES)).toBeCloseTo(1 / 1.112, 3);
  });

  it('sizes shards to what each budget grants in about 5 s, caps each exchange at its share of the workers, and interleaves them', () => {
    const all = [...jobs('binance', 350), ...jobs('okx', 200), ...jobs('bybit', 352), ...jobs('coinbase', 90), ...jobs('kraken', 8)];
    const shards = planShards(all, { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 });
    const of = (e: Exchange) => shards.filter((s) => s.exchange === e);
    // 225 Binance pages fit in 5 s: two shards. Bybit's 540: one. Coinbase's 45: two. Kraken's 4: two.
    expect(of('binance').map((s) => s.series.length)).toEqual([175, 175]);
    expect(of('bybit').map((s) => s.series.length)).toEqual([352]);
    expect(of('coinbase').map((s) => s.series.length)).toEqual([45, 45]);
    expect(of('kraken').map((s) => s.series.length)).toEqual([4, 4]);
    // OKX would need three shards of 90; its share of ten workers is two.
    expect(of('okx').map((s) => s.series.length)).toEqual([100, 100]);
    expect(shards.length).toBeLessThanOrEqual(10);
    // Every series exactly once, with its id and interval.
    expect(shards.flatMap((s) => s.series.map((x) => x.id)).sort((a, b) => a - b)).toEqual(all.map((j) => j.seriesId).sort((a, b) => a - b));
    // The first shards the workers take cover every exchange.
    expect(new Set(shards.slice(0, 5).map((s) => s.exchange))).toEqual(new Set(EXCHANGES));
    // Enough in flight to use the budget at ~250 ms a series; Kraken's one-a-second gains nothing from more than one.
    expect(Object.fromEntries(shards.map((s) => [s.exchange, s.concurrency]))).toEqual({ binance: 12, okx: 5, bybit: MAX_SHARD_CONCURRENCY, coinbase: 3, kraken: 1 });
    for (const s of shards) expect(pullShardSchema.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });

  it('gives a lone exchange every worker, and never more series per shard than a message carries', () => {
    const shards = planShards(jobs('kraken', 60), { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 });
    expect(shards.map((s) => s.series.length)).toEqual([6, 6, 6, 6, 6, 6, 6, 6, 6, 6]);
    const huge = planShards(jobs('bybit', 2_000), { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 2 });
    expect(huge.every((s) => s.series.length <= MAX_SHARD_SERIES)).toBe(true);
    expect(huge.reduce((n, s) => n + s.series.length, 0)).toBe(2_000);
    expect(planShards([], { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 })).toEqual([]);
  });

  it('is superseded one of its shortest interval after it was sent, when the next tick of that interval has planned it again', () => {
    const [mixed] = planShards(jobs('bybit', 3, ['1h', '5m', '1m']), { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 });
    expect(shardStaleAt(mixed!)).toBe(TICK + 2_000 + 60_000);
    const [hourly] = planShards(jobs('bybit', 3, ['1h']), { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 });
    expect(shardStaleAt(hourly!)).toBe(TICK + 2_000 + 3_600_000);
  });

  it('refuses a message that is not a version 1 shard, saying what is wrong', () => {
    const [shard] = planShards(jobs('okx', 1), { rules: DEFAULT_RULES, tick: TICK, sentAt: TICK + 2_000, workers: 10 });
    expect(pullShardSchema.safeParse({ ...shard, v: 2 }).error?.issues[0]?.message).toMatch(/unknown pull shard version 2/);
    expect(pullShardSchema.safeParse({ ...shard, series: [] }).success).toBe(false);
    expect(pullShardSchema.safeParse({ ...shard, exchange: 'ftx' }).success).toBe(false);
    expect(pullShardSchema.safeParse({ ...shard, concurrency: 1000 }).success).toBe(false);
  });
});
