/**
 * Query benchmark: loads ≥10M 1m candles (several series) and 100k backtest runs into a fresh
 * PostgreSQL database, then measures the API handlers in-process — the same middy chain the Lambda
 * runs: proxy event parsing, zod validation, SQL through the Neon driver and relay, serialisation.
 * Candles are loaded through the writer's own path (CandleBatch bodies, writeCandleMessages), backtest
 * runs server-side; loading is timed apart (`candle_load_seconds`) and not counted in any figure.
 * The first resample after loading is reported apart (`resample_cold_ms`). The window and backtest
 * reads are measured again as deployed behind a transaction-mode pooler (`*_pooled_*`: a SET LOCAL
 * transaction per statement and a session slot), for comparison. With DATABASE_URL set it
 * runs on that server, in a fresh database it drops afterwards. Progress goes to stderr; the last
 * stdout line is one JSON object.
 *
 *   npm run bench:query -- --json
 */
import { parseArgs } from 'node:util';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import { openLocalDatabase } from '../dev/local-db.ts';
import { toProxyEvent, type ProxyHandler } from '../dev/local-api.ts';
import { computeFingerprint, type Fingerprint } from '../functions/backtests/fingerprint.ts';
import { matchRoute } from '../functions/api/app.ts';
import { seededRandom } from '../dev/sample-candles.ts';
import { encodeCandleBatches } from '../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../functions/candles/candle.ts';
import { writeCandleMessages } from '../functions/ingest/write-candles.ts';
import { CandleStore } from '../functions/store/candles.ts';
import { log, positiveInt, relayInWorker, serverFacts } from './support.ts';

