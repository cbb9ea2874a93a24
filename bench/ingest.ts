/**
 * Ingestion benchmark: the writer's own code path (CandleBatch v1 bodies -> zod validation -> one
 * upsert per SQS batch through the Neon driver and relay) against raw COPY of the same rows into an
 * identical fresh table, then a redelivery of every batch. Each phase runs `--repeat` times (fresh
 * databases each round) and the best rate of each counts, with every round listed. Prints progress
 * on stderr and one JSON object as the last line of stdout.
 *
 *   npm run bench:ingest -- --rows 1000000 --json
 */
import { parseArgs } from 'node:util';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeCandleBatches } from '../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../functions/candles/candle.ts';
import { CandleStore } from '../functions/store/candles.ts';
import { writeCandleMessages, type QueueRecord } from '../functions/ingest/write-candles.ts';
import { openLocalDatabase } from '../dev/local-db.ts';
import { randomWalk, seededRandom, type WalkShape } from '../dev/sample-candles.ts';
import { log, positiveInt, serverFacts, type ServerFacts } from './support.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    series: { type: 'string', default: '10' },
    'batch-messages': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    repeat: { type: 'string', default: '3' },
    // Pulls and backfill workers send the range they fetched, and the writer records it in the
    // ledger in the same transaction; --no-range measures the bare upsert of older senders.
    'no-range': { type: 'boolean', default: false },
  },
});
const ROWS = positiveInt('rows', args.rows);
const SERIES = positiveInt('series', args.series);
const BATCH_MESSAGES = positiveInt('batch-messages', args['batch-messages']);
const CONCURRENCY = positiveInt('concurrency', args.concurrency);
const REPEAT = positiveInt('repeat', args.repeat);

// ---- data: a deterministic random walk per series, decimals with exchange-like precision ----
const rand = seededRandom(42);
const START = Date.UTC(2024, 0, 1);
const fetchedAt = Date.UTC(2024, 6, 1);
const seriesKeys: SeriesKey[] = Array.from({ length: SERIES }, (_, i) => ({ exchange: 'binance', symbol: `C${i}/USDT`, interval: '1m' }));
const perSeries = Math.ceil(ROWS / SERIES);
const shape: WalkShape = { step: 0.5, wick: 0.2, minLow: 0.0001, priceDecimals: 8, volume: { max: 1000, decimals: 8 }, quoteVolume: { max: 100000, decimals: 8 }, maxTrades: 5000 };
const candlesBySeries: Candle[][] = seriesKeys.map((_, s) => {
  const count = Math.max(0, Math.min(perSeries, ROWS - s * perSeries));
  const bars = randomWalk({ rand, startPrice: 100 + s * 10, count, shape });
  return Array.from(bars, ({ index, ...bar }) => ({ openTime: START + index * 60_000, ...bar, closed: true }));
});
// Messages from all series interleave on the queue, as they would from concurrent pulls.
const RANGED = !args['no-range'];
const bodiesBySeries = seriesKeys.map((k, s) => {
  const candles = candlesBySeries[s]!;
  const range = RANGED && candles.length > 0 ? { start: candles[0]!.openTime, end: candles.at(-1)!.openTime + 60_000 } : undefined;
  return encodeCandleBatches(k, candles, fetchedAt, range);
});
const messages: QueueRecord[] = [];
for (let round = 0; messages.length < bodiesBySeries.reduce((n, b) => n + b.length, 0); round++) {
  bodiesBySeries.forEach((bodies) => {
    const body = bodies[round];
    if (body) messages.push({ messageId: `m${messages.length}`, body });
  });
}
const batches: QueueRecord[][] = [];
for (let i = 0; i < messages.length; i += BATCH_MESSAGES) batches.push(messages.slice(i, i + BATCH_MESSAGES));
log(`generated ${ROWS} candles of ${SERIES} series in ${messages.length} messages, ${batches.length} batches of ${BATCH_MESSAGES}`);

const local = await openLocalDatabase({ log });
const fetchedIso = new Date(fetchedAt).toISOString();
const fingerprint = `SELECT count(*)::int AS n, md5(string_agg(s.symbol || open_time::text || open::text || high::text || low::text || close::text || volume::text || quote_volume::text || trades::text, ',' ORDER BY s.symbol, open_time)) AS h
  FROM candles JOIN series s ON s.id = series_id`;

interface Round {
  writer_rows_per_s: number;
  copy_rows_per_s: number;
  redelivery_rows_per_s: number;
  redelivery_rows_written: number;
  identical_to_copy: boolean;
  /** The writer's database once the writer and the redelivery are done. */
  facts: ServerFacts;
}

