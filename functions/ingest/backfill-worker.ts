import type { Exchange, SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { BannedError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from '../exchanges/errors.ts';
import { fetchRange } from '../exchanges/index.ts';
import type { Queryable } from '../store/db.ts';
import type { CandleSink } from './candle-sink.ts';
import { recordCoverage } from './coverage.ts';
import { pageDeps, type ExchangeAccess } from './exchange-access.ts';
import { adapterFor, servableFrom } from './pull.ts';
import type { Range } from './ranges.ts';
import { ms } from '../store/sql.ts';

export const DEFAULT_LEASE_MS = 2 * 60_000;
export const DEFAULT_MAX_ATTEMPTS = 5;

export interface Chunk extends Range {
  backfillId: number;
  chunkNo: number;
  seriesId: number;
  series: SeriesKey;
  attempts: number;
}

export interface WorkerDeps {
  db: Queryable;
  access: ExchangeAccess;
  sink: CandleSink;
  /** Names the claims in the ledger, e.g. the Lambda request id. */
  workerId: string;
  /** How long a claimed chunk stays ours; a worker that dies loses it to the next one after this. Default 2 min. */
  leaseMs?: number;
  maxAttempts?: number;
  /** Checked before each claim: true stops the loop (a Lambda nearing its timeout). */
  shouldStop?: () => boolean;
  /** Aborts the current chunk mid-fetch and leaves its claim to expire, as a crash would. */
  signal?: AbortSignal;
  /** Work only on this backfill's chunks. */
  backfillId?: number;
  onChunk?: (event: ChunkEvent) => void;
}

export type ChunkEvent =
  | { kind: 'done'; chunk: Chunk; candles: number; pages: number }
  | { kind: 'retry' | 'failed'; chunk: Chunk; error: Error };

export interface WorkerResult {
  chunks: number;
  candles: number;
  pages: number;
  failures: number;
  stoppedBy: 'no-work' | 'deadline';
}

/**
 * Claims chunks one at a time (`FOR UPDATE SKIP LOCKED`, so concurrent workers never share one) and
 * fetches each into the sink until none is left or `shouldStop` says so. A finished chunk is `done`
 * and never claimable again; a claim whose worker died becomes claimable when its lease runs out.
 */
export async function runBackfillWorker(deps: WorkerDeps): Promise<WorkerResult> {
  const result: WorkerResult = { chunks: 0, candles: 0, pages: 0, failures: 0, stoppedBy: 'no-work' };
  for (;;) {
    if (deps.shouldStop?.()) {
      result.stoppedBy = 'deadline';
      return result;
    }
    deps.signal?.throwIfAborted();
    const chunk = await claimChunk(deps.db, deps.workerId, deps.leaseMs ?? DEFAULT_LEASE_MS, deps.backfillId);
    if (!chunk) return result;
    const outcome = await processChunk(chunk, deps);
    if (outcome.ok) {
      result.chunks += 1;
      result.candles += outcome.candles;
      result.pages += outcome.pages;
    } else {
      result.failures += 1;
    }
  }
}

type Outcome = { ok: true; candles: number; pages: number } | { ok: false };

async function processChunk(chunk: Chunk, deps: WorkerDeps): Promise<Outcome> {
  try {
    const adapter = adapterFor(chunk.series);
    const now = deps.access.now();
    const forming = bucketStart(now, chunk.series.interval);
    const end = Math.min(chunk.end, forming);
    const fetched =
      end > chunk.start
        ? await fetchRange(
            adapter,
            { symbol: chunk.series.symbol, interval: chunk.series.interval, from: chunk.start, to: end - 1, now },
            pageDeps(deps.access, chunk.series.exchange, deps.signal),
            { maxPages: Math.ceil((end - chunk.start) / INTERVAL_MS[chunk.series.interval] / adapter.maxPageSize) + 3 },
          )
        : { candles: [], pages: 0, weight: 0 };
    const candles = fetched.candles.filter((c) => c.closed);
    await deps.sink.write(chunk.series, candles, now);
    deps.signal?.throwIfAborted();
    // Coverage before `done`: a crash in between refetches the chunk (idempotent) instead of leaving
    // a finished chunk whose confirmed-empty buckets the ledger never heard of.
    const coverageStart = Math.max(chunk.start, servableFrom(adapter, chunk.series.interval, now));
    await recordCoverage(deps.db, chunk.seriesId, { start: coverageStart, end }, candles.map((c) => c.openTime));
    await completeChunk(deps.db, chunk, deps.workerId, candles.length);
    await finalizeBackfill(deps.db, chunk.backfillId);
    deps.onChunk?.({ kind: 'done', chunk, candles: candles.length, pages: fetched.pages });
    return { ok: true, candles: candles.length, pages: fetched.pages };
  } catch (err) {
    // A stopped worker behaves like a dead one: its claim simply runs out.
    if (deps.signal?.aborted) throw err;
    const error = err instanceof Error ? err : new Error(String(err));
    const fatal = error instanceof UnknownSymbolError || error instanceof UnsupportedIntervalError;
    const maxAttempts = deps.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    let retryInMs = Math.min(60_000, 1_000 * 2 ** (chunk.attempts - 1));
    let refund = 0;
    if (error instanceof BannedError) {
      // Not the chunk's fault: wait the ban out without spending an attempt.
      retryInMs = Math.max(retryInMs, error.untilMs - deps.access.now());
      refund = 1;
    } else if (error instanceof RateLimitedError) {
      retryInMs = Math.max(retryInMs, error.retryAfterMs);
      refund = 1;
    }
    const failed = fatal || (refund === 0 && chunk.attempts >= maxAttempts);
    await releaseChunk(deps.db, chunk, deps.workerId, { failed, fatal, retryInMs, refund, error: error.message });
    await finalizeBackfill(deps.db, chunk.backfillId);
    deps.onChunk?.({ kind: failed ? 'failed' : 'retry', chunk, error });
    return { ok: false };
  }
}

/** Claims the next claimable chunk (pending, or claimed with an expired lease) and marks its backfill running. */
export async function claimChunk(db: Queryable, workerId: string, leaseMs: number, backfillId?: number): Promise<Chunk | undefined> {
  const { rows } = await db.query<{
    backfill_id: string; chunk_no: number; series_id: number; s: number; e: number; attempts: number;
    exchange: Exchange; symbol: string; interval: Interval;
  }>(
    `WITH c AS (
       SELECT backfill_id, chunk_no FROM backfill_chunks
       WHERE (status = 'pending' OR (status = 'claimed' AND lease_until < now()))
         AND ($3::bigint IS NULL OR backfill_id = $3::bigint)
       ORDER BY backfill_id, chunk_no
       LIMIT 1
       FOR UPDATE SKIP LOCKED
     ), u AS (
       UPDATE backfill_chunks k
       SET status = 'claimed', claimed_by = $1, lease_until = now() + $2 * interval '1 millisecond', attempts = k.attempts + 1
       FROM c WHERE k.backfill_id = c.backfill_id AND k.chunk_no = c.chunk_no
       RETURNING k.backfill_id, k.chunk_no, k.series_id, k.range_start, k.range_end, k.attempts
     ), running AS (
       UPDATE backfills b SET status = 'running', started_at = coalesce(b.started_at, now())
       FROM u WHERE b.id = u.backfill_id AND b.status = 'planned'
     )
     SELECT u.backfill_id, u.chunk_no, u.series_id, ${ms('u.range_start')} AS s, ${ms('u.range_end')} AS e, u.attempts,
            s.exchange, s.symbol, s.interval
     FROM u JOIN series s ON s.id = u.series_id`,
    [workerId, leaseMs, backfillId ?? null],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    backfillId: Number(r.backfill_id),
    chunkNo: r.chunk_no,
    seriesId: r.series_id,
    start: Number(r.s),
    end: Number(r.e),
    attempts: r.attempts,
    series: { exchange: r.exchange, symbol: r.symbol, interval: r.interval },
  };
}

async function completeChunk(db: Queryable, chunk: Chunk, workerId: string, candles: number): Promise<boolean> {
  // Only while the claim is still ours; if the lease ran out and another worker took the chunk, it
  // finishes it (the rows written here are identical, so nothing is lost either way).
  const { rowCount } = await db.query(
    `UPDATE backfill_chunks SET status = 'done', finished_at = now(), candles = $4, lease_until = NULL, last_error = NULL
     WHERE backfill_id = $1 AND chunk_no = $2 AND claimed_by = $3 AND status = 'claimed'`,
    [chunk.backfillId, chunk.chunkNo, workerId, candles],
  );
  return (rowCount ?? 0) > 0;
}

async function releaseChunk(
  db: Queryable,
  chunk: Chunk,
  workerId: string,
  o: { failed: boolean; fatal: boolean; retryInMs: number; refund: number; error: string },
): Promise<void> {
  // A retry stays `claimed` with nobody's name on it until the back-off ends: the claim query
  // already treats an expired lease as claimable, so no extra state is needed.
  await db.query(
    `UPDATE backfill_chunks
     SET status = CASE WHEN $4 THEN 'failed' ELSE 'claimed' END,
         claimed_by = NULL,
         lease_until = CASE WHEN $4 THEN NULL ELSE now() + $5 * interval '1 millisecond' END,
         finished_at = CASE WHEN $4 THEN now() END,
         attempts = attempts - $6,
         last_error = $7
     WHERE backfill_id = $1 AND chunk_no = $2 AND claimed_by = $3 AND status = 'claimed'`,
    [chunk.backfillId, chunk.chunkNo, workerId, o.failed, Math.round(o.retryInMs), o.refund, o.error.slice(0, 2000)],
  );
  if (o.fatal) {
    // Every chunk would fail the same way (unknown symbol, interval not offered): stop the lot.
    await db.query(
      `UPDATE backfill_chunks SET status = 'failed', finished_at = now(), last_error = $2, lease_until = NULL
       WHERE backfill_id = $1 AND status IN ('pending', 'claimed')`,
      [chunk.backfillId, o.error.slice(0, 2000)],
    );
  }
}

/** Settles the backfill's status once no chunk is pending or claimed. */
export async function finalizeBackfill(db: Queryable, backfillId: number): Promise<void> {
  await db.query(
    `UPDATE backfills b SET
       status = CASE WHEN x.failed > 0 THEN 'failed' WHEN b.unsupported_end IS NOT NULL THEN 'unsupported' ELSE 'done' END,
       status_message = CASE WHEN x.failed > 0
                             THEN concat_ws('; ', x.failed || ' of ' || x.total || ' chunk(s) failed: ' || x.err, b.status_message)
                             ELSE b.status_message END,
       finished_at = now()
     FROM (SELECT count(*) FILTER (WHERE status = 'failed') AS failed,
                  count(*) FILTER (WHERE status IN ('pending', 'claimed')) AS open,
                  count(*) AS total,
                  max(last_error) FILTER (WHERE status = 'failed') AS err
           FROM backfill_chunks WHERE backfill_id = $1) x
     WHERE b.id = $1 AND x.open = 0 AND b.status IN ('planned', 'running')`,
    [backfillId],
  );
}