const { values: args } = parseArgs({
  options: {
    candles: { type: 'string', default: '10000000' },
    series: { type: 'string', default: '10' },
    runs: { type: 'string', default: '100000' },
    iterations: { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const CANDLES = positiveInt('candles', args.candles);
const SERIES = positiveInt('series', args.series);
const RUNS = positiveInt('runs', args.runs);
const ITERATIONS = positiveInt('iterations', args.iterations);
const PER_SERIES = Math.ceil(CANDLES / SERIES);
const DAY = 86_400_000;
const MIN = 60_000;
if (PER_SERIES < 366 * 1440) throw new Error(`--candles / --series must give at least a year of 1m candles per series (${366 * 1440})`);

const T0 = Date.UTC(2022, 0, 1);
const rand = seededRandom(7);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';

const local = await openLocalDatabase({ log });
const dbName = `candlekeep_bench_query_${Date.now().toString(36)}`;
const url = await local.prepare(dbName, { fresh: true });
const relayWorker = await relayInWorker(local);
const pool = local.pool(url, 2);
const loader = local.pool(url, 2);

const LOAD_CHUNK = 50_000;
const benchSeries = (s: number): SeriesKey => ({ exchange: 'binance', symbol: `B${s}/USDT`, interval: '1m' });

/**
 * Candles `from` to `to` (exclusive) of series `s`: a deterministic wave per series plus noise,
 * decimals with exchange-like scales (prices to 2 places, volumes to 6, quote volumes to 4).
 */
function waveCandles(s: number, from: number, to: number): Candle[] {
  // Its own generator per chunk: two loaders run at once, and the data must not depend on their order.
  const rand = seededRandom(1 + s * 7919 + from);
  const price = (i: number) => 1000 + s * 100 + 300 * Math.sin(i / 9000) + 20 * Math.sin(i / 97);
  const out: Candle[] = new Array(to - from);
  for (let i = from; i < to; i++) {
    const o = price(i);
    const c = price(i + 1);
    out[i - from] = {
      openTime: T0 + i * MIN,
      open: o.toFixed(2),
      high: (Math.max(o, c) + rand() * 3).toFixed(2),
      low: (Math.min(o, c) - rand() * 3).toFixed(2),
      close: c.toFixed(2),
      volume: (rand() * 40).toFixed(6),
      quoteVolume: (rand() * 40 * o).toFixed(4),
      trades: Math.floor(rand() * 500),
      closed: true,
    };
  }
  return out;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
const round = (x: number) => Math.round(x * 100) / 100;

async function run() {
  // ---- load candles through the writer's own path, two batches at a time ----
  // CandleBatch bodies with the range each fetch covered, parsed, validated and written by
  // writeCandleMessages as the writer does: whatever it maintains (partitions, the coverage ledger,
  // anything derived from candles) is maintained here too.
  const loadStarted = performance.now();
  const store = new CandleStore();
  const chunks: { s: number; from: number; to: number }[] = [];
  for (let from = 0; from < PER_SERIES; from += LOAD_CHUNK) {
    for (let s = 0; s < SERIES; s++) chunks.push({ s, from, to: Math.min(PER_SERIES, from + LOAD_CHUNK) });
  }
  let loaded = 0;
  let lastLog = 0;
  const nextChunk = { i: 0 };
  async function loadWorker(): Promise<void> {
    for (let c = chunks[nextChunk.i++]; c; c = chunks[nextChunk.i++]) {
      const candles = waveCandles(c.s, c.from, c.to);
      const range = { start: T0 + c.from * MIN, end: T0 + c.to * MIN };
      const bodies = encodeCandleBatches(benchSeries(c.s), candles, range.end + MIN, range);
      for (let b = 0; b < bodies.length; b += 10) {
        const records = bodies.slice(b, b + 10).map((body, k) => ({ messageId: `load-${c.s}-${c.from}-${b + k}`, body }));
        await writeCandleMessages(records, {
          db: loader,
          store,
          deadLetter: async (rejected) => {
            throw new Error(`benchmark data rejected: ${rejected[0]?.reason}`);
          },
        });
      }
      loaded += c.to - c.from;
      if (performance.now() - lastLog > 5000 || loaded === PER_SERIES * SERIES) {
        lastLog = performance.now();
        log(`candles: ${loaded}/${PER_SERIES * SERIES} (${((performance.now() - loadStarted) / 1000).toFixed(0)} s)`);
      }
    }
  }
  await Promise.all([loadWorker(), loadWorker()]);
  log('vacuum analyze candles (visibility map and planner statistics, as autovacuum would leave them)');
  await loader.query('VACUUM (ANALYZE) candles');
  const candleCount = PER_SERIES * SERIES;
  const candleLoadSeconds = (performance.now() - loadStarted) / 1000;
  const facts = await serverFacts(pool);

  // ---- load backtest runs with real fingerprints of realistic ranges ----
  log('fingerprinting 20 instrument ranges');
  const fps: Fingerprint[] = [];
  for (let k = 0; k < 20; k++) {
    const s = k % SERIES;
    const days = 30 + Math.floor(rand() * 60);
    const start = T0 + Math.floor(rand() * (PER_SERIES / 1440 - days - 1)) * DAY;
    fps.push(
      await computeFingerprint(pool, [{ exchange: 'binance', symbol: `B${s}/USDT`, interval: '1h' }], start, start + days * DAY, Date.now()),
    );
  }
  log(`inserting ${RUNS} backtest runs`);
  const RUN_CHUNK = 25_000;
  for (let from = 0; from < RUNS; from += RUN_CHUNK) {
    await loader.query(
      `INSERT INTO backtests (id, created_at, request_hash, strategy, strategy_version, parameters, instruments, range_start, range_end,
                              metrics, tags, fingerprint)
       SELECT gen_random_uuid(), date_trunc('milliseconds', now() - i * interval '5 minutes'), md5(i::text),
              'strategy_' || (i % 50), '1.' || (i % 3) || '.0',
              jsonb_build_object('fast', 5 + i % 20, 'slow', 20 + i % 40, 'risk', jsonb_build_object('stop', 0.01 * (1 + i % 5)), 'mode', CASE WHEN i % 2 = 0 THEN 'trend' ELSE 'revert' END),
              jsonb_build_array(jsonb_build_object('exchange', fp->'instruments'->0->'exchange', 'symbol', fp->'instruments'->0->'symbol',
                                                   'interval', fp->'instruments'->0->'interval')),
              to_timestamp(((fp->'instruments'->0->>'start')::bigint) / 1000.0), to_timestamp(((fp->'instruments'->0->>'end')::bigint) / 1000.0),
              jsonb_build_object('totalReturn', round((random() - 0.3)::numeric, 4), 'sharpe', round((random() * 4 - 1)::numeric, 3),
                                 'maxDrawdown', round((random() * 0.5)::numeric, 4), 'winRate', round(random()::numeric, 3),
                                 'tradeCount', (random() * 500)::int, 'exposure', round(random()::numeric, 3)),
              CASE i % 7 WHEN 0 THEN ARRAY['research'] WHEN 1 THEN ARRAY['prod'] WHEN 2 THEN ARRAY['research', 'wf'] WHEN 3 THEN ARRAY[]::text[]
                         WHEN 4 THEN ARRAY['sweep'] WHEN 5 THEN ARRAY['prod', 'live'] ELSE ARRAY['oos'] END,
              fp
       FROM generate_series($1::int, $2::int - 1) AS i,
            LATERAL (SELECT ($3::jsonb)->(i % 20) AS fp) f`,
      [from, Math.min(RUNS, from + RUN_CHUNK), JSON.stringify(fps)],
    );
    log(`backtests: ${Math.min(RUNS, from + RUN_CHUNK)}/${RUNS}`);
  }
  await loader.query('VACUUM (ANALYZE) backtests');
  // Just loaded, the database still has its writes to put on disk: the server's next checkpoint
  // (within checkpoint_timeout, or sooner for the WAL the load wrote) and the kernel's writeback
  // would run through the measurements, which are of reads from a database at rest. A server that
  // refuses CHECKPOINT (no superuser or pg_checkpoint) is measured as it is, and says so.
  const checkpointed = await loader.query('CHECKPOINT').then(
    () => true,
    (err: Error) => {
      log(`CHECKPOINT refused (${err.message}): the figures may include the server writing out the load`);
      return false;
    },
  );
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const ids = (await loader.query<{ id: string }>('SELECT id FROM backtests TABLESAMPLE SYSTEM (5) LIMIT 2000')).rows.map((r) => r.id);

  // ---- measure through the handler ----
  const { createApiHandler, readApiConfig } = await import('../functions/api/api-lambda.ts');
  const handler = createApiHandler(readApiConfig(process.env), { db: async () => pool }) as unknown as ProxyHandler;
  const context = {
    awsRequestId: 'bench',
    functionName: 'candlekeep-api-bench',
    getRemainingTimeInMillis: () => 28_000,
  } as unknown as Context;

  // The deployed configuration: behind a transaction-mode pooler (Neon's -pooler host) with the
  // stack's session bound, every statement is its own SET LOCAL transaction taking a session slot.
  const pooledEnv = process.env.CANDLEKEEP_DB_POOLER;
  process.env.CANDLEKEEP_DB_POOLER = 'transaction';
  const pooledPool = local.pool(url, 2);
  if (pooledEnv === undefined) delete process.env.CANDLEKEEP_DB_POOLER;
  else process.env.CANDLEKEEP_DB_POOLER = pooledEnv;
  const pooledHandler = createApiHandler({ ...readApiConfig(process.env), dbSessions: 20 }, { db: async () => pooledPool }) as unknown as ProxyHandler;

  async function call(path: string, query: Record<string, string> = {}, via: ProxyHandler = handler): Promise<{ ms: number; res: APIGatewayProxyResult }> {
    const u = new URL(`http://bench${path}`);
    for (const [k, v] of Object.entries(query)) u.searchParams.append(k, v);
    const m = matchRoute('GET', u.pathname);
    if (!m || !('route' in m)) throw new Error(`no route ${path}`);
    const event = toProxyEvent({ method: 'GET', url: u, headers: { accept: 'application/json' }, body: undefined }, m.route.path, m.pathParameters);
    // What the key authorizer hands on for a read key, as API Gateway passes it to the function.
    (event.requestContext as { authorizer?: unknown }).authorizer = { principalId: 'bench', scope: 'read', keyName: 'bench' };
    const t = performance.now();
    const res = await via(event, context);
    const ms = performance.now() - t;
    if (res.statusCode !== 200) throw new Error(`${path} ${JSON.stringify(query)} answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
    return { ms, res };
  }


  async function measure(label: string, n: number, fn: () => Promise<number>): Promise<number[]> {
    for (let i = 0; i < Math.min(20, n); i++) await fn(); // warm: connections, JIT, plan caches
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await fn());
    log(`${label}: p50 ${round(quantile(out, 0.5))} ms, p99 ${round(quantile(out, 0.99))} ms (${n} requests)`);
    return out;
  }

  async function resampleYear(): Promise<number> {
    const s = Math.floor(rand() * SERIES);
    const day = Math.floor(rand() * (PER_SERIES / 1440 - 366));
    const start = T0 + day * DAY;
    const { ms, res } = await call('/v1/candles', {
      exchange: 'binance',
      symbol: `B${s}/USDT`,
      interval: '1d',
      start: new Date(start).toISOString(),
      end: new Date(start + 365 * DAY).toISOString(),
    });
    const body = JSON.parse(res.body) as { count: number; resampledFrom: string; candles: { sourceCandles: number }[] };
    if (body.count !== 365 || body.resampledFrom !== '1m' || body.candles.some((c) => c.sourceCandles !== 1440)) throw new Error('resample returned the wrong buckets');
    return ms;
  }
  // Before anything else reads candles: what the first user to ask after a load waits.
  const resampleCold = await resampleYear();
  log(`resample 1y 1m -> 1d, first after loading: ${round(resampleCold)} ms`);

  const windowOf = (via: ProxyHandler) => async () => {
    const s = Math.floor(rand() * SERIES);
    const offset = Math.floor(rand() * (PER_SERIES - 1000));
    const { ms, res } = await call('/v1/candles', { exchange: 'binance', symbol: `B${s}/USDT`, interval: '1m', start: String(T0 + offset * MIN), limit: '1000' }, via);
    // The count, read without parsing the page: the client's garbage would otherwise be collected
    // inside the next timed request, a cost no deployed handler pays.
    if (/"count":(\d+)/.exec(res.body)?.[1] !== '1000') throw new Error('window did not return 1000 candles');
    return ms;
  };
  const windows = await measure('window 1000 candles', ITERATIONS, windowOf(handler));

  const resamples = await measure('resample 1y 1m -> 1d', 7, resampleYear);

  const gets = await measure('backtest get', ITERATIONS, async () => (await call(`/v1/backtests/${pick(ids)}`)).ms);
  const lists = await measure('backtest list (20 newest, metric filter)', ITERATIONS, async () => {
    const { ms, res } = await call('/v1/backtests', { limit: '20', 'metric.sharpe.gte': (rand() * 2).toFixed(2) });
    if ((JSON.parse(res.body) as { runs: unknown[] }).runs.length !== 20) throw new Error('list returned fewer than 20 runs');
    return ms;
  });
  const compares = await measure('backtest compare 10', ITERATIONS, async () => {
    const pickIds = new Set<string>();
    while (pickIds.size < 10) pickIds.add(pick(ids));
    return (await call('/v1/backtests/compare', { ids: [...pickIds].join(',') })).ms;
  });
  const pooledWindows = await measure('window 1000 candles, pooled (transaction per statement)', ITERATIONS, windowOf(pooledHandler));
  const pooledGets = await measure('backtest get, pooled (transaction per statement)', ITERATIONS, async () => (await call(`/v1/backtests/${pick(ids)}`, {}, pooledHandler)).ms);
  await pooledPool.end().catch(() => {});
  return { candleCount, candleLoadSeconds, loadSeconds, checkpointed, facts, resampleCold, windows, resamples, gets, lists, compares, pooledWindows, pooledGets };
}

// A failed run must not leave a 10M-row database behind.
let measured: Awaited<ReturnType<typeof run>>;
try {
  measured = await run();
} finally {
  await pool.end().catch(() => {});
  await loader.end().catch(() => {});
  if (!args.keep) await local.drop(dbName).catch((err: unknown) => log(`could not drop ${dbName}: ${String(err)}`));
  else log(`kept database ${dbName}`);
  await local.close();
  await relayWorker.terminate();
}
const { candleCount, candleLoadSeconds, loadSeconds, checkpointed, facts, resampleCold, windows, resamples, gets, lists, compares, pooledWindows, pooledGets } = measured;

// Issue 9's floors, for a stock server with default settings as much as for the embedded one.
const floors = {
  window_1000_p99_ms: 10,
  resample_1y_1m_to_1d_ms: 200,
  resample_cold_ms: 500,
  bytes_per_candle: 141,
  backtest_get_p99_ms: 10,
  backtest_list_p99_ms: 25,
  backtest_compare10_p99_ms: 40,
};
const result = {
  candles: candleCount,
  series: SERIES,
  backtests: RUNS,
  postgres: local.server.mode,
  ...facts,
  bytes_per_candle: facts.bytes_per_candle ?? Infinity,
  candle_load_seconds: round(candleLoadSeconds),
  load_seconds: round(loadSeconds),
  checkpointed,
  resample_cold_ms: round(resampleCold),
  window_1000_p50_ms: round(quantile(windows, 0.5)),
  window_1000_p99_ms: round(quantile(windows, 0.99)),
  resample_1y_1m_to_1d_ms: round(quantile(resamples, 0.5)),
  resample_1y_1m_to_1d_max_ms: round(Math.max(...resamples)),
  backtest_get_p50_ms: round(quantile(gets, 0.5)),
  backtest_get_p99_ms: round(quantile(gets, 0.99)),
  backtest_list_p50_ms: round(quantile(lists, 0.5)),
  backtest_list_p99_ms: round(quantile(lists, 0.99)),
  backtest_compare10_p50_ms: round(quantile(compares, 0.5)),
  backtest_compare10_p99_ms: round(quantile(compares, 0.99)),
  // The same reads as deployed behind a transaction-mode pooler (three round trips a statement):
  // what the figures above cost there. No floor; on a local server the difference is the round trips.
  window_1000_pooled_p50_ms: round(quantile(pooledWindows, 0.5)),
  window_1000_pooled_p99_ms: round(quantile(pooledWindows, 0.99)),
  backtest_get_pooled_p50_ms: round(quantile(pooledGets, 0.5)),
  backtest_get_pooled_p99_ms: round(quantile(pooledGets, 0.99)),
  floors,
  meets_floors: true,
};
result.meets_floors = (Object.keys(floors) as (keyof typeof floors)[]).every((k) => result[k] <= floors[k]);
if (!args.json) log(JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
if (!result.meets_floors) process.exitCode = 1;
