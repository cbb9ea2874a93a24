import type { Exchange, SeriesKey } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';
import type { Range } from '../ingest/ranges.ts';
import type { Queryable } from './db.ts';
import { bigintArray, ms, ts } from './sql.ts';

// The backfill ledger: `backfills` holds one row per request, `backfill_chunks` its pieces, each
// claimed by one worker at a time under a lease.

export type BackfillStatus = 'planned' | 'running' | 'done' | 'failed' | 'unsupported' | 'cancelled';

export interface NewBackfill {
  seriesId: number;
  range: Range;
  status: BackfillStatus;
  message: string | undefined;
  requestedBy: string | undefined;
  requestId: string | undefined;
  listedAt: number | undefined;
  unsupportedEnd: number | undefined;
  chunks: Range[];
}

/** Inserts a backfill with its chunks; undefined when a backfill with the same request id exists. */
export async function insertBackfill(db: Queryable, b: NewBackfill): Promise<number | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `WITH b AS (
       INSERT INTO backfills (series_id, range_start, range_end, status, status_message, requested_by, request_id,
                              listed_at, unsupported_end, finished_at)
       VALUES ($1, ${ts('$2')}, ${ts('$3')}, $4, $5, $6, $7, ${ts('$8')}, ${ts('$9')},
               CASE WHEN $4 IN ('planned', 'running') THEN NULL ELSE now() END)
       ON CONFLICT (request_id) DO NOTHING
       RETURNING id
     ), c AS (
       INSERT INTO backfill_chunks (backfill_id, chunk_no, series_id, range_start, range_end)
       SELECT b.id, u.n, $1, ${ts('u.s')}, ${ts('u.e')}
       FROM b, unnest($10::bigint[], $11::bigint[]) WITH ORDINALITY AS u(s, e, n)
     )
     SELECT id FROM b`,
    [
      b.seriesId, b.range.start, b.range.end, b.status, b.message ?? null, b.requestedBy ?? null, b.requestId ?? null,
      b.listedAt ?? null, b.unsupportedEnd ?? null,
      bigintArray(b.chunks.map((c) => c.start)), bigintArray(b.chunks.map((c) => c.end)),
    ],
  );
  const id = rows[0]?.id;
  return id === undefined ? undefined : Number(id);
}

export interface PlannedBackfill {
  backfillId: number;
  status: BackfillStatus;
  chunks: number;
  message: string | undefined;
}

export async function findBackfillByRequestId(db: Queryable, requestId: string): Promise<PlannedBackfill | undefined> {
  const { rows } = await db.query<{ id: string; status: BackfillStatus; status_message: string | null; chunks: number }>(
    `SELECT b.id, b.status, b.status_message, (SELECT count(*)::int FROM backfill_chunks c WHERE c.backfill_id = b.id) AS chunks
     FROM backfills b WHERE b.request_id = $1`,
    [requestId],
  );
  const r = rows[0];
  return r ? { backfillId: Number(r.id), status: r.status, chunks: r.chunks, message: r.status_message ?? undefined } : undefined;
}

/** Ranges of a series that chunks of active backfills (pending or claimed) hold within `within`. */
export async function activeChunkRanges(db: Queryable, seriesId: number, within: Range): Promise<Range[]> {
  const { rows } = await db.query<{ s: number; e: number }>(
    `SELECT ${ms('range_start')} AS s, ${ms('range_end')} AS e FROM backfill_chunks
     WHERE series_id = $1 AND status IN ('pending', 'claimed') AND range_start < ${ts('$3')} AND range_end > ${ts('$2')}`,
    [seriesId, within.start, within.end],
  );
  return rows.map((r) => ({ start: Number(r.s), end: Number(r.e) }));
}

export interface BackfillChunk extends Range {
  backfillId: number;
  chunkNo: number;
  seriesId: number;
  series: SeriesKey;
  attempts: number;
}

/**
 * Claims the next claimable chunk (pending, or claimed with an expired lease) and marks its backfill
 * running. `FOR UPDATE SKIP LOCKED`, so concurrent workers never share one.
 */
