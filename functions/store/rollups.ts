import { bucketStart, INTERVAL_MS, INTERVALS, type Interval } from '../candles/intervals.ts';
import { fromColumns, type CandleColumns, type StoredCandle } from './candle-columns.ts';
import type { Queryable } from './db.ts';
import { ms, ts } from './sql.ts';
import { candlesAt, type AsOf } from './as-of.ts';

/**
 * The intervals whose closed buckets are kept in `candle_rollups` when they are resampled. Finer
 * ones (15m, 30m) read at most 30 source candles per bucket, so a page of them is cheap to build
 * every time; 2h, 6h and 12h are asked for rarely enough not to cost every write a mark.
 */
export const ROLLUP_INTERVALS: readonly Interval[] = ['1h', '4h', '1d', '1w'];

/** The rollup intervals a stored series of `source` feeds: the coarser ones it divides. */
export function rollupsOf(source: Interval): Interval[] {
  const step = INTERVAL_MS[source];
  return ROLLUP_INTERVALS.filter((i) => INTERVAL_MS[i] > step && INTERVAL_MS[i] % step === 0);
}

/** True when buckets of `interval` read from `source` are kept as rollups. */
export const isRolledUp = (interval: Interval, source: Interval): boolean => rollupsOf(source).includes(interval);

// ---- the writer's side: marking what a write changes ----

/**
 * The rollup buckets that candles at `openTimes` of series `seriesId` (stored at `source`) fall in,
 * as the three array parameters `markChanged` reads, sorted so that two writers lock shared rows in
 * the same order. Undefined when the series feeds no rollup.
 */
