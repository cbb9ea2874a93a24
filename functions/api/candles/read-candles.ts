import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../../candles/intervals.ts';
import type { Queryable } from '../../store/db.ts';
import type { CandleOut, GapPolicy } from '../schemas.ts';
import type { CandleSource } from './source.ts';

export interface ReadCandlesOptions {
  /** Earliest open time wanted (inclusive). */
  start?: number | undefined;
  /** Open time to stop before (exclusive). */
  end?: number | undefined;
  limit: number;
  /** Cursor position: the first bucket of this page. */
  from?: number | undefined;
  gaps: GapPolicy;
}

export interface CandleRead {
  candles: CandleOut[];
  /** First bucket of the next page, or null when this page is the last. */
  next: number | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
/** The first bucket start at or after `t`. */
export const ceilBucket = (t: number, interval: Interval) => bucketStart(t - 1, interval) + INTERVAL_MS[interval];

// Epoch milliseconds as a float8, which the driver hands over as a JS number (exact below 2^53).
export const MS = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

type ArrayRow = [number, string, string, string, string, string, string | null, string | null, boolean];

export interface CandleRowOut {
  t: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  quote_volume: string | null;
  trades: string | null;
  closed: boolean;
  n?: number;
}

export function toCandle(r: CandleRowOut, resampled: boolean): CandleOut {
  const c: CandleOut = {
    openTime: r.t,
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
    quoteVolume: r.quote_volume,
    trades: r.trades === null ? null : Number(r.trades),
    closed: r.closed,
    gap: false,
  };
  if (resampled) c.sourceCandles = r.n ?? 0;
  return c;
}

/**
 * One page of candles of a series, stored or resampled, with the gap policy applied.
 *
 * Buckets are the requested interval's, aligned as exchanges align them (`bucketStart`: UTC
 * midnight for days, Monday for weeks). A page holds buckets whose open time lies in
 * [start, end); a resampled bucket always aggregates its whole period, never a clipped one.
 * Gaps are buckets with no stored candle between the first and the last stored candle of the
 * range: the edges are not padded, and filling never happens unless asked for.
 */
export async function readCandles(db: Queryable, src: CandleSource, opts: ReadCandlesOptions): Promise<CandleRead> {
  const step = INTERVAL_MS[src.interval];
  const lo = opts.from ?? (opts.start !== undefined ? ceilBucket(opts.start, src.interval) : MIN_OPEN_TIME);
  const hi = opts.end !== undefined ? Math.min(ceilBucket(opts.end, src.interval), MAX_OPEN_TIME) : MAX_OPEN_TIME;
  if (lo >= hi) return { candles: [], next: null };

  if (!src.resampled && opts.gaps === 'omit') {
    // The hot path: one primary-key range scan, stopped by LIMIT. Candles are aligned and unique,
    // so limit + 1 of them fit in limit + 1 buckets: bounding the range by that lets the planner
    // prune to the partitions involved. Only when gaps leave it short is the open range read.
    const window = (to: number) =>
      db.query<ArrayRow>({
        text: `SELECT ${MS('open_time')}, open, high, low, close, volume, quote_volume, trades, closed
               FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
               ORDER BY open_time LIMIT $4`,
        values: [src.seriesId, iso(lo), iso(to), opts.limit + 1],
        // Arrays, not objects per row: this is the path every candle download takes.
        rowMode: 'array',
      });
    const bounded = Math.min(hi, lo + (opts.limit + 1) * step);
    let { rows } = await window(bounded);
    if (rows.length <= opts.limit && bounded < hi) ({ rows } = await window(hi));
    const n = Math.min(rows.length, opts.limit);
    const candles: CandleOut[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const r = rows[i]!;
      candles[i] = {
        openTime: r[0],
        open: r[1],
        high: r[2],
        low: r[3],
        close: r[4],
        volume: r[5],
        quoteVolume: r[6],
        trades: r[7] === null ? null : Number(r[7]),
        closed: r[8],
        gap: false,
      };
    }
    return { candles, next: rows.length > opts.limit ? rows[opts.limit]![0] : null };
  }

  // Bounds of the stored data in range, so pages span only buckets that can hold data, and the
  // close before this page for ffill.
  const bounds = await db.query<{ first: number | null; last: number | null; prev_close: string | null }>(
    `SELECT
       (SELECT ${MS('open_time')} FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
        ORDER BY open_time LIMIT 1) AS first,
       (SELECT ${MS('open_time')} FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
        ORDER BY open_time DESC LIMIT 1) AS last,
       ${opts.gaps === 'ffill' ? `(SELECT close FROM candles WHERE series_id = $1 AND open_time < $2::timestamptz ORDER BY open_time DESC LIMIT 1)` : 'NULL::numeric'} AS prev_close`,
    [src.seriesId, iso(lo), iso(hi)],
  );
  const b = bounds.rows[0];
  if (!b || b.first === null || b.last === null) return { candles: [], next: null };
  const pageLo = opts.from ?? bucketStart(b.first, src.interval);
  const lastBucket = bucketStart(b.last, src.interval);
  const pageHi = Math.min(lastBucket + step, pageLo + opts.limit * step, hi);
  const next = pageHi <= lastBucket ? pageHi : null;

  const rows = src.resampled ? await aggregate(db, src, pageLo, pageHi) : await stored(db, src, pageLo, pageHi);
  const candles = rows.map((r) => toCandle(r, src.resampled));
  if (opts.gaps === 'omit') return { candles, next };
  return { candles: fill(candles, pageLo, pageHi, step, opts.gaps, b.prev_close, src.resampled), next };
}

async function stored(db: Queryable, src: CandleSource, lo: number, hi: number): Promise<CandleRowOut[]> {
  const { rows } = await db.query<CandleRowOut>(
    `SELECT ${MS('open_time')} AS t, open, high, low, close, volume, quote_volume, trades, closed
     FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
     ORDER BY open_time`,
    [src.seriesId, iso(lo), iso(hi)],
  );
  return rows;
}

/**
 * OHLCV over whole buckets: first open, max high, min low, last close, summed volumes. Each bucket
 * is aggregated by its own primary-key range scan (a LATERAL per bucket of the page): no sort or
 * hash over the source rows, whose bucket count the planner cannot estimate. The first and last
 * candle of a bucket are then read back by primary key for open and close. A quote volume or trade
 * count is given only when every source candle had one (a partial sum would understate it). A
 * bucket is closed when all its source candles are closed and its last source candle is stored.
 */
async function aggregate(db: Queryable, src: CandleSource, lo: number, hi: number): Promise<CandleRowOut[]> {
  const step = INTERVAL_MS[src.interval];
  const lastOffset = step - INTERVAL_MS[src.source];
  const stepSql = `interval '${step} milliseconds'`;
  const { rows } = await db.query<CandleRowOut>(
    `SELECT ${MS('g.bucket')} AS t, f.open, a.high, a.low, l.close, a.volume,
            CASE WHEN a.nq = a.n THEN a.quote_volume END AS quote_volume,
            CASE WHEN a.nt = a.n THEN a.trades END AS trades,
            a.closed AND a.last_t = g.bucket + interval '${lastOffset} milliseconds' AS closed, a.n
     FROM generate_series($2::timestamptz, $3::timestamptz - ${stepSql}, ${stepSql}) AS g(bucket)
     CROSS JOIN LATERAL (
       SELECT min(open_time) AS first_t, max(open_time) AS last_t, max(high) AS high, min(low) AS low,
              sum(volume) AS volume, sum(quote_volume) AS quote_volume, count(quote_volume) AS nq,
              sum(trades) AS trades, count(trades) AS nt, bool_and(closed) AS closed, count(*)::int AS n
       FROM candles WHERE series_id = $1 AND open_time >= g.bucket AND open_time < g.bucket + ${stepSql}
     ) a
     -- LIMIT 1 keeps these primary-key probes rather than joins against the whole series.
     CROSS JOIN LATERAL (SELECT open FROM candles WHERE series_id = $1 AND open_time = a.first_t LIMIT 1) f
     CROSS JOIN LATERAL (SELECT close FROM candles WHERE series_id = $1 AND open_time = a.last_t LIMIT 1) l
     WHERE a.n > 0
     ORDER BY g.bucket`,
    [src.seriesId, iso(lo), iso(hi)],
  );
  return rows;
}

function fill(
  candles: CandleOut[],
  lo: number,
  hi: number,
  step: number,
  policy: 'null' | 'ffill',
  prevClose: string | null,
  resampled: boolean,
): CandleOut[] {
  const out: CandleOut[] = [];
  let i = 0;
  let close = prevClose;
  for (let t = lo; t < hi; t += step) {
    const c = candles[i];
    if (c && c.openTime === t) {
      out.push(c);
      close = c.close;
      i++;
      continue;
    }
    const filled = policy === 'ffill' && close !== null;
    const g: CandleOut = {
      openTime: t,
      open: filled ? close : null,
      high: filled ? close : null,
      low: filled ? close : null,
      close: filled ? close : null,
      volume: filled ? '0' : null,
      quoteVolume: filled ? '0' : null,
      trades: filled ? 0 : null,
      closed: false,
      gap: true,
    };
    if (resampled) g.sourceCandles = 0;
    out.push(g);
  }
  return out;
}
