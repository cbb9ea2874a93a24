/**
 * Export benchmark: loads one year of 1m candles for 10 series into a fresh PostgreSQL database
 * (server-side, not measured), then exports them all to one Parquet file through the same code as
 * `candlekeep export --out`: planning, keyset pages read as GET /v1/candles reads them (Neon driver
 * through the relay, which runs in its own thread as Neon's proxy runs elsewhere), Arrow batches
 * and the streaming Parquet writer. The last stdout line is one JSON object.
 *
 *   npm run bench:export -- --json
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wasmMemory } from 'parquet-wasm/node';
import { openLocalDatabase } from '../dev/local-db.ts';
import { exportToFile } from '../functions/exports/export.ts';
import { exportRequestSchema } from '../functions/exports/request.ts';
import { loadSyntheticCandles, log, positiveInt, relayInWorker, sampleMemory } from './support.ts';

const { values: args } = parseArgs({
  options: {
    series: { type: 'string', default: '10' },
    days: { type: 'string', default: '365' },
    format: { type: 'string', default: 'parquet' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    database: { type: 'string' },
  },
});
const SERIES = positiveInt('series', args.series);
const PER_SERIES = positiveInt('days', args.days) * 1440;
const T0 = Date.UTC(2024, 0, 1);
const FLOORS = { candles_per_s: 250_000, bytes_per_candle: 30, peak_rss_mb: 300 };

const local = await openLocalDatabase({ log });
// --database reuses a database an earlier run kept (--keep), skipping the load.
const dbName = args.database ?? `candlekeep_bench_export_${Date.now().toString(36)}`;
const url = await local.prepare(dbName, { fresh: !args.database });
const relayWorker = await relayInWorker(local);
const pool = local.pool(url, 2);
const dir = await mkdtemp(join(tmpdir(), 'candlekeep-bench-export-'));

async function run() {
  if (!args.database) {
    const loadStarted = performance.now();
    await loadSyntheticCandles(pool, { series: SERIES, perSeries: PER_SERIES, t0: T0 });
    log(`loaded in ${((performance.now() - loadStarted) / 1000).toFixed(0)} s`);
  }
  const request = exportRequestSchema.parse({
    markets: { exchange: 'binance', interval: '1m' },
    start: T0,
    end: T0 + PER_SERIES * 60_000,
    format: args.format,
  });
  const file = join(dir, `export.${request.format}`);
  let lastLog = 0;
  const rssBefore = process.memoryUsage().rss;
  const sampler = sampleMemory(relayWorker);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = await exportToFile(pool, request, file, { onProgress: (p) => {
    if (performance.now() - lastLog < 2000) return;
    lastLog = performance.now();
    log(`export: ${p.rows}/${p.totalSourceCandles} candles (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } }).finally(() => sampler.stop());
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const memory = {
    rss_before_mb: Math.round(rssBefore / 1048576),
    ...sampler.stop(),
    // The Parquet writer's WebAssembly memory: it grows to the writer's peak and never shrinks.
    wasm_memory_mb: Math.round(wasmMemory().buffer.byteLength / 1048576),
  };
  return { result, seconds, cpuSeconds: (used.user + used.system) / 1e6, memory };
}

let measured: Awaited<ReturnType<typeof run>>;
try {
  measured = await run();
} finally {
  await pool.end().catch(() => {});
  await rm(dir, { recursive: true, force: true });
  if (!args.keep && !args.database) await local.drop(dbName).catch((err: unknown) => log(`could not drop ${dbName}: ${String(err)}`));
  else log(`kept database ${dbName} (reuse it with --database ${dbName})`);
  await local.close();
  await relayWorker.terminate();
}
const { result, seconds, cpuSeconds, memory } = measured;
const out = {
  format: result.format,
  series: result.series.length,
  candles: result.rows,
  seconds: Number(seconds.toFixed(2)),
  candles_per_s: Math.round(result.rows / seconds),
  bytes: result.bytes,
  bytes_per_candle: Number((result.bytes / result.rows).toFixed(2)),
  // The whole process: loading (server-side, small here), the relay's thread and the export.
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  ...memory,
  // CPU of this process (export and relay threads; PostgreSQL's is its own): on a busy machine
  // the wall clock measures the others too, this does not.
  cpu_seconds: Number(cpuSeconds.toFixed(2)),
  floors: FLOORS,
  meets_floors: false,
};
out.meets_floors =
  out.candles_per_s >= FLOORS.candles_per_s && out.bytes_per_candle <= FLOORS.bytes_per_candle && out.peak_rss_mb <= FLOORS.peak_rss_mb;
if (!args.json) log(JSON.stringify(out, null, 2));
console.log(JSON.stringify(out));
