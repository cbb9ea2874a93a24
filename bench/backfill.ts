/**
 * Backfill benchmark: one year of 1m candles (525,600) for one series, from the fake exchange
 * enforcing Binance's published limits (6000 weight per minute, klines weight 2, 429 then 418 bans),
 * through the real backfill path (planner -> chunks in the ledger -> workers claiming with SKIP
 * LOCKED -> governor with the PostgreSQL budget store -> adapter -> CandleBatch v1 -> the writer's
 * upsert) into PostgreSQL (DATABASE_URL, or the embedded server). Progress on stderr; the last line
 * of stdout is one JSON object.
 *
 *   npm run bench:backfill -- --json [--time-scale 0.5] [--workers 4] [--days 365] [--budget postgres|memory]
 *
 * budget_utilisation = weight the exchange admitted / weight its limit allowed over the run
 * (6000 per minute of the fake's clock, pro rata). A year is only ~1,050 weight, a fifth of one
 * minute's budget, so a governor allowed to spend a whole minute's weight at once would finish
 * before the limit mattered and the figure would say nothing. The governor therefore paces the
 * same budget evenly: 90% of 6000/min granted per second (90 weight / s), which can never put more
 * than 5,400 weight into any minute the exchange counts. The default time scale 0.5 (the
 * exchange's minute lasts two) keeps that budget below what this process can write on a loaded
 * two-core machine, so the run is bound by the exchange's limit, which is what the figure measures.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { openLocalDatabase } from '../dev/local-db.ts';
import type { Candle, SeriesKey } from '../functions/candles/candle.ts';
import { Governor, MemoryBudgetStore, type BudgetStore } from '../functions/exchanges/governor.ts';
import { planBackfill } from '../functions/ingest/backfill-planner.ts';
import { runBackfillLocally } from '../functions/ingest/backfill-runner.ts';
import { DirectSink, type CandleSink } from '../functions/ingest/candle-sink.ts';
import type { ExchangeAccess } from '../functions/exchanges/access.ts';
import { PostgresBudgetStore } from '../functions/exchanges/postgres-budget-store.ts';
import { CandleStore } from '../functions/store/candles.ts';
import { findSeriesId } from '../functions/store/series.ts';
import { FAKE_LIMITS, startFakeExchange, type ExchangeStats, type FakeExchangeOptions } from '../dev/fake-exchange/server.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    // 0.5: the exchange's minute lasts two here, so its budget (not this machine's two shared cores) is what binds.
    'time-scale': { type: 'string', default: '0.5' },
    workers: { type: 'string', default: '4' },
    days: { type: 'string', default: '365' },
    'chunk-pages': { type: 'string', default: '10' },
    budget: { type: 'string', default: 'postgres' },
    keep: { type: 'boolean', default: false },
  },
});
const positive = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
};
const TIME_SCALE = positive('time-scale', args['time-scale']);
const WORKERS = Math.round(positive('workers', args.workers));
const DAYS = Math.round(positive('days', args.days));
const CHUNK_PAGES = Math.round(positive('chunk-pages', args['chunk-pages']));
if (args.budget !== 'postgres' && args.budget !== 'memory') throw new Error('--budget must be postgres or memory');
const log = (msg: string) => process.stderr.write(`${msg}\n`);

const MIN = 60_000;
const FROM = Date.UTC(2023, 0, 1);
const TO = FROM + DAYS * 1440 * MIN;
const EXPECTED = DAYS * 1440;
const SERIES: SeriesKey = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
const PUBLISHED = FAKE_LIMITS.binance; // 6000 weight / 60 s, klines weight 2
// Paced form of Binance's budget (see the header): 90% of it, granted per second of the exchange's clock.
const PACE_PARTS = 60;
const RULE = { limit: Math.floor((PUBLISHED.weightPerWindow * 0.9) / PACE_PARTS), windowMs: PUBLISHED.windowMs / PACE_PARTS / TIME_SCALE };

interface FakeThread {
  baseUrls: Record<string, string>;
  stats(): Promise<ExchangeStats>;
  close(): Promise<void>;
}

/** startFakeExchange in a worker thread (tsx's loader is inherited through execArgv). */
async function startFakeExchangeThread(options: FakeExchangeOptions): Promise<FakeThread> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then(async ({ startFakeExchange }) => {
      const fake = await startFakeExchange(workerData.options);
      parentPort.on('message', async (m) => {
        if (m === 'stats') parentPort.postMessage({ stats: fake.stats('binance') });
        if (m === 'close') { await fake.close(); parentPort.postMessage({ closed: true }); }
      });
      parentPort.postMessage({ baseUrls: fake.baseUrls });
    });`;
  const worker = new Worker(code, { eval: true, workerData: { module: new URL('../dev/fake-exchange/server.ts', import.meta.url).href, options } });
  const next = () => new Promise<Record<string, unknown>>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const ready = (await next()) as { baseUrls: Record<string, string> };
  return {
    baseUrls: ready.baseUrls,
    async stats() {
      const reply = next();
      worker.postMessage('stats');
      return ((await reply) as { stats: ExchangeStats }).stats;
    },
    async close() {
      const reply = next();
      worker.postMessage('close');
      await reply;
      await worker.terminate();
    },
  };
}

const db = await openLocalDatabase({ log });
const dbName = 'candlekeep_bench_backfill';
const url = await db.prepare(dbName, { fresh: true });
const pool = db.pool(url, WORKERS + 3);
// The fake exchange runs on its own thread (the machine's second core), as a real exchange would be
// elsewhere: the measured process does only what candlekeep does. A second, idle instance with the
// same seed answers `expected()` for the value check here.
const fake = await startFakeExchangeThread({ timeScale: TIME_SCALE });
const reference = await startFakeExchange({ timeScale: TIME_SCALE });

try {
  const store: BudgetStore = args.budget === 'postgres' ? new PostgresBudgetStore(pool) : new MemoryBudgetStore();
  const access: ExchangeAccess = {
    governor: new Governor({ now: Date.now, sleep, }, {
      store,
      rules: { binance: RULE },
      // X-MBX-USED-WEIGHT-1M counts the exchange's whole minute; compared with a 6 s budget it would
      // read as a massive overdraft. Nothing else spends from this IP here, so there is nothing to learn from it.
      policies: { binance: { usageHeader: undefined } },
    }),
    baseUrls: { ...reference.baseUrls, binance: fake.baseUrls.binance! },
    now: Date.now,
  };
  // Counts every candle handed to the database, to tell a refetch from a clean run.
  const deliveries = new Uint8Array(EXPECTED);
  const direct = new DirectSink(pool, new CandleStore());
  const sink: CandleSink = {
    kind: 'direct',
    write: (series, candles: readonly Candle[], fetchedAt, range) => {
      for (const c of candles) {
        const i = (c.openTime - FROM) / MIN;
        if (i >= 0 && i < EXPECTED) deliveries[i] = Math.min(255, (deliveries[i] ?? 0) + 1);
      }
      return direct.write(series, candles, fetchedAt, range);
    },
  };

  log(`backfilling ${EXPECTED} ${SERIES.interval} candles of ${SERIES.exchange} ${SERIES.symbol} (${new Date(FROM).toISOString()} .. ${new Date(TO).toISOString()})`);
  log(`fake exchange time scale ${TIME_SCALE}: Binance's ${PUBLISHED.weightPerWindow} weight / ${PUBLISHED.windowMs / 1000} s lasts ${PUBLISHED.windowMs / 1000 / TIME_SCALE} s here; ` +
    `governor ${RULE.limit} weight / ${RULE.windowMs} ms, ${args.budget} budget store, ${WORKERS} workers`);
  const started = performance.now();
  const plan = await planBackfill({ ...SERIES, from: FROM, to: TO, requestedBy: 'bench' }, { db: pool, access, chunkPages: CHUNK_PAGES });
  log(`planned backfill ${plan.backfillId}: ${plan.chunks} chunks (${plan.probes} probe request(s))`);
  let lastLine = 0;
  const final = await runBackfillLocally(plan.backfillId, { db: pool, access, sink }, {
    workers: WORKERS,
    progressEveryMs: 2_000,
    onChunk: (e) => {
      if (e.kind !== 'done') log(`  chunk ${e.chunk.chunkNo} ${e.kind}: ${e.error.message}`);
    },
    onProgress: (p) => {
      const now = performance.now();
      if (now - lastLine < 1_900 && p.status === 'running') return;
      lastLine = now;
      const eta = p.etaSeconds === null ? '' : `, ETA ${p.etaSeconds} s`;
      log(`  ${p.chunks.done}/${p.chunks.total} chunks, ${p.candlesWritten} candles, ${((now - started) / 1000).toFixed(1)} s${eta}`);
    },
  });
  const seconds = (performance.now() - started) / 1000;

  const seriesId = await findSeriesId(pool, SERIES);
  const { rows } = await pool.query<{ n: string; distinct_n: string; closed: string }>(
    `SELECT count(*) AS n, count(DISTINCT open_time) AS distinct_n, count(*) FILTER (WHERE closed) AS closed FROM candles
     WHERE series_id = $1 AND open_time >= to_timestamp($2::float8 / 1000) AND open_time < to_timestamp($3::float8 / 1000)`,
    [seriesId, FROM, TO],
  );
  const stored = Number(rows[0]?.n ?? 0);
  const distinct = Number(rows[0]?.distinct_n ?? 0);
  // Spot-check values against what the fake serves: a whole day from each quarter.
  let mismatched = 0;
  for (const day of [0, 91, 182, 273].filter((d) => d < DAYS)) {
    const from = FROM + day * 1440 * MIN;
    const expected = reference.expected('binance', SERIES.symbol, '1m', from, from + 1439 * MIN);
    const got = await pool.query<{ t: number; o: string; h: string; l: string; c: string; v: string; q: string | null; n: string | null }>(
      `SELECT (extract(epoch FROM open_time) * 1000)::float8 AS t, open::text AS o, high::text AS h, low::text AS l, close::text AS c,
              volume::text AS v, quote_volume::text AS q, trades::text AS n
       FROM candles WHERE series_id = $1 AND open_time >= to_timestamp($2::float8 / 1000) AND open_time < to_timestamp($3::float8 / 1000)
       ORDER BY open_time`,
      [seriesId, from, from + 1440 * MIN],
    );
    const byTime = new Map(got.rows.map((r) => [Number(r.t), r]));
    for (const e of expected) {
      const r = byTime.get(e.openTime);
      if (!r || r.o !== e.open || r.h !== e.high || r.l !== e.low || r.c !== e.close || r.v !== e.volume || r.q !== (e.quoteVolume ?? null) || Number(r.n) !== e.trades) mismatched += 1;
    }
  }

  const stats = await fake.stats();
  const usedWeight = stats.ok * PUBLISHED.klinesWeight;
  const allowedWeight = PUBLISHED.weightPerWindow * ((seconds * 1000 * TIME_SCALE) / PUBLISHED.windowMs);
  const refetched = deliveries.reduce((n, d) => n + (d > 1 ? d - 1 : 0), 0);
  const result = {
    benchmark: 'backfill',
    exchange: SERIES.exchange,
    symbol: SERIES.symbol,
    interval: SERIES.interval,
    range: `${new Date(FROM).toISOString()}..${new Date(TO).toISOString()}`,
    time_scale: TIME_SCALE,
    limits: `fake enforces ${PUBLISHED.weightPerWindow} weight / ${PUBLISHED.windowMs / 1000} s (x${TIME_SCALE} clock), klines weight ${PUBLISHED.klinesWeight}`,
    governor_rule: `${RULE.limit} weight / ${RULE.windowMs} ms`,
    budget_store: args.budget,
    workers: WORKERS,
    status: final.status,
    chunks: final.chunks.total,
    candles: stored,
    expected_candles: EXPECTED,
    requests: stats.requests,
    probe_requests: plan.probes,
    weight_used: usedWeight,
    weight_allowed: Math.round(allowedWeight),
    seconds: Number(seconds.toFixed(2)),
    candles_per_second: Math.round(stored / seconds),
    budget_utilisation: Number((usedWeight / allowedWeight).toFixed(3)),
    http_429: stats.rateLimited,
    http_418: stats.banned,
    missing: EXPECTED - distinct,
    duplicates: stored - distinct,
    refetched_candles: refetched,
    value_mismatches: mismatched,
    closed: Number(rows[0]?.closed ?? 0),
  };
  if (!args.json) log(JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result));
} finally {
  await fake.close();
  await reference.close();
  await pool.end();
  if (!args.keep) await db.drop(dbName).catch(() => {});
  await db.close();
}
