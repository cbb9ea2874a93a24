import { bucketStart, INTERVAL_MS } from '../candles/intervals.ts';
import { BadRequestError, BannedError, BodyTooLargeError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from '../exchanges/errors.ts';
import { fetchRange } from '../exchanges/index.ts';
import {
  claimChunk,
  completeChunk,
  failOpenChunks,
  finalizeBackfill,
  releaseChunk,
  type BackfillChunk,
} from '../store/backfills.ts';
import type { Queryable } from '../store/db.ts';
import type { CandleSink } from './candle-sink.ts';
import { pageDeps, type ExchangeAccess } from '../exchanges/access.ts';
import { adapterFor, servableFrom } from './servable.ts';

export const DEFAULT_LEASE_MS = 2 * 60_000;
export const DEFAULT_MAX_ATTEMPTS = 5;

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
  | { kind: 'done'; chunk: BackfillChunk; candles: number; pages: number }
  | { kind: 'retry' | 'failed'; chunk: BackfillChunk; error: Error };

export interface WorkerResult {
  chunks: number;
  candles: number;
  pages: number;
  failures: number;
  stoppedBy: 'no-work' | 'deadline';
}

/**
 * Claims chunks one at a time (concurrent workers never share one: see `claimChunk`) and
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

async function processChunk(chunk: BackfillChunk, deps: WorkerDeps): Promise<Outcome> {
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
    // The range asked travels with the candles and the writer records it in the ledger when it
    // stores them: a message lost before that leaves the range missing, so a later backfill or
    // `gaps --backfill` fetches it again instead of reading it as confirmed empty.
    const coverageStart = Math.min(end, Math.max(chunk.start, servableFrom(adapter, chunk.series.interval, now)));
    await deps.sink.write(chunk.series, candles, now, { start: coverageStart, end });
    deps.signal?.throwIfAborted();
    // Only while the claim is still ours; if the lease ran out and another worker took the chunk, it
    // finishes it (the rows written here are identical, so nothing is lost either way).
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
    // Arguments the exchange refuses, or an answer past the size limit, come back the same on a retry.
    const hopeless = error instanceof BadRequestError || error instanceof BodyTooLargeError;
    const failed = fatal || hopeless || (refund === 0 && chunk.attempts >= maxAttempts);
    await releaseChunk(deps.db, chunk, deps.workerId, { failed, retryInMs, refund, error: error.message });
    // Every chunk would fail the same way (unknown symbol, interval not offered): stop the lot.
    if (fatal) await failOpenChunks(deps.db, chunk.backfillId, error.message);
    await finalizeBackfill(deps.db, chunk.backfillId);
    deps.onChunk?.({ kind: failed ? 'failed' : 'retry', chunk, error });
    return { ok: false };
  }
}
