import type { Exchange } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';
import type { Queryable } from '../store/db.ts';
import type { BackfillStatus } from './backfill-planner.ts';
import { ms } from '../store/sql.ts';

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

const SELECT = `
SELECT b.id, s.exchange, s.symbol, s.interval, b.status, b.status_message, b.requested_by,
       ${ms('b.range_start')} AS range_start, ${ms('b.range_end')} AS range_end, ${ms('b.requested_at')} AS requested_at,
       ${ms('b.started_at')} AS started_at, ${ms('b.finished_at')} AS finished_at, ${ms('b.listed_at')} AS listed_at,
       ${ms('now()')} AS db_now,
       count(c.chunk_no)::int AS total,
       (count(*) FILTER (WHERE c.status = 'done'))::int AS done,
       (count(*) FILTER (WHERE c.status = 'failed'))::int AS failed,
       (count(*) FILTER (WHERE c.status = 'claimed' AND c.claimed_by IS NOT NULL AND c.lease_until > now()))::int AS in_progress,
       coalesce(sum(c.candles) FILTER (WHERE c.status = 'done'), 0)::bigint AS candles
FROM backfills b
JOIN series s ON s.id = b.series_id
LEFT JOIN backfill_chunks c ON c.backfill_id = b.id`;

interface Row {
  id: string;
  exchange: Exchange;
  symbol: string;
  interval: Interval;
  status: BackfillStatus;
  status_message: string | null;
  requested_by: string | null;
  range_start: number;
  range_end: number;
  requested_at: number;
  started_at: number | null;
  finished_at: number | null;
  listed_at: number | null;
  db_now: number;
  total: number;
  done: number;
  failed: number;
  in_progress: number;
  candles: string;
}

const isoOrNull = (t: number | null) => (t === null ? null : new Date(Number(t)).toISOString());

function toProgress(r: Row): BackfillProgress {
  const open = r.total - r.done - r.failed;
  const active = r.status === 'planned' || r.status === 'running';
  let etaSeconds: number | null = null;
  if (active && r.done > 0 && r.started_at !== null) {
    const elapsed = (Number(r.db_now) - Number(r.started_at)) / 1000;
    etaSeconds = Math.round((elapsed / r.done) * open);
  }
  return {
    id: Number(r.id),
    exchange: r.exchange,
    symbol: r.symbol,
    interval: r.interval,
    from: new Date(Number(r.range_start)).toISOString(),
    to: new Date(Number(r.range_end)).toISOString(),
    status: r.status,
    message: r.status_message,
    requestedBy: r.requested_by,
    requestedAt: new Date(Number(r.requested_at)).toISOString(),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
    listedAt: isoOrNull(r.listed_at),
    chunks: { total: r.total, done: r.done, failed: r.failed, inProgress: r.in_progress, pending: open - r.in_progress },
    candlesWritten: Number(r.candles),
    fraction: r.total === 0 ? (active ? 0 : 1) : r.done / r.total,
    etaSeconds,
    eta: etaSeconds === null ? null : new Date(Number(r.db_now) + etaSeconds * 1000).toISOString(),
  };
}

/** One backfill's progress from the ledger: chunks done / total, candles written, ETA. */
export async function getBackfillProgress(db: Queryable, id: number): Promise<BackfillProgress | undefined> {
  const { rows } = await db.query<Row>(`${SELECT} WHERE b.id = $1 GROUP BY b.id, s.id`, [id]);
  return rows[0] ? toProgress(rows[0]) : undefined;
}

/** The newest backfills, optionally of one series. */
export async function listBackfills(
  db: Queryable,
  filter: { exchange?: Exchange; symbol?: string; interval?: Interval; limit?: number } = {},
): Promise<BackfillProgress[]> {
  const { rows } = await db.query<Row>(
    `${SELECT}
     WHERE ($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)
     GROUP BY b.id, s.id ORDER BY b.id DESC LIMIT $4`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null, filter.limit ?? 20],
  );
  return rows.map(toProgress);
}
