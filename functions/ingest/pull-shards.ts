import * as z from 'zod';
import { EXCHANGES, exchangeSchema, type Exchange } from '../candles/candle.ts';
import { INTERVAL_MS, intervalSchema } from '../candles/intervals.ts';
import { BINANCE_KLINES_PATH } from '../exchanges/binance.ts';
import { BYBIT_KLINE_PATH } from '../exchanges/bybit.ts';
import { adapters } from '../exchanges/index.ts';
import { KRAKEN_OHLC_PATH } from '../exchanges/kraken.ts';
import { OKX_CANDLES_PATH } from '../exchanges/okx.ts';
import type { RateRule } from '../exchanges/types.ts';
import type { PullJob } from './pull.ts';

/*
 * The fan-out of a tick: the due series are cut into shards, one exchange per shard, each sized to
 * what that exchange's budget lets one pull worker fetch in a few seconds. Each shard is one
 * message on the pull-work queue and one pull-worker invocation, so a slow exchange (Kraken grants
 * about one request a second) only ever holds its own shards, never another exchange's.
 */

/** Most series one shard carries (its message stays far below SQS's 256 KiB). */
export const MAX_SHARD_SERIES = 400;
/** Most series one worker pulls at once: the exchange's budget, not this, is what paces them. */
export const MAX_SHARD_CONCURRENCY = 16;

/** The request a live pull sends per series: the kline page of the newest candles. */
const LIVE_PAGE_PATH: Readonly<Record<Exchange, string>> = {
  binance: BINANCE_KLINES_PATH,
  okx: OKX_CANDLES_PATH,
  bybit: BYBIT_KLINE_PATH,
  coinbase: '/products/BTC-USD/candles',
  kraken: KRAKEN_OHLC_PATH,
};

/** Live page requests per second the budget grants an exchange (its rule for the kline endpoint, over that request's weight). */
export function livePageRate(exchange: Exchange, rules: Readonly<Record<string, RateRule>>): number {
  const adapter = adapters[exchange];
  const { key, weight } = adapter.limits.route(new URL(LIVE_PAGE_PATH[exchange], adapter.baseUrl));
  const rule = rules[key];
  if (!rule) throw new Error(`no rate rule for budget "${key}" of ${exchange}`);
  return rule.limit / Math.min(weight, rule.limit) / (rule.windowMs / 1000);
}

const shardSeriesSchema = z.object({
  id: z.number().int().positive(),
  symbol: z.string().min(1).max(64),
  interval: intervalSchema,
  start: z.number().int().nullable(),
});

/** A message on the pull-work queue: some due series of one exchange, from one tick. */
export const pullShardSchema = z.object({
  v: z.literal(1, { error: (issue) => `unknown pull shard version ${JSON.stringify(issue.input)}; this worker reads version 1` }),
  exchange: exchangeSchema,
  /** The boundary the tick fired for (ms). */
  tick: z.number().int().positive(),
  /** When the tick sent it (ms): a shard older than its shortest interval is superseded. */
  sentAt: z.number().int().positive(),
  /** Series pulled at once within the shard. */
  concurrency: z.number().int().min(1).max(MAX_SHARD_CONCURRENCY),
  series: z.array(shardSeriesSchema).min(1).max(MAX_SHARD_SERIES),
});
export type PullShard = z.infer<typeof pullShardSchema>;

export interface ShardPlanOptions {
  /** The governor's budget per bucket, as the workers will spend it. */
  rules: Readonly<Record<string, RateRule>>;
  tick: number;
  sentAt: number;
  /** Pull workers that may run at once (the event source's maximum concurrency). */
  workers: number;
  /** What one shard should take at the exchange's full budget. Default 5 s. */
  targetMs?: number;
  /** Time one series' pull takes end to end, to keep enough in flight to use the budget. Default 250 ms. */
  seriesMs?: number;
}

/**
 * Cuts the due series into shards. Per exchange: a shard holds what its budget grants in
 * `targetMs` (Binance's 45 pages a second make 225 series, Kraken's 0.9 make 4); an exchange gets
 * at most its share of the workers (`workers` over the exchanges with due series), so one with more
 * series than that gets bigger shards rather than more workers waiting on the same budget. Within a
 * shard, enough series run at once to keep the budget busy. Shards come out interleaved across
 * exchanges, so the first ones the workers take cover every exchange.
 */
export function planShards(jobs: readonly (PullJob & { seriesId: number })[], opts: ShardPlanOptions): PullShard[] {
  const targetMs = opts.targetMs ?? 5_000;
  const seriesMs = opts.seriesMs ?? 250;
  const byExchange = new Map<Exchange, (PullJob & { seriesId: number })[]>();
  for (const job of jobs) {
    const list = byExchange.get(job.series.exchange) ?? [];
    list.push(job);
    byExchange.set(job.series.exchange, list);
  }
  const perExchange = Math.max(1, Math.floor(opts.workers / Math.max(1, byExchange.size)));
  const lanes: PullShard[][] = [];
  for (const exchange of EXCHANGES) {
    const list = byExchange.get(exchange);
    if (!list) continue;
    const rate = livePageRate(exchange, opts.rules);
    const capacity = Math.max(1, Math.min(MAX_SHARD_SERIES, Math.floor((rate * targetMs) / 1000)));
    const count = Math.max(Math.min(Math.ceil(list.length / capacity), perExchange), Math.ceil(list.length / MAX_SHARD_SERIES));
    const size = Math.ceil(list.length / count);
    const concurrency = Math.max(1, Math.min(MAX_SHARD_CONCURRENCY, size, Math.ceil((rate * seriesMs) / 1000)));
    const lane: PullShard[] = [];
    for (let i = 0; i < list.length; i += size) {
      lane.push({
        v: 1,
        exchange,
        tick: opts.tick,
        sentAt: opts.sentAt,
        concurrency,
        series: list.slice(i, i + size).map((j) => ({ id: j.seriesId, symbol: j.series.symbol, interval: j.series.interval, start: j.start ?? null })),
      });
    }
    lanes.push(lane);
  }
  const out: PullShard[] = [];
  for (let round = 0; lanes.some((l) => round < l.length); round++) {
    for (const lane of lanes) if (round < lane.length) out.push(lane[round]!);
  }
  return out;
}

/**
 * When a shard is superseded: one of its shortest interval after it was sent, the next tick of that
 * interval has planned the same series again (a shard received that late, say redelivered after a
 * crashed worker, is skipped).
 */
export function shardStaleAt(shard: PullShard): number {
  return shard.sentAt + Math.min(...shard.series.map((s) => INTERVAL_MS[s.interval]));
}
