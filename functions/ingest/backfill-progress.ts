import type { Exchange } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';
import { readBackfill, readBackfills, type BackfillFilter, type BackfillRecord, type BackfillStatus } from '../store/backfills.ts';
import type { Queryable } from '../store/db.ts';
import { iso } from './ranges.ts';

export interface BackfillProgress {
  id: number;
  exchange: Exchange;
  symbol: string;
  interval: Interval;
  from: string;
  to: string;
  status: BackfillStatus;
  message: string | null;
  requestedBy: string | null;
  requestedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** No candle opens before this at the exchange (found by the planner; the history starts here or within one page after). */
  listedAt: string | null;
  chunks: { total: number; done: number; failed: number; inProgress: number; pending: number };
  candlesWritten: number;
  /** Share of chunks finished, 0..1 (1 for a backfill that needed none). */
  fraction: number;
  /** Seconds until the remaining chunks are done at the pace so far; null before the first chunk finishes or after the end. */
  etaSeconds: number | null;
  eta: string | null;
}

const isoOrNull = (t: number | null) => (t === null ? null : iso(t));

function toProgress(b: BackfillRecord): BackfillProgress {
  const { total, done, failed, inProgress } = b.chunks;
  const open = total - done - failed;
  const active = b.status === 'planned' || b.status === 'running';
  let etaSeconds: number | null = null;
  if (active && done > 0 && b.startedAt !== null) {
    const elapsed = (b.readAt - b.startedAt) / 1000;
    etaSeconds = Math.round((elapsed / done) * open);
  }
  return {
    id: b.id,
    exchange: b.series.exchange,
    symbol: b.series.symbol,
    interval: b.series.interval,
    from: iso(b.range.start),
    to: iso(b.range.end),
    status: b.status,
    message: b.message,
    requestedBy: b.requestedBy,
    requestedAt: iso(b.requestedAt),
    startedAt: isoOrNull(b.startedAt),
    finishedAt: isoOrNull(b.finishedAt),
    listedAt: isoOrNull(b.listedAt),
    chunks: { total, done, failed, inProgress, pending: open - inProgress },
    candlesWritten: b.candles,
    fraction: total === 0 ? (active ? 0 : 1) : done / total,
    etaSeconds,
    eta: etaSeconds === null ? null : iso(b.readAt + etaSeconds * 1000),
  };
}

/** One backfill's progress from the ledger: chunks done / total, candles written, ETA. */
export async function getBackfillProgress(db: Queryable, id: number): Promise<BackfillProgress | undefined> {
  const record = await readBackfill(db, id);
  return record ? toProgress(record) : undefined;
}

/** The newest backfills, optionally of one series. */
export async function listBackfills(db: Queryable, filter: BackfillFilter = {}): Promise<BackfillProgress[]> {
  return (await readBackfills(db, filter)).map(toProgress);
}
