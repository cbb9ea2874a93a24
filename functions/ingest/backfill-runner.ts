import { setTimeout as defaultSleep } from 'node:timers/promises';
import { flushBudget } from '../exchanges/access.ts';
import { finalizeBackfill, nextClaimableIn } from '../store/backfills.ts';
import { getBackfillProgress, type BackfillProgress } from './backfill-progress.ts';
import { runBackfillWorker, type ChunkEvent, type WorkerDeps } from './backfill-worker.ts';

const TERMINAL = new Set(['done', 'failed', 'unsupported', 'cancelled']);

export interface LocalRunOptions {
  workers?: number;
  /** Called after every chunk and at least every `progressEveryMs`. */
  onProgress?: (p: BackfillProgress) => void;
  progressEveryMs?: number;
  /** Every chunk outcome, retries and failures included. */
  onChunk?: (event: ChunkEvent) => void;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs one backfill to its end in this process: `workers` claim loops side by side (the same code a
 * worker Lambda runs), and waits out back-offs and leases of dead claims until no chunk is open.
 */
export async function runBackfillLocally(
  backfillId: number,
  deps: Omit<WorkerDeps, 'workerId' | 'backfillId' | 'onChunk'> & { workerId?: string },
  options: LocalRunOptions = {},
): Promise<BackfillProgress> {
  const sleep = options.sleep ?? defaultSleep;
  let lastReport = 0;
  const report = async (force = false) => {
    if (!options.onProgress) return;
    const now = Date.now();
    if (!force && now - lastReport < (options.progressEveryMs ?? 1_000)) return;
    lastReport = now;
    const p = await getBackfillProgress(deps.db, backfillId);
    if (p) options.onProgress(p);
  };
  try {
    return await runRounds(backfillId, deps, options, report, sleep);
  } finally {
    // Settles the budget still holds in its queue go out with the run, as a worker Lambda's before it returns.
    await flushBudget(deps.access);
  }
}

async function runRounds(
  backfillId: number,
  deps: Omit<WorkerDeps, 'workerId' | 'backfillId' | 'onChunk'> & { workerId?: string },
  options: LocalRunOptions,
  report: (force?: boolean) => Promise<void>,
  sleep: (ms: number) => Promise<unknown>,
): Promise<BackfillProgress> {
  const base = deps.workerId ?? `local-${process.pid}`;
  for (let round = 1; ; round++) {
    const progress = await getBackfillProgress(deps.db, backfillId);
    if (!progress) throw new Error(`no backfill ${backfillId}`);
    if (TERMINAL.has(progress.status)) {
      options.onProgress?.(progress);
      return progress;
    }
    const onChunk = (e: ChunkEvent) => {
      options.onChunk?.(e);
      void report().catch(() => {});
    };
    await Promise.all(
      Array.from({ length: Math.max(1, options.workers ?? 2) }, (_, i) =>
        runBackfillWorker({ ...deps, workerId: `${base}-${round}-${i + 1}`, backfillId, onChunk }),
      ),
    );
    const wait = await nextClaimableIn(deps.db, backfillId);
    // No open chunk but not settled: a worker died between finishing its chunk and settling.
    if (wait === undefined) await finalizeBackfill(deps.db, backfillId);
    else if (wait > 0) {
      await report(true);
      await sleep(Math.min(wait + 50, 60_000));
    }
  }
}
