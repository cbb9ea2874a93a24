/**
 * Retention benchmark: loads `--series` series of `--candles` 1m candles each into a fresh
 * database, follows them with a retention that expires the older half, then runs the retention job
 * one round at a time (one batch per series per round, as a run goes round the series) until
 * nothing is due. It prints how long a round takes at the start and at the end of the expired
 * range: a job whose cost does not grow with the table keeps them alike (`round_ms_growth` near 1),
 * and deletes `batch_size` candles per series per round whatever the table holds.
 * With DATABASE_URL set it runs on that server, in a fresh database it drops afterwards. Progress
 * goes to stderr; the last stdout line is one JSON object.
 *
 *   npm run bench:retention -- --json                     # 2 series x 2,000,000 candles
 *   npm run bench:retention -- --quick --json             # 2 series x 100,000 candles: checks the script
 */
import { parseArgs } from 'node:util';
import { openLocalDatabase } from '../dev/local-db.ts';
import { applyRetention, DAY_MS } from '../functions/store/retention.ts';
import { loadSyntheticCandles, log, positiveInt, relayInWorker, serverFacts } from './support.ts';

const { values: args } = parseArgs({
  options: {
    candles: { type: 'string', default: '2000000' },
    series: { type: 'string', default: '2' },
    batch: { type: 'string', default: '10000' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const PER_SERIES = args.quick ? 100_000 : positiveInt('candles', args.candles);
const SERIES = positiveInt('series', args.series);
const BATCH = args.quick ? 2_000 : positiveInt('batch', args.batch);
const MIN = 60_000;

process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';

const local = await openLocalDatabase({ log });
const dbName = `candlekeep_bench_retention_${Date.now().toString(36)}`;
const url = await local.prepare(dbName, { fresh: true });
const relayWorker = await relayInWorker(local);
const pool = local.pool(url, 2);

const now = Math.floor(Date.now() / MIN) * MIN;
const t0 = now - PER_SERIES * MIN;
// Whole days, about half of each series.
const days = Math.max(1, Math.floor((PER_SERIES * MIN) / 2 / DAY_MS));

async function run() {
  const loadStarted = performance.now();
  await loadSyntheticCandles(pool, { series: SERIES, perSeries: PER_SERIES, t0 });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  await pool.query(
    `INSERT INTO markets (exchange, symbol, source, retention_days) SELECT exchange, symbol, 'api', $1 FROM series GROUP BY exchange, symbol`,
    [days],
  );
  await pool.query(`INSERT INTO market_series (series_id, exchange, symbol) SELECT id, exchange, symbol FROM series`);
  const facts = await serverFacts(pool);
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM candles WHERE open_time < to_timestamp($1::float8 / 1000)`, [now - days * DAY_MS]);
  const due = Number(rows[0]!.n);
  log(`${SERIES} series x ${PER_SERIES} candles loaded in ${loadSeconds.toFixed(0)} s; ${due} due (retention ${days} days)`);

  // One round per run: the clock stands still for the first batch of each series, then jumps past the budget.
  const rounds: { ms: number; deleted: number }[] = [];
  for (;;) {
    let reads = 0;
    const clock = () => (reads++ < SERIES + 2 ? 0 : Number.MAX_SAFE_INTEGER);
    const started = performance.now();
    const report = await applyRetention(pool, { now, batchSize: BATCH, budgetMs: 1, clock });
    rounds.push({ ms: performance.now() - started, deleted: report.deleted });
    if (rounds.length % 10 === 0) log(`round ${rounds.length}: ${rounds.reduce((n, r) => n + r.deleted, 0)}/${due} deleted`);
    if (report.complete) break;
  }
  return { facts, loadSeconds, due, rounds };
}

let measured: Awaited<ReturnType<typeof run>>;
try {
  measured = await run();
} finally {
  await pool.end().catch(() => {});
  if (!args.keep) await local.drop(dbName).catch((err: unknown) => log(`could not drop ${dbName}: ${String(err)}`));
  else log(`kept database ${dbName}`);
  await local.close();
  await relayWorker.terminate();
}
const { facts, loadSeconds, due, rounds } = measured;
const deleted = rounds.reduce((n, r) => n + r.deleted, 0);
if (deleted !== due) throw new Error(`deleted ${deleted} candles, ${due} were due`);
const full = rounds.filter((r) => r.deleted === BATCH * SERIES);
const sorted = full.map((r) => r.ms).sort((a, b) => a - b);
const pct = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! * 10) / 10 : null);
// The mean of the first and of the last tenth of full rounds: near the start and the end of the expired range.
const tenth = Math.max(1, Math.floor(full.length / 10));
const mean = (rs: typeof full) => rs.reduce((n, r) => n + r.ms, 0) / Math.max(1, rs.length);
const first = mean(full.slice(0, tenth));
const last = mean(full.slice(-tenth));
const totalMs = rounds.reduce((n, r) => n + r.ms, 0);
const result = {
  bench: 'retention',
  ...facts,
  series: SERIES,
  candles_per_series: PER_SERIES,
  load_seconds: Math.round(loadSeconds),
  due,
  deleted,
  batch_size: BATCH,
  rounds: rounds.length,
  round_ms_p50: pct(50),
  round_ms_p99: pct(99),
  round_ms_first: Math.round(first * 10) / 10,
  round_ms_last: Math.round(last * 10) / 10,
  round_ms_growth: Math.round((last / first) * 100) / 100,
  deleted_per_second: Math.round(deleted / (totalMs / 1000)),
};
if (!args.json) log(JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
