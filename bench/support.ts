/** What every benchmark script parses and prints the same way. */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { LocalDatabase } from '../dev/local-db.ts';
import { hostPort } from '../dev/postgres.ts';
import { configureLocalRelay, type Db, type Queryable } from '../functions/store/db.ts';

/** A command-line option that must be a positive integer. */
export function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

/** Progress goes to stderr, so stdout's last line stays the JSON result. */
export const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/**
 * The WebSocket relay stands in for Neon's proxy, which runs on other machines: it gets its own
 * thread, so its work is not counted as the code being measured. Terminate the worker when done.
 */
export async function relayInWorker(local: LocalDatabase): Promise<Worker> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.module).then(async ({ startRelay }) => {
       const relay = await startRelay({ allow: workerData.allow });
       parentPort.postMessage(relay.address);
     });`,
    {
      eval: true,
      workerData: { module: new URL('../dev/ws-relay.ts', import.meta.url).href, allow: [hostPort(local.serverUrl)] },
      // Node's own type stripping reads the relay's TypeScript, where it has it: the thread then
      // goes without tsx's loader and its compiler (about 30 MB), which the relay has no use for.
      ...((process.features as { typescript?: unknown }).typescript ? { execArgv: [] } : {}),
    },
  );
  const [relayAddress] = (await once(worker, 'message')) as [string];
  configureLocalRelay(relayAddress);
  return worker;
}

/** Peaks over an export, in MB, sampled every 50 ms (between tasks: a peak inside one is missed). */
export interface MemoryPeaks {
  /** V8 heap in use, of this thread and of the relay's. */
  peak_heap_mb: number;
  peak_relay_heap_mb: number;
  /** Memory outside V8's heap held by JS objects (Buffers, ArrayBuffers, WebAssembly memory), this thread. */
  peak_external_mb: number;
  peak_array_buffers_mb: number;
}

/**
 * Samples this thread's memory and the relay worker's heap until `stop()`: with peak_rss_mb, they
 * say where a process's memory went (what none of them counts is native: malloc arenas, sockets).
 */
export function sampleMemory(worker?: Worker): { stop(): MemoryPeaks } {
  const mb = (b: number) => Math.round(b / 1048576);
  let heap = 0;
  let external = 0;
  let arrayBuffers = 0;
  let relayHeap = 0;
  let relayPending = false;
  const sample = () => {
    const m = process.memoryUsage();
    heap = Math.max(heap, m.heapUsed);
    external = Math.max(external, m.external);
    arrayBuffers = Math.max(arrayBuffers, m.arrayBuffers);
    if (worker && !relayPending) {
      relayPending = true;
      worker
        .getHeapStatistics()
        .then((h) => (relayHeap = Math.max(relayHeap, h.used_heap_size)))
        .catch(() => {})
        .finally(() => (relayPending = false));
    }
  };
  sample();
  const timer = setInterval(sample, 50);
  return {
    /** Stops sampling (again, harmlessly) and returns the peaks. */
    stop() {
      clearInterval(timer);
      sample();
      return { peak_heap_mb: mb(heap), peak_relay_heap_mb: mb(relayHeap), peak_external_mb: mb(external), peak_array_buffers_mb: mb(arrayBuffers) };
    },
  };
}

/**
 * Loads `perSeries` closed 1m candles from `t0` for each of `series` series (binance B<n>/USDT),
 * server-side with INSERT ... SELECT, two chunks at a time, then VACUUM ANALYZE. Prices follow a
 * deterministic wave per series plus noise, with exchange-like decimal scales. Returns the ids.
 */
export async function loadSyntheticCandles(loader: Db, opts: { series: number; perSeries: number; t0: number }): Promise<number[]> {
  const started = performance.now();
  const seriesIds: number[] = [];
  for (let s = 0; s < opts.series; s++) {
    const { rows } = await loader.query<{ id: number }>(`INSERT INTO series (exchange, symbol, interval) VALUES ('binance', $1, '1m') RETURNING id`, [
      `B${s}/USDT`,
    ]);
    seriesIds.push(rows[0]!.id);
  }
  const CHUNK = 500_000;
  const chunks: { sid: number; from: number; to: number; s: number }[] = [];
  seriesIds.forEach((sid, s) => {
    for (let from = 0; from < opts.perSeries; from += CHUNK) chunks.push({ sid, s, from, to: Math.min(opts.perSeries, from + CHUNK) });
  });
  let loaded = 0;
  const nextChunk = { i: 0 };
  async function loadWorker(): Promise<void> {
    for (let c = chunks[nextChunk.i++]; c; c = chunks[nextChunk.i++]) {
      await loader.query(
        `INSERT INTO candles (series_id, closed, open_time, fetched_at, trades, open, high, low, close, volume, quote_volume)
         SELECT $1, true, to_timestamp(($4::bigint + i * 60000) / 1000.0), to_timestamp(($4::bigint + i * 60000) / 1000.0) + interval '1 minute',
                (random() * 500)::bigint, round(o::numeric, 2), round((greatest(o, c) + random() * 3)::numeric, 2),
                round((least(o, c) - random() * 3)::numeric, 2), round(c::numeric, 2),
                round((random() * 40)::numeric, 6), round((random() * 40 * o)::numeric, 4)
         FROM generate_series($2::bigint, $3::bigint - 1) AS i,
              LATERAL (SELECT 1000 + $5 * 100 + 300 * sin(i / 9000.0) + 20 * sin(i / 97.0) AS o,
                              1000 + $5 * 100 + 300 * sin((i + 1) / 9000.0) + 20 * sin((i + 1) / 97.0) AS c) p`,
        [c.sid, c.from, c.to, opts.t0, c.s],
      );
      loaded += c.to - c.from;
      log(`candles: ${loaded}/${opts.perSeries * opts.series} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
  await Promise.all([loadWorker(), loadWorker()]);
  log('vacuum analyze candles (visibility map and planner statistics, as autovacuum would leave them)');
  await loader.query('VACUUM (ANALYZE) candles');
  return seriesIds;
}

/** What a figure depends on besides the code: printed by the query and ingest benchmarks. */
export interface ServerFacts {
  server_version: string;
  /** `jit` as candlekeep's sessions run (the pool sets it off on every connection). */
  jit: string;
  /** `jit` as the server would give a session that sets nothing. */
  server_jit: string;
  /** Partitions of `candles`, the DEFAULT one included. */
  partitions: number;
  /** Total relation size of `candles` (every partition, its indexes and TOAST) over its rows. */
  bytes_per_candle: number | null;
}

export async function serverFacts(db: Queryable): Promise<ServerFacts> {
  const { rows } = await db.query<{ v: string; jit: string; server_jit: string; partitions: number; bytes: number; n: number }>(
    `SELECT current_setting('server_version') AS v, current_setting('jit') AS jit,
            (SELECT reset_val FROM pg_settings WHERE name = 'jit') AS server_jit,
            (SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'candles'::regclass) AS partitions,
            (SELECT sum(pg_total_relation_size(relid))::float8 FROM pg_partition_tree('candles')) AS bytes,
            (SELECT count(*)::float8 FROM candles) AS n`,
  );
  const r = rows[0]!;
  return {
    server_version: r.v,
    jit: r.jit,
    server_jit: r.server_jit,
    partitions: r.partitions,
    bytes_per_candle: r.n > 0 ? Math.round((r.bytes / r.n) * 10) / 10 : null,
  };
}