export async function claimChunk(db: Queryable, workerId: string, leaseMs: number, backfillId?: number): Promise<BackfillChunk | undefined> {
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

/** Marks a chunk done, only while the claim is still `workerId`'s; false when it was not. */
export async function completeChunk(db: Queryable, chunk: BackfillChunk, workerId: string, candles: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE backfill_chunks SET status = 'done', finished_at = now(), candles = $4, lease_until = NULL, last_error = NULL
     WHERE backfill_id = $1 AND chunk_no = $2 AND claimed_by = $3 AND status = 'claimed'`,
    [chunk.backfillId, chunk.chunkNo, workerId, candles],
  );
  return (rowCount ?? 0) > 0;
}

export interface Release {
  /** Failed for good; otherwise claimable again after `retryInMs`. */
  failed: boolean;
  retryInMs: number;
  /** Attempts given back (1 when the failure was not the chunk's fault). */
  refund: number;
  error: string;
}

/** Gives up `workerId`'s claim on a chunk after an error, failing it or letting it be retried after a back-off. */
export async function releaseChunk(db: Queryable, chunk: BackfillChunk, workerId: string, o: Release): Promise<void> {
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
}

/** Fails every chunk of a backfill still pending or claimed. */
export async function failOpenChunks(db: Queryable, backfillId: number, error: string): Promise<void> {
  await db.query(
    `UPDATE backfill_chunks SET status = 'failed', finished_at = now(), last_error = $2, lease_until = NULL
     WHERE backfill_id = $1 AND status IN ('pending', 'claimed')`,
    [backfillId, error.slice(0, 2000)],
  );
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

/**
 * Milliseconds until some chunk of an active backfill can be claimed: 0 when one is pending now, the
 * time to the earliest lease or back-off end when all open chunks are held, undefined when none is open.
 */
export async function nextClaimableIn(db: Queryable, backfillId?: number): Promise<number | undefined> {
  const { rows } = await db.query<{ pending: number; wait: number | null }>(
    `SELECT (count(*) FILTER (WHERE status = 'pending' OR lease_until <= now()))::int AS pending,
            greatest(0, ${ms('min(lease_until)')} - ${ms('now()')}) AS wait
     FROM backfill_chunks WHERE status IN ('pending', 'claimed') AND ($1::bigint IS NULL OR backfill_id = $1::bigint)`,
    [backfillId ?? null],
  );
  const r = rows[0];
  if (!r || (r.pending === 0 && r.wait === null)) return undefined;
  return r.pending > 0 ? 0 : Number(r.wait);
}

/** A backfill as the ledger holds it, with its chunks counted; times in epoch ms. */
export interface BackfillRecord {
  id: number;
  series: SeriesKey;
  range: Range;
  status: BackfillStatus;
  message: string | null;
  requestedBy: string | null;
  requestedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  listedAt: number | null;
  /** The database's clock when read, so durations do not mix two clocks. */
  readAt: number;
  chunks: { total: number; done: number; failed: number; inProgress: number };
  /** Candles written by the finished chunks. */
  candles: number;
}

const SELECT_RECORD = `
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

interface RecordRow {
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

const numberOrNull = (t: number | null) => (t === null ? null : Number(t));

function toRecord(r: RecordRow): BackfillRecord {
  return {
    id: Number(r.id),
    series: { exchange: r.exchange, symbol: r.symbol, interval: r.interval },
    range: { start: Number(r.range_start), end: Number(r.range_end) },
    status: r.status,
    message: r.status_message,
    requestedBy: r.requested_by,
    requestedAt: Number(r.requested_at),
    startedAt: numberOrNull(r.started_at),
    finishedAt: numberOrNull(r.finished_at),
    listedAt: numberOrNull(r.listed_at),
    readAt: Number(r.db_now),
    chunks: { total: r.total, done: r.done, failed: r.failed, inProgress: r.in_progress },
    candles: Number(r.candles),
  };
}

export async function readBackfill(db: Queryable, id: number): Promise<BackfillRecord | undefined> {
  const { rows } = await db.query<RecordRow>(`${SELECT_RECORD} WHERE b.id = $1 GROUP BY b.id, s.id`, [id]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export interface BackfillFilter {
  exchange?: Exchange | undefined;
  symbol?: string | undefined;
  interval?: Interval | undefined;
  /** Only backfills in one of these states. */
  status?: readonly BackfillStatus[] | undefined;
  /** Only backfills older than this id (the next page of a newest-first list). */
  beforeId?: number | undefined;
  limit?: number | undefined;
}

/** The newest backfills, optionally of one series or in some states; 20 unless `limit` says otherwise. */
export async function readBackfills(db: Queryable, filter: BackfillFilter = {}): Promise<BackfillRecord[]> {
  const { rows } = await db.query<RecordRow>(
    `${SELECT_RECORD}
     WHERE ($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)
       AND ($5::text[] IS NULL OR b.status = ANY($5::text[])) AND ($6::bigint IS NULL OR b.id < $6::bigint)
     GROUP BY b.id, s.id ORDER BY b.id DESC LIMIT $4`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null, filter.limit ?? 20, filter.status ? [...filter.status] : null, filter.beforeId ?? null],
  );
  return rows.map(toRecord);
}

/** Chunks still to fetch or being fetched, across every backfill (a local run resumes them at start). */
export async function countOpenChunks(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM backfill_chunks WHERE status IN ('pending', 'claimed')");
  return rows[0]?.n ?? 0;
}

export interface ActiveBackfills {
  /** Backfills planned or running. */
  active: number;
  /** Their chunks done, of total. */
  done: number;
  total: number;
}

export async function readActiveBackfills(db: Queryable): Promise<ActiveBackfills> {
  const { rows } = await db.query<ActiveBackfills>(
    `SELECT count(*) FILTER (WHERE b.status IN ('planned', 'running'))::int AS active,
            (SELECT count(*) FROM backfill_chunks k JOIN backfills b2 ON b2.id = k.backfill_id
             WHERE b2.status IN ('planned', 'running') AND k.status = 'done')::int AS done,
            (SELECT count(*) FROM backfill_chunks k JOIN backfills b2 ON b2.id = k.backfill_id
             WHERE b2.status IN ('planned', 'running'))::int AS total
     FROM backfills b`,
  );
  return rows[0] ?? { active: 0, done: 0, total: 0 };
}

/** Namespace of the planning advisory locks (the second key is the series), apart from the migration runner's. */
const PLANNING_LOCK_NAMESPACE = 0x636b_706c; // "ckpl"

/**
 * Waits until no other transaction plans a backfill of this series, then holds that turn until
 * the caller's transaction ends. Planners are not limited to one at a time by the platform (a
 * reservation would be refused on small accounts), so this is what keeps two plans of one series
 * from claiming the same range.
 */
export async function lockSeriesPlanning(tx: Queryable, series: SeriesKey, waitMs: number): Promise<void> {
  // A planner that cannot have its turn in time fails (and is retried) instead of timing out holding a connection.
  await tx.query("SELECT set_config('lock_timeout', $1, true)", [`${Math.max(1, Math.round(waitMs))}ms`]);
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PLANNING_LOCK_NAMESPACE, `${series.exchange}:${series.symbol}:${series.interval}`]);
}
