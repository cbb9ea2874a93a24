/**
 * Live freshness benchmark: many followed series on the five exchanges, pulled by the local
 * pipeline `npm run dev` runs (the synthesized stack's pull-work, candles and dead-letter queues on
 * LocalStack; its tick, pull workers, writer and API in this process with the template's batch
 * sizes, batching windows and maximum concurrency; the schedules firing at their UTC minutes) from
 * the fake exchange enforcing every published limit, with a per-request latency. Progress on
 * stderr; the last line of stdout is one JSON object.
 *
 *   npm run bench:live -- --series 1000 --json [--boundaries 3] [--latency 50-150] [--keep]
 *
 * The series are markets followed at 1m, 5m and 1h (a third each), spread over the exchanges by
 * what their budgets carry (Binance and Bybit 35% each, OKX 20%, Coinbase 9%, Kraken 1%), with a
 * start three hours back. They are followed a few seconds after a minute boundary, and every
 * schedule is fired at once (what `npm run dev` does when it starts), so that tick finds every
 * series due: the tick over all of them, done before the next boundary. Then `--boundaries` minute
 * boundaries are measured, their ticks fired by the schedules at their UTC minutes:
 *
 * - freshness: for every 1m series, from the close of the candle ending at the boundary to the
 *   moment `GET /v1/markets` (the API, polled every 250 ms) shows it as the newest closed candle;
 * - tick duration: from the boundary (from the firing, for the tick over every series) to the moment every
 *   series due at it has finished its pull (`pulled_at`);
 * - at the end, every closed candle of every series since its start is read back through
 *   `GET /v1/candles` and compared with what the exchange served: `missing`, `duplicates`,
 *   `value_mismatches`; the fake exchange's own counts give `http_429` and `http_418`.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { openLocalDatabase } from '../dev/local-db.ts';
import { startLocalCandlekeep, type LocalCandlekeep } from '../dev/local-candlekeep.ts';
import { ensureLocalStack } from '../dev/localstack/index.ts';
import { fakeListings } from '../dev/fake-exchange/series.ts';
import { startFakeExchange, type ExchangeStats, type FakeExchangeOptions } from '../dev/fake-exchange/server.ts';
import { synthesizeCandlekeep } from '../dev/template/index.ts';
import { EXCHANGES, type Exchange } from '../functions/candles/candle.ts';
import { bucketAtOrAfter } from '../functions/ingest/ranges.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../functions/candles/intervals.ts';
import { followMarkets } from '../functions/store/markets.ts';
import { PULL_WORKER_MAX_CONCURRENCY } from '../lib/constructs/ingestion.ts';
import { WRITER_BATCHING_WINDOW, WRITER_MAX_CONCURRENCY } from '../lib/constructs/storage-writer.ts';
import { log, positiveInt } from './support.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    series: { type: 'string', default: '1000' },
    boundaries: { type: 'string', default: '3' },
    latency: { type: 'string', default: '50-150' },
    keep: { type: 'boolean', default: false },
  },
});
const SERIES = positiveInt('series', args.series);
const BOUNDARIES = positiveInt('boundaries', args.boundaries);
const latencyMatch = /^(\d+)-(\d+)$/.exec(args.latency ?? '');
if (!latencyMatch || Number(latencyMatch[1]) > Number(latencyMatch[2])) throw new Error(`--latency must be MIN-MAX in ms, e.g. 50-150, got ${args.latency}`);
const LATENCY: [number, number] = [Number(latencyMatch[1]), Number(latencyMatch[2])];

const MIN = 60_000;
const INTERVALS: Interval[] = ['1m', '5m', '1h'];
const SHARE: Record<Exchange, number> = { binance: 0.35, bybit: 0.35, okx: 0.2, coinbase: 0.09, kraken: 0.01 };
const FLOORS = { freshness_p99_ms: 20_000, freshness_p50_ms: 8_000, tick_duration_max_ms: 30_000 };
const POLL_MS = 250;

// The handlers talk to LocalStack only; Powertools stays quiet and publishes nothing.
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
delete process.env.AWS_PROFILE;
delete process.env.AWS_SESSION_TOKEN;
process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED = 'true';

interface FakeThread {
  baseUrls: Record<Exchange, string>;
  stats(): Promise<Record<Exchange, ExchangeStats>>;
  close(): Promise<void>;
}

/** The fake exchange on its own thread, as an exchange is elsewhere: this process does only what candlekeep does. */
async function startFakeExchangeThread(options: FakeExchangeOptions): Promise<FakeThread> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then(async ({ startFakeExchange }) => {
      const fake = await startFakeExchange(workerData.options);
      parentPort.on('message', async (m) => {
        if (m === 'stats') parentPort.postMessage({ stats: Object.fromEntries(workerData.exchanges.map((e) => [e, fake.stats(e)])) });
        if (m === 'close') { await fake.close(); parentPort.postMessage({ closed: true }); }
      });
      parentPort.postMessage({ baseUrls: fake.baseUrls });
    });`;
  const worker = new Worker(code, { eval: true, workerData: { module: new URL('../dev/fake-exchange/server.ts', import.meta.url).href, options, exchanges: EXCHANGES } });
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  const ready = (await next()) as { baseUrls: Record<Exchange, string> };
  return {
    baseUrls: ready.baseUrls,
    async stats() {
      const reply = next();
      worker.postMessage('stats');
      return ((await reply) as { stats: Record<Exchange, ExchangeStats> }).stats;
    },
    async close() {
      const reply = next();
      worker.postMessage('close');
      await reply;
      await worker.terminate();
    },
  };
}

/** Markets per exchange (each followed at 1m, 5m and 1h), by budget share, at least one each. */
function chooseMarkets(series: number): { exchange: Exchange; symbol: string }[] {
  const markets = Math.ceil(series / INTERVALS.length);
  return EXCHANGES.flatMap((exchange) => {
    const n = Math.max(1, Math.round(markets * SHARE[exchange]));
    const listed = fakeListings(exchange).filter((l) => l.trading);
    if (listed.length < n) throw new Error(`the fake exchange lists only ${listed.length} trading markets on ${exchange}; --series asks for ${n}`);
    return listed.slice(0, n).map((l) => ({ exchange, symbol: l.market.unified }));
  });
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// Synthesis first: it blocks the event loop for seconds, long enough for a kept-alive connection
// to LocalStack to be closed under a request that would reuse it.
log('synthesizing the stack');
const synth = await synthesizeCandlekeep({ stackName: `CandlekeepBenchLive-${randomBytes(3).toString('hex')}`, context: { 'candlekeep:markets': [] } });
const db = await openLocalDatabase({ log });
const dbName = `candlekeep_bench_live`;
const url = await db.prepare(dbName, { fresh: true });
const pool = db.pool(url, 4);
const aws = await ensureLocalStack({ log });
const fake = await startFakeExchangeThread({ latencyMs: LATENCY });
// An idle twin with the same seed answers "what did the exchange serve" for the final check.
const reference = await startFakeExchange({ enforceLimits: false });
const apiKey = `bench-${randomBytes(8).toString('hex')}`;
let candlekeep: LocalCandlekeep | undefined;
const errors: string[] = [];

try {
  const deployStarted = Date.now();
  log('deploying it to LocalStack and starting the pipeline');
  candlekeep = await startLocalCandlekeep({
    synth,
    endpoint: aws.endpoint,
    databaseUrl: url,
    exchangeUrls: fake.baseUrls,
    apiKey,
    schedules: 'auto',
    waitTimeSeconds: 1,
    // One process hosts every function here; in AWS each container has its own pool.
    poolMax: 24,
    deleteStackOnStop: true,
    log,
    onError: (role, err) => {
      errors.push(`${role}: ${(err as Error).message}`);
      log(`${role} failed: ${(err as Error).message}`);
    },
  });
  const api = candlekeep.server.url;
  log(`stack deployed to LocalStack and pipeline up in ${((Date.now() - deployStarted) / 1000).toFixed(1)} s; API at ${api}`);

  // Just after a minute boundary, so the tick over every series ends before the next one.
  const followAt = bucketStart(Date.now(), '1m') + MIN + 3_000;
  log(`waiting ${((followAt - Date.now()) / 1000).toFixed(0)} s to follow the markets just after a minute boundary`);
  await sleep(Math.max(0, followAt - Date.now()));
  const markets = chooseMarkets(SERIES);
  const start = bucketStart(Date.now(), '1h') - 3 * 3_600_000;
  await followMarkets(pool, markets.map((m) => ({ ...m, intervals: INTERVALS, start })));
  const { rows: followed } = await pool.query<{ id: number; exchange: Exchange; symbol: string; interval: Interval }>(
    `SELECT s.id, s.exchange, s.symbol, s.interval FROM market_series m JOIN series s ON s.id = m.series_id ORDER BY s.id`,
  );
  const byExchange = Object.fromEntries(EXCHANGES.map((e) => [e, followed.filter((f) => f.exchange === e).length]));
  log(`following ${followed.length} series on ${markets.length} markets (${EXCHANGES.map((e) => `${e} ${byExchange[e]}`).join(', ')}), from ${new Date(start).toISOString()}`);
  const started = Date.now();
  await candlekeep.pipeline.tick();

  const oneMinute = followed.filter((f) => f.interval === '1m');
  const pulledAll = async (ids: readonly number[], since: number): Promise<number | undefined> => {
    const { rows } = await pool.query<{ n: string; last: number | null }>(
      `SELECT count(*) FILTER (WHERE pulled_at >= to_timestamp($2::float8 / 1000)) AS n, (extract(epoch FROM max(pulled_at)) * 1000)::float8 AS last
       FROM market_series WHERE series_id = ANY($1::int[])`,
      [ids, since],
    );
    return Number(rows[0]?.n) === ids.length && rows[0]?.last !== null ? Math.round(Number(rows[0]!.last)) : undefined;
  };

  // The tick over every series: every schedule fired at once, as when `npm run dev` starts.
  const startup = await (async () => {
    const deadline = started + 120_000;
    for (;;) {
      const last = await pulledAll(followed.map((f) => f.id), started);
      if (last !== undefined) return last - started;
      if (Date.now() > deadline) throw new Error('the tick over every series did not pull them all within 120 s');
      await sleep(POLL_MS);
    }
  })();
  log(`tick over every series: ${followed.length} series pulled in ${(startup / 1000).toFixed(1)} s`);

  const samples: number[] = [];
  const ticks: { boundary: string; due: number; duration_ms: number | null; freshness_p50_ms: number | null; freshness_p99_ms: number | null; unseen: number }[] = [];
  let unseen = 0;
  let boundary = bucketStart(Date.now(), '1m') + MIN;
  for (let b = 0; b < BOUNDARIES; b++, boundary += MIN) {
    const wanted = boundary - MIN; // the open time of the candle that closes at the boundary
    const due = followed.filter((f) => boundary % INTERVAL_MS[f.interval] === 0).map((f) => f.id);
    await sleep(Math.max(0, boundary - Date.now()));
    const seen = new Map<string, number>();
    let tickEnd: number | undefined;
    const deadline = boundary + 55_000;
    while (Date.now() < deadline && (seen.size < oneMinute.length || tickEnd === undefined)) {
      const res = await fetch(`${api}/v1/markets?interval=1m`, { headers: { 'x-api-key': apiKey } });
      const at = Date.now();
      if (res.status !== 200) throw new Error(`GET /v1/markets answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { markets: { exchange: string; symbol: string; newestClosedOpenTime: number | null }[] };
      for (const m of body.markets) {
        const key = `${m.exchange}|${m.symbol}`;
        if (!seen.has(key) && m.newestClosedOpenTime !== null && m.newestClosedOpenTime >= wanted) seen.set(key, at - boundary);
      }
      tickEnd ??= await pulledAll(due, boundary);
      await sleep(POLL_MS);
    }
    const fresh = [...seen.values()];
    samples.push(...fresh);
    unseen += oneMinute.length - fresh.length;
    fresh.sort((x, y) => x - y);
    ticks.push({
      boundary: new Date(boundary).toISOString(),
      due: due.length,
      duration_ms: tickEnd === undefined ? null : tickEnd - boundary,
      freshness_p50_ms: percentile(fresh, 50),
      freshness_p99_ms: percentile(fresh, 99),
      unseen: oneMinute.length - fresh.length,
    });
    log(`boundary ${ticks.at(-1)!.boundary}: ${due.length} series due, tick ${tickEnd === undefined ? 'unfinished' : `${((tickEnd - boundary) / 1000).toFixed(1)} s`}, ` +
      `1m freshness p50 ${percentile(fresh, 50)} ms, p99 ${percentile(fresh, 99)} ms, ${oneMinute.length - fresh.length} not seen`);
  }
  const lastBoundary = boundary - MIN;

  // Every closed candle of every series since its start, read back through the API.
  log('reading every series back through GET /v1/candles');
  let missing = 0;
  let duplicates = 0;
  let mismatched = 0;
  let checked = 0;
  const queue = [...followed];
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        const step = INTERVAL_MS[f.interval];
        const from = bucketAtOrAfter(start, f.interval);
        const to = bucketStart(lastBoundary, f.interval); // candles closed by the last measured boundary
        const expected = reference.expected(f.exchange, f.symbol, f.interval, from, to - step).filter((c) => c.closed);
        const q = new URLSearchParams({ exchange: f.exchange, symbol: f.symbol, interval: f.interval, start: String(from), end: String(to), limit: '1000' });
        const res = await fetch(`${api}/v1/candles?${q}`, { headers: { 'x-api-key': apiKey } });
        if (res.status !== 200) throw new Error(`GET /v1/candles answered ${res.status}: ${await res.text()}`);
        type ApiCandle = { openTime: number; open: string; high: string; low: string; close: string; volume: string; quoteVolume: string | null; trades: number | null; closed: boolean; gap?: boolean };
        const got = ((await res.json()) as { candles: ApiCandle[] }).candles.filter((c) => !c.gap);
        const byTime = new Map<number, (typeof got)[number]>();
        for (const c of got) {
          if (byTime.has(c.openTime)) duplicates += 1;
          byTime.set(c.openTime, c);
        }
        for (const e of expected) {
          checked += 1;
          const c = byTime.get(e.openTime);
          if (!c || !c.closed) missing += 1;
          else if (
            c.open !== e.open || c.high !== e.high || c.low !== e.low || c.close !== e.close || c.volume !== e.volume ||
            c.quoteVolume !== (e.quoteVolume ?? null) || c.trades !== (e.trades ?? null)
          ) {
            mismatched += 1;
          }
        }
      }
    }),
  );

  const stats = await fake.stats();
  const sum = (k: keyof ExchangeStats) => EXCHANGES.reduce((n, e) => n + stats[e][k], 0);
  samples.sort((x, y) => x - y);
  const durations = [startup, ...ticks.map((t) => t.duration_ms ?? Number.POSITIVE_INFINITY)];
  const result = {
    benchmark: 'live',
    series: followed.length,
    markets: markets.length,
    series_by_exchange: byExchange,
    intervals: INTERVALS,
    latency_ms: `${LATENCY[0]}-${LATENCY[1]}`,
    pull_workers: PULL_WORKER_MAX_CONCURRENCY,
    writer_max_concurrency: WRITER_MAX_CONCURRENCY,
    writer_batching_window_ms: WRITER_BATCHING_WINDOW.toMilliseconds(),
    ticks: ticks.length + 1,
    all_series_tick: { series: followed.length, duration_ms: startup },
    boundary_ticks: ticks,
    freshness_samples: samples.length,
    freshness_p50_ms: percentile(samples, 50),
    freshness_p99_ms: percentile(samples, 99),
    freshness_max_ms: samples.at(-1) ?? null,
    freshness_unseen: unseen,
    tick_duration_max_ms: Math.max(...durations),
    requests: sum('requests'),
    http_429: sum('rateLimited'),
    http_418: sum('banned'),
    exchange_errors: sum('errors'),
    candles_checked: checked,
    missing: missing + unseen,
    duplicates,
    value_mismatches: mismatched,
    handler_errors: errors.length,
    meets_floors: false,
  };
  result.meets_floors =
    result.series >= 1000 &&
    (result.freshness_p99_ms ?? Infinity) <= FLOORS.freshness_p99_ms &&
    (result.freshness_p50_ms ?? Infinity) <= FLOORS.freshness_p50_ms &&
    result.tick_duration_max_ms <= FLOORS.tick_duration_max_ms &&
    result.http_429 === 0 &&
    result.http_418 === 0 &&
    result.missing === 0 &&
    result.duplicates === 0 &&
    result.value_mismatches === 0;
  if (!args.json) log(JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result));
} finally {
  await candlekeep?.stop().catch((err: unknown) => log(`stopping the pipeline: ${(err as Error).message}`));
  await fake.close();
  await reference.close();
  await pool.end().catch(() => {});
  if (!args.keep) await db.drop(dbName).catch(() => {});
  await db.close();
  await aws.stop();
}