/** One measurement: writer into a fresh database, COPY into another, then redelivery. */
async function measure(round: number): Promise<Round> {
  const stamp = `${Date.now().toString(36)}_${round}`;
  const writerDbName = `candlekeep_bench_writer_${stamp}`;
  const copyDbName = `candlekeep_bench_copy_${stamp}`;
  const writerUrl = await local.prepare(writerDbName, { fresh: true });
  const copyUrl = await local.prepare(copyDbName, { fresh: true });
  const pool = local.pool(writerUrl, CONCURRENCY);

  async function runWriter(label: string): Promise<{ seconds: number; written: number; unchanged: number }> {
    const store = new CandleStore();
    let next = 0;
    let done = 0;
    let written = 0;
    let unchanged = 0;
    const started = performance.now();
    const ticker = setInterval(() => log(`round ${round}: ${label}: ${done}/${ROWS} candles`), 2000);
    const worker = async () => {
      for (let b = next++; b < batches.length; b = next++) {
        const out = await writeCandleMessages(batches[b]!, {
          db: pool,
          store,
          deadLetter: async (rejected) => {
            throw new Error(`benchmark data rejected: ${rejected[0]?.reason}`);
          },
        });
        done += out.received;
        written += out.written;
        unchanged += out.unchanged;
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      clearInterval(ticker);
    }
    return { seconds: (performance.now() - started) / 1000, written, unchanged };
  }

  // 1. the writer
  const first = await runWriter('writer');
  log(`round ${round}: writer: ${first.written} written in ${first.seconds.toFixed(2)} s`);

  // 2. raw COPY of the same rows into an identical fresh table (plain TCP, no relay)
  const copyClient = new pg.Client({ connectionString: copyUrl });
  await copyClient.connect();
  const ids = new Map<string, number>();
  for (const k of seriesKeys) {
    const { rows } = await copyClient.query<{ id: number }>(
      'INSERT INTO series (exchange, symbol, interval) VALUES ($1, $2, $3) RETURNING id',
      [k.exchange, k.symbol, k.interval],
    );
    ids.set(k.symbol, rows[0]!.id);
  }
  const csvChunks: string[] = [];
  seriesKeys.forEach((k, s) => {
    const id = ids.get(k.symbol)!;
    const lines: string[] = [];
    for (const c of candlesBySeries[s]!) {
      lines.push(`${id}\tt\t${new Date(c.openTime).toISOString()}\t${fetchedIso}\t${c.trades}\t${c.open}\t${c.high}\t${c.low}\t${c.close}\t${c.volume}\t${c.quoteVolume}\n`);
      if (lines.length === 5000) csvChunks.push(lines.splice(0).join(''));
    }
    if (lines.length) csvChunks.push(lines.join(''));
  });
  const copyStarted = performance.now();
  await copyClient.query('BEGIN');
  await pipeline(
    Readable.from(csvChunks),
    copyClient.query(
      copyFrom('COPY candles (series_id, closed, open_time, fetched_at, trades, open, high, low, close, volume, quote_volume) FROM STDIN'),
    ),
  );
  await copyClient.query('COMMIT');
  const copySeconds = (performance.now() - copyStarted) / 1000;
  log(`round ${round}: copy: ${ROWS} rows in ${copySeconds.toFixed(2)} s`);

  // 3. redelivery of every batch: must write nothing
  const again = await runWriter('redelivery');
  log(`round ${round}: redelivery: ${again.unchanged} unchanged, ${again.written} written in ${again.seconds.toFixed(2)} s`);

  // both tables must hold the same values
  const writerFp = (await pool.query<{ n: number; h: string }>(fingerprint)).rows[0]!;
  const facts = await serverFacts(pool);
  const copyFp = (await copyClient.query<{ n: number; h: string }>(fingerprint)).rows[0]!;
  await copyClient.end();
  await pool.end();
  if (!args.keep) {
    await local.drop(writerDbName);
    await local.drop(copyDbName);
  }
  return {
    writer_rows_per_s: Math.round(ROWS / first.seconds),
    copy_rows_per_s: Math.round(ROWS / copySeconds),
    redelivery_rows_per_s: Math.round(ROWS / again.seconds),
    redelivery_rows_written: again.written,
    identical_to_copy: writerFp.n === copyFp.n && writerFp.h === copyFp.h && writerFp.n === ROWS,
    facts,
  };
}

const checksumsPool = local.pool(local.serverUrl, 1);
const dataChecksums = (await checksumsPool.query<{ data_checksums: string }>('SHOW data_checksums')).rows[0]?.data_checksums;
await checksumsPool.end();

const runs: Round[] = [];
for (let r = 1; r <= REPEAT; r++) runs.push(await measure(r));
await local.close();

// Other load on the machine only ever slows a phase down, so each rate is the best of the rounds.
const best = (k: 'writer_rows_per_s' | 'copy_rows_per_s' | 'redelivery_rows_per_s') => Math.max(...runs.map((r) => r[k]));
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const result = {
  rows: ROWS,
  series: SERIES,
  messages: messages.length,
  batches: batches.length,
  messages_per_batch: BATCH_MESSAGES,
  // Messages carry their fetched range, so the writer also records coverage (as in AWS).
  ranged: RANGED,
  writer_concurrency: CONCURRENCY,
  postgres: local.server.mode,
  // server_version, jit (as the writer's sessions run), server_jit, partitions and bytes_per_candle
  // of the first round's writer database.
  ...runs[0]!.facts,
  // With checksums on, the first read after a bulk write also logs hint bits: see dev/postgres.ts.
  data_checksums: dataChecksums,
  rounds: REPEAT,
  writer_rows_per_s: best('writer_rows_per_s'),
  copy_rows_per_s: best('copy_rows_per_s'),
  redelivery_rows_per_s: best('redelivery_rows_per_s'),
  ratio: round3(best('writer_rows_per_s') / best('copy_rows_per_s')),
  redelivery_ratio: round3(best('redelivery_rows_per_s') / best('copy_rows_per_s')),
  redelivery_rows_written: Math.max(...runs.map((r) => r.redelivery_rows_written)),
  identical_to_copy: runs.every((r) => r.identical_to_copy),
  runs,
};
if (!args.json) log(JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
if (!result.identical_to_copy || result.redelivery_rows_written !== 0) process.exitCode = 1;
