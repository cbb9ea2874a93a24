import type { Exchange, SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { inTransaction, type Db, type Queryable } from './db.ts';
import { rolledUpWindow, rollupsOf } from './rollups.ts';
import { ms, ts } from './sql.ts';

/*
 * Retention (migration 0013): a followed series keeps `retention_days` of candles (its own setting,
 * else its market's default; null keeps them forever). The retention job deletes what is older, in
 * bounded batches, and records in series_expiry how far it went, so gaps and backfills read the
 * deleted range as expired rather than missing.
 *
 * `candles` is partitioned by year across every series, so a series' old candles cannot go as a
 * partition: they go by primary-key range, a batch at a time, each batch its own short transaction.
 * A run's cost is bounded by its batch size and time budget, not by the table: whatever it leaves
 * is picked up by the next run.
 */

export const DAY_MS = 86_400_000;

/** The open time before which a series of `interval` keeping `days` days of candles holds none. */
export function retentionHorizon(days: number, interval: Interval, now: number): number {
  return bucketStart(now - days * DAY_MS, interval);
}

/** What retention means for one series now. */
export interface SeriesExpiry {
  /** The retention in force (days), null when the series keeps its candles forever or is not followed. */
  retentionDays: number | null;
  /** Candles before this open time are expired: deleted already, or due to be. Undefined: nothing is. */
  horizon: number | undefined;
  /** The oldest candle the job ever deleted, undefined when it deleted none. */
  firstExpired: number | undefined;
}

/** The retention in force for a series and how far its candles are expired, as of `now`. */
export async function seriesExpiry(db: Queryable, seriesId: number, interval: Interval, now: number): Promise<SeriesExpiry> {
  const { rows } = await db.query<{ days: number | null; first_expired: number | null; expired_before: number | null }>(
    `SELECT (SELECT CASE WHEN f.retention_own THEN f.retention_days ELSE m.retention_days END
             FROM market_series f JOIN markets m ON m.exchange = f.exchange AND m.symbol = f.symbol
             WHERE f.series_id = $1 AND m.removed_at IS NULL) AS days,
            ${ms('e.first_expired')} AS first_expired, ${ms('e.expired_before')} AS expired_before
     FROM (SELECT 1) AS one LEFT JOIN series_expiry e ON e.series_id = $1`,
    [seriesId],
  );
  const r = rows[0];
  const days = r?.days ?? null;
  const recorded = r?.expired_before === null || r?.expired_before === undefined ? undefined : Number(r.expired_before);
  const live = days === null ? undefined : retentionHorizon(days, interval, now);
  const horizon = recorded === undefined ? live : live === undefined ? recorded : Math.max(recorded, live);
  return {
    retentionDays: days,
    horizon,
    firstExpired: r?.first_expired === null || r?.first_expired === undefined ? undefined : Number(r.first_expired),
  };
}

/**
 * Where retention has cut a series (every candle before it deleted) when it cut past `start` after
 * `since` (ISO): what a check of data read before `since` needs to blame retention. Undefined: it
 * has not.
 */
export async function expiredSince(db: Queryable, seriesId: number, start: number, since: string): Promise<number | undefined> {
  const { rows } = await db.query<{ before: number }>(
    `SELECT ${ms('expired_before')} AS before FROM series_expiry
     WHERE series_id = $1 AND expired_before > ${ts('$2')} AND updated_at > $3::timestamptz`,
    [seriesId, start, since],
  );
  return rows[0] ? Number(rows[0].before) : undefined;
}

/** The open time of the oldest candle a series stores now, from its summary row (one probe). */
export async function firstStored(db: Queryable, seriesId: number): Promise<number | undefined> {
  const { rows } = await db.query<{ t: number | null }>(`SELECT ${ms('first_open')} AS t FROM series_stats WHERE series_id = $1`, [seriesId]);
  const t = rows[0]?.t;
  return t === null || t === undefined ? undefined : Number(t);
}

/** One followed series whose retention is not forever. */
interface RetainedSeries {
  seriesId: number;
  series: SeriesKey;
  retentionDays: number;
  horizon: number;
  firstOpen: number | undefined;
  lastOpen: number | undefined;
  /**
   * Where this run's previous batch of the series cut: the next batch reads from there, not from
   * the start of the series, so it does not step over the index entries of the rows this run has
   * deleted (dead until vacuumed) and a batch costs the same at the end of a run as at its start.
   */
  from?: number;
}

async function retainedSeries(db: Queryable, now: number): Promise<RetainedSeries[]> {
  const { rows } = await db.query<{
    id: number;
    exchange: Exchange;
    symbol: string;
    interval: Interval;
    days: number;
    first_open: number | null;
    last_open: number | null;
  }>(
    `SELECT s.id, s.exchange, s.symbol, s.interval, d.days, ${ms('x.first_open')} AS first_open, ${ms('x.last_open')} AS last_open
     FROM market_series f
     JOIN markets m ON m.exchange = f.exchange AND m.symbol = f.symbol
     JOIN series s ON s.id = f.series_id
     LEFT JOIN series_stats x ON x.series_id = s.id
     CROSS JOIN LATERAL (SELECT CASE WHEN f.retention_own THEN f.retention_days ELSE m.retention_days END AS days) d
     WHERE m.removed_at IS NULL AND d.days IS NOT NULL
     ORDER BY s.id`,
  );
  return rows.map((r) => ({
    seriesId: r.id,
    series: { exchange: r.exchange, symbol: r.symbol, interval: r.interval },
    retentionDays: r.days,
    horizon: retentionHorizon(r.days, r.interval, now),
    firstOpen: r.first_open === null ? undefined : Number(r.first_open),
    lastOpen: r.last_open === null ? undefined : Number(r.last_open),
  }));
}

export interface RetentionOptions {
  /** The time retention is measured from (ms). */
  now: number;
  /** Candles one batch deletes at most (one short transaction each). Default 10,000. */
  batchSize?: number;
  /** A run starts no batch after this many ms. Default 60 s. */
  budgetMs?: number;
  /** The clock the budget is measured with (injected by tests). Default Date.now. */
  clock?: () => number;
  /** Report what is due without deleting anything. */
  dryRun?: boolean;
}

export interface SeriesRetentionResult extends SeriesKey {
  seriesId: number;
  retentionDays: number;
  /** Candles before this open time are expired. */
  horizon: number;
  /** Candles deleted by this run (for a dry run: counted as due, at most `batchSize` + 1 are counted per series). */
  deleted: number;
  /** Candles before the horizon are left for the next run (the budget ran out, or a dry run counted no further). */
  pending: boolean;
}

export interface RetentionReport {
  now: number;
  dryRun: boolean;
  /** True when every series holds nothing before its horizon any more. */
  complete: boolean;
  batches: number;
  deleted: number;
  /** Every followed series with candles before its horizon when the run started. */
  series: SeriesRetentionResult[];
}

export const DEFAULT_RETENTION_BATCH = 10_000;
export const DEFAULT_RETENTION_BUDGET_MS = 60_000;

/**
 * Deletes the candles of every followed series that are older than its retention, in batches of at
 * most `batchSize` candles, round-robin over the series (one batch each per round) so a series with
 * years to expire does not hold back the others, until nothing is due or `budgetMs` is spent.
 *
 * Per batch, the delete, the trimmed coverage ledger (no range claims a candle no longer stored),
 * the dropped restatements and optional fields, the rollup buckets (1h, 4h, 1d, 1w) wholly before
 * the cut and the series' expiry record commit together; the series_stats triggers keep the count,
 * extent and gaps of the series true. A rollup bucket the cut falls inside is built and kept from
 * all its candles before the delete, and served as kept from then on (see rollups.ts).
 */
export async function applyRetention(db: Db, opts: RetentionOptions): Promise<RetentionReport> {
  const clock = opts.clock ?? Date.now;
  const started = clock();
  const batchSize = opts.batchSize ?? DEFAULT_RETENTION_BATCH;
  const budgetMs = opts.budgetMs ?? DEFAULT_RETENTION_BUDGET_MS;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const due = (await retainedSeries(db, opts.now)).filter((s) => s.firstOpen !== undefined && s.firstOpen < s.horizon);
  const results = due.map<SeriesRetentionResult>((s) => ({
    ...s.series,
    seriesId: s.seriesId,
    retentionDays: s.retentionDays,
    horizon: s.horizon,
    deleted: 0,
    pending: true,
  }));
  let batches = 0;

  if (opts.dryRun) {
    for (const [i, s] of due.entries()) {
      // Counted up to one batch past the batch size: a count of everything due would read the whole expired range.
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (SELECT 1 FROM candles WHERE series_id = $1 AND open_time < ${ts('$2')} ORDER BY open_time LIMIT $3) c`,
        [s.seriesId, s.horizon, batchSize + 1],
      );
      const n = rows[0]?.n ?? 0;
      results[i]!.deleted = Math.min(n, batchSize);
      results[i]!.pending = n > batchSize;
    }
    return report(opts, results, batches);
  }

  let pending = due.map((_, i) => i);
  while (pending.length > 0 && clock() - started < budgetMs) {
    const next: number[] = [];
    for (const i of pending) {
      if (clock() - started >= budgetMs) {
        next.push(i);
        continue;
      }
      const done = await expireBatch(db, due[i]!, batchSize);
      batches += 1;
      results[i]!.deleted += done.deleted;
      if (done.more) next.push(i);
      else results[i]!.pending = false;
    }
    pending = next;
  }
  return report(opts, results, batches);
}

function report(opts: RetentionOptions, series: SeriesRetentionResult[], batches: number): RetentionReport {
  return {
    now: opts.now,
    dryRun: opts.dryRun ?? false,
    complete: series.every((s) => !s.pending),
    batches,
    deleted: series.reduce((n, s) => n + s.deleted, 0),
    series,
  };
}

/**
 * One batch of one series: the oldest candles up to `batchSize` of them, and no further than
 * `batchSize` buckets of time (so the rollups built first cover a bounded span, however sparse the
 * series), never at or past the horizon. `more`: candles before the horizon remain.
 */
async function expireBatch(db: Db, s: RetainedSeries, batchSize: number): Promise<{ deleted: number; more: boolean }> {
  const step = INTERVAL_MS[s.series.interval];
  const { rows } = await db.query<{ first: number | null; next: number | null }>(
    `SELECT (SELECT ${ms('open_time')} FROM candles WHERE series_id = $1 AND open_time >= ${ts('$4')} ORDER BY open_time LIMIT 1) AS first,
            (SELECT ${ms('open_time')} FROM candles WHERE series_id = $1 AND open_time >= ${ts('$4')} AND open_time < ${ts('$2')}
             ORDER BY open_time OFFSET $3 LIMIT 1) AS next`,
    [s.seriesId, s.horizon, batchSize, s.from ?? MIN_TIME],
  );
  const first = rows[0]?.first === null || rows[0]?.first === undefined ? undefined : Number(rows[0].first);
  if (first === undefined || first >= s.horizon) return { deleted: 0, more: false };
  const next = rows[0]?.next === null || rows[0]?.next === undefined ? s.horizon : Number(rows[0].next);
  const cut = Math.min(next, s.horizon, first + batchSize * step);

  // The rollup bucket the cut falls inside is built and kept first, from all its candles: after the
  // cut only part of its source is left, and it is never rebuilt from that part (see rollups.ts).
  // Buckets wholly before the cut go with their candles below.
  const rollups = rollupsOf(s.series.interval);
  for (const interval of rollups) {
    const lo = bucketStart(cut, interval);
    if (lo === cut) continue;
    await rolledUpWindow(db, { seriesId: s.seriesId, interval, source: s.series.interval, lo, hi: lo + INTERVAL_MS[interval] }, s.lastOpen ?? cut - step);
  }

  const deleted = await inTransaction(db, async (tx) => {
    const { rows: gone } = await tx.query<{ n: string }>(
      `WITH gone AS (
         DELETE FROM candles WHERE series_id = $1 AND open_time >= ${ts('$2')} AND open_time < ${ts('$3')} RETURNING open_time
       ), trimmed AS (
         -- The ledger's range that straddles the cut keeps its part after it, claiming only the candles still there.
         UPDATE coverage v SET range_start = ${ts('$3')},
                candles = greatest(0, v.candles - (SELECT count(*) FROM gone g WHERE g.open_time >= v.range_start))
         WHERE v.series_id = $1 AND v.range_start < ${ts('$3')} AND v.range_end > ${ts('$3')}
       ), dropped AS (
         DELETE FROM coverage WHERE series_id = $1 AND range_end <= ${ts('$3')}
       ), restatements AS (
         DELETE FROM candle_restatements WHERE series_id = $1 AND open_time < ${ts('$3')}
       ), extras AS (
         -- The optional fields (migration 0012) go with their candles.
         DELETE FROM candle_extras WHERE series_id = $1 AND open_time >= ${ts('$2')} AND open_time < ${ts('$3')}
       ), rollups AS (
         -- Rollup buckets wholly before the cut: their source is gone, and so are they.
         DELETE FROM candle_rollups r USING unnest($4::text[], $5::bigint[]) AS d(interval, step)
         WHERE r.series_id = $1 AND r.interval = d.interval AND r.open_time <= ${ts('$3')} - d.step * interval '1 millisecond'
       )
       SELECT count(*) AS n FROM gone`,
      [s.seriesId, first, cut, `{${rollups.join(',')}}`, `{${rollups.map((i) => INTERVAL_MS[i]).join(',')}}`],
    );
    const n = Number(gone[0]?.n ?? 0);
    await tx.query(
      `INSERT INTO series_expiry AS e (series_id, first_expired, expired_before, expired_candles)
       VALUES ($1, ${ts('$2')}, ${ts('$3')}, $4)
       ON CONFLICT (series_id) DO UPDATE SET
         first_expired = least(e.first_expired, excluded.first_expired),
         expired_before = greatest(e.expired_before, excluded.expired_before),
         expired_candles = e.expired_candles + excluded.expired_candles,
         updated_at = now()`,
      [s.seriesId, first, cut, n],
    );
    return n;
  });
  s.from = cut;
  return { deleted, more: cut < s.horizon };
}

/** Before any candle (the 1970s: candles start in 2000). */
const MIN_TIME = 0;