export function changedBuckets(candles: Iterable<{ seriesId: number; source: Interval; openTime: number }>): [string, string, string] | undefined {
  const seen = new Set<string>();
  const out: [number, number, number][] = [];
  for (const c of candles) {
    for (const interval of rollupsOf(c.source)) {
      const t = bucketStart(c.openTime, interval);
      const ix = INTERVALS.indexOf(interval);
      const key = `${c.seriesId}|${ix}|${t}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push([c.seriesId, ix, t]);
    }
  }
  if (out.length === 0) return undefined;
  out.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return [`{${out.map((r) => r[0]).join(',')}}`, `{${out.map((r) => INTERVALS[r[1]]).join(',')}}`, `{${out.map((r) => r[2]).join(',')}}`];
}

/**
 * A `WITH` clause that marks rollup buckets changed, to put in front of the statement that writes
 * the candles (`$n`..`$n+2` are `changedBuckets`' arrays), so the mark commits exactly with them.
 * Every mark bumps `gen`, which voids any rollup of that bucket being computed at the same time.
 */
export const markChanged = (n: number): string => `WITH changed AS (
  INSERT INTO candle_rollups AS r (series_id, interval, open_time, gen, stale)
  SELECT d.series_id, d.interval, ${ts('d.t')}, 1, true
  FROM unnest($${n}::integer[], $${n + 1}::text[], $${n + 2}::bigint[]) AS d(series_id, interval, t)
  ON CONFLICT (series_id, interval, open_time) DO UPDATE SET gen = r.gen + 1, stale = true
)`;

// ---- the reader's side ----

/**
 * OHLCV of each bucket of `buckets` (a subquery with a `bucket` timestamptz column; its other
 * columns pass through as `g.*`) built from the stored candles of series `$1`: first open, max high,
 * min low, last close, summed volumes. Each bucket is aggregated by its own primary-key range scan
 * (a LATERAL per bucket): no sort or hash over the source rows, whose bucket count the planner
 * cannot estimate. The first and last candle are then read back by primary key for open and close.
 * A quote volume or trade count is given only when every source candle had one (a partial sum would
 * understate it). `closed` (the API's) holds when every source candle is closed and the bucket's
 * last one is stored; `all_closed` only the first half. A bucket without candles has n = 0.
 */
function bucketAggregates(buckets: string, bounds: [string, string], step: number, source: Interval, asOf?: AsOf): string {
  const candles = candlesAt(asOf);
  // The page's bounds, repeated beside each bucket's: the planner cannot see where a LATERAL's
  // bucket lies, but it can prune to the partitions these parameters name.
  const page = `open_time >= ${bounds[0]} AND open_time < ${bounds[1]}`;
  const stepSql = `interval '${step} milliseconds'`;
  const lastOffset = `interval '${step - INTERVAL_MS[source]} milliseconds'`;
  return `SELECT g.*, f.open, a.high, a.low, l.close, a.volume,
            CASE WHEN a.nq = a.n THEN a.quote_volume END AS quote_volume,
            CASE WHEN a.nt = a.n THEN a.trades END AS trades,
            a.all_closed AND a.last_t = g.bucket + ${lastOffset} AS closed,
            a.all_closed, a.last_t = g.bucket + ${lastOffset} AS has_last, a.n
     FROM (${buckets}) AS g
     CROSS JOIN LATERAL (
       SELECT min(open_time) AS first_t, max(open_time) AS last_t, max(high) AS high, min(low) AS low,
              sum(volume) AS volume, sum(quote_volume) AS quote_volume, count(quote_volume) AS nq,
              sum(trades) AS trades, count(trades) AS nt, bool_and(closed) AS all_closed, count(*)::int AS n
       FROM ${candles} WHERE series_id = $1 AND open_time >= g.bucket AND open_time < g.bucket + ${stepSql} AND ${page}
     ) a
     -- LIMIT 1 keeps these primary-key probes rather than joins against the whole series.
     LEFT JOIN LATERAL (SELECT open FROM ${candles} WHERE series_id = $1 AND open_time = a.first_t AND ${page} LIMIT 1) f ON true
     LEFT JOIN LATERAL (SELECT close FROM ${candles} WHERE series_id = $1 AND open_time = a.last_t AND ${page} LIMIT 1) l ON true`;
}

const OUT_COLUMNS = `${ms('bucket')}, open, high, low, close, volume, quote_volume, trades, closed, n`;

/** Buckets of `interval` with open time in [lo, hi) (aligned), built from series `seriesId`, stored at `source`. */
export interface ResampledPage {
  seriesId: number;
  interval: Interval;
  source: Interval;
  lo: number;
  hi: number;
}

/** The columns of `candles` without the optional fields: a resampled bucket has none (they are per stored candle). */
type BaseColumns = [number, string, string, string, string, string, string | null, string | null, boolean];
type Bucket = { candle: StoredCandle; sourceCandles: number };
const toBucket = (r: [...BaseColumns, number]): Bucket => ({
  candle: fromColumns([...(r.slice(0, 9) as BaseColumns), null, null, null] as CandleColumns),
  sourceCandles: r[9],
});

/**
 * OHLCV over whole buckets of `interval` in [lo, hi), built from the stored `source` candles of the
 * series every time (see `bucketAggregates`). Empty buckets are left out.
 */
export async function resampledWindow(db: Queryable, { seriesId, interval, source, lo, hi }: ResampledPage, asOf?: AsOf): Promise<Bucket[]> {
  const step = INTERVAL_MS[interval];
  const stepSql = `interval '${step} milliseconds'`;
  const { rows } = await db.query<[...BaseColumns, number]>({
    // LIMIT (the bucket count) tells the planner how many buckets there are; it assumes 1000 for
    // generate_series, and a plan costed that high is JIT-compiled first on a stock server.
    text: `SELECT ${OUT_COLUMNS} FROM (${bucketAggregates(
      `SELECT * FROM generate_series(${ts('$2')}, ${ts('$3')} - ${stepSql}, ${stepSql}) AS bucket LIMIT $4`,
      [ts('$2'), ts('$3')],
      step,
      source,
      asOf,
    )}) c WHERE n > 0 ORDER BY bucket`,
    values: [seriesId, lo, hi, Math.ceil((hi - lo) / step)],
    rowMode: 'array',
  });
  return rows.map(toBucket);
}

type RollupRow = [...BaseColumns, number, string, boolean];

/**
 * Open times of the first and last kept (not stale, not empty) rollup bucket of `interval` in
 * [lo, hi): two index probes. A resampled read spans these as well as the stored candles, so the
 * bucket that straddles a retention horizon, kept from all its candles before the first of them
 * expired, is still served whole.
 */
export async function keptBounds(db: Queryable, seriesId: number, interval: Interval, lo: number, hi: number): Promise<{ first: number; last: number } | undefined> {
  const probe = (order: 'ASC' | 'DESC') =>
    `(SELECT ${ms('open_time')} FROM candle_rollups
      WHERE series_id = $1 AND interval = $2 AND open_time >= ${ts('$3')} AND open_time < ${ts('$4')} AND NOT stale AND source_candles > 0
      ORDER BY open_time ${order} LIMIT 1)`;
  const { rows } = await db.query<{ first: number | null; last: number | null }>(`SELECT ${probe('ASC')} AS first, ${probe('DESC')} AS last`, [seriesId, interval, lo, hi]);
  const r = rows[0];
  return r && r.first !== null && r.last !== null ? { first: Number(r.first), last: Number(r.last) } : undefined;
}

/**
 * The same buckets as `resampledWindow`, value for value, read from `candle_rollups` where a bucket
 * is kept there, and built from the source otherwise. The buckets built are kept when they can no
 * longer change but by a write that marks them: every source candle is closed, and either the
 * bucket's last candle is stored or a later candle is (`lastStored`, the open time of a stored
 * candle of the series, says so for the buckets ending at or before it). A bucket with no candle
 * before `lastStored` is kept as empty, so a gap is not scanned again.
 *
 * A warm read is one index range scan over the page's rollup rows. The forming bucket, and any
 * bucket a write has marked, is built from the source in a second statement that also stores it,
 * unless a write marked it again meanwhile (`gen`, see migration 0009).
 *
 * Before the series' retention horizon (series_expiry.expired_before) the source is incomplete,
 * so nothing there is built to be kept. The bucket that straddles the horizon was kept by the
 * retention job from all its candles before any of them went: it is served as kept, even when a
 * later write into its stored part has marked it, and never rebuilt from the part that is left.
 * A bucket there with no kept values is built from what is stored for the answer only, not kept,
 * and reads as not closed (partial).
 */
export async function rolledUpWindow(db: Queryable, { seriesId, interval, source, lo, hi }: ResampledPage, lastStored: number): Promise<Bucket[]> {
  const step = INTERVAL_MS[interval];
  const kept = await db.query<RollupRow>({
    text: `SELECT ${ms('open_time')}, open, high, low, close, volume, quote_volume, trades, closed, source_candles, gen, stale
           FROM candle_rollups WHERE series_id = $1 AND interval = $2 AND open_time >= ${ts('$3')} AND open_time < ${ts('$4')}
           ORDER BY open_time`,
    values: [seriesId, interval, lo, hi],
    rowMode: 'array',
  });
  const byTime = new Map<number, RollupRow>();
  for (const r of kept.rows) byTime.set(Number(r[0]), r);
  const marked: number[] = [];
  for (let t = lo; t < hi; t += step) {
    const r = byTime.get(t);
    if (!r || r[11]) marked.push(t);
  }
  const out: Bucket[] = [];
  for (const r of kept.rows) if (!r[11] && r[9] > 0) out.push(toBucket(r as unknown as [...BaseColumns, number]));
  if (marked.length === 0) return out;

  // Only on the building path: a warm read never asks.
  const horizon = await expiredBefore(db, seriesId);
  const todo: number[] = [];
  const gens: string[] = [];
  for (const t of marked) {
    const r = byTime.get(t);
    // Kept whole before the horizon: served as it is rather than rebuilt from a partial source.
    if (t < horizon && r && r[9] !== null && r[9] > 0 && r[1] !== null) {
      out.push(toBucket(r as unknown as [...BaseColumns, number]));
      continue;
    }
    todo.push(t);
    gens.push(r ? r[10] : '0');
  }
  if (todo.length === 0) return out.sort((a, b) => a.candle.openTime - b.candle.openTime);

  const stepSql = `interval '${step} milliseconds'`;
  const built = await db.query<[...BaseColumns, number]>({
    text: `WITH c AS (${bucketAggregates(`SELECT ${ts('u.t')} AS bucket, u.gen FROM unnest($2::bigint[], $3::bigint[]) AS u(t, gen)`, [ts('$6'), ts('$7')], step, source)}),
     kept AS (
       INSERT INTO candle_rollups AS r (series_id, interval, open_time, gen, stale, closed, source_candles,
                                        open, high, low, close, volume, quote_volume, trades)
       SELECT $1, $4, bucket, gen, false, closed, n, open, high, low, close, volume, quote_volume, trades
       FROM c
       WHERE coalesce(all_closed, true) AND (coalesce(has_last, false) OR bucket + ${stepSql} <= ${ts('$5')}) AND bucket >= ${ts('$8')}
       ORDER BY bucket
       ON CONFLICT (series_id, interval, open_time) DO UPDATE SET
         stale = false, closed = excluded.closed, source_candles = excluded.source_candles, open = excluded.open,
         high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
         quote_volume = excluded.quote_volume, trades = excluded.trades
       WHERE r.gen = excluded.gen
     )
     SELECT ${OUT_COLUMNS} FROM c WHERE n > 0 ORDER BY bucket`,
    values: [seriesId, `{${todo.join(',')}}`, `{${gens.join(',')}}`, interval, lastStored, todo[0], todo.at(-1)! + step, horizon],
    rowMode: 'array',
  });
  for (const b of built.rows.map(toBucket)) {
    // Built from the part retention left: not the whole bucket, so never closed.
    if (b.candle.openTime < horizon) b.candle.closed = false;
    out.push(b);
  }
  return out.sort((a, b) => a.candle.openTime - b.candle.openTime);
}

/** Before any candle (the 1970s: candles start in 2000). */
const MIN_TIME = 0;

/** The series' retention horizon: every candle before it deleted on purpose (MIN_TIME when none is). */
async function expiredBefore(db: Queryable, seriesId: number): Promise<number> {
  const { rows } = await db.query<{ t: number }>(`SELECT ${ms('expired_before')} AS t FROM series_expiry WHERE series_id = $1`, [seriesId]);
  return rows[0] ? Number(rows[0].t) : MIN_TIME;
}
